// service-lb's own `kbpf test` cases (apps/service-lb/tests) in both user-space engines: the
// translations (connect4 with round robin, weighted, least connections and session affinity —
// the last three scan the backend slots with bpf_loop — and sendmsg4), the refusal of a service
// without a backend (ECONNREFUSED through bpf_set_retval, checked as the case's retval) and the
// reverse translations (recvmsg4, getpeername4) all pass; a wrong retval expectation fails. No
// kernel: the cases run in the VM.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildPackage } from '../../src/compile/builder.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { packageTestInput } from '../../src/pkgtest/package.js';
import { runTests } from '../../src/pkgtest/runner.js';
import { VMLINUX_CACHE } from '../../testbed/agent.js';
import { tempDir } from '../../testbed/kernel.js';
import { SVCLB_APP_DIR } from '../../testbed/service-lb/svclb-node.js';

test("service-lb's kbpf test cases pass in the Wasm compiler and the interpreter, bpf_loop scans and the ECONNREFUSED retval included", async (t) => {
  const store = new LayoutStore(join(tempDir(t, 'kbpf-svclb-pkgtest-'), 'store'));
  const res = await buildPackage(SVCLB_APP_DIR, { store, cacheDir: VMLINUX_CACHE });
  const input = await packageTestInput(store, res.stored.reference);
  for (const engine of ['vm', 'interpreter'] as const) {
    const r = runTests(input, engine);
    const notPassed = r.cases.filter((c) => c.status !== 'pass');
    assert.deepEqual(notPassed, [], `${engine}: ${JSON.stringify(notPassed, null, 1)}`);
    const count = (p: string) => r.cases.filter((c) => c.program === p).length;
    assert.equal(count('svc_connect4'), 8, engine);
    assert.equal(count('svc_sendmsg4'), 1, engine);
    assert.equal(count('svc_recvmsg4'), 4, engine);
    assert.equal(count('svc_getpeername4'), 3, engine);
    const refused = r.cases.find((c) => c.name.includes('without a backend'));
    assert.equal(refused?.returns[engine], 0);
  }

  // the refusal's retval is checked: expecting -EPERM instead fails the case, naming both
  const refusal = input.tests.cases.find((c) => c.name.includes('without a backend'))!;
  assert.equal(refusal.expect.retval, '-ECONNREFUSED');
  const wrong = {
    ...input,
    tests: { ...input.tests, cases: [{ ...refusal, expect: { ...refusal.expect, retval: '-EPERM' } }] },
  };
  const r = runTests(wrong, 'vm');
  assert.equal(r.cases[0]?.status, 'fail');
  assert.deepEqual(r.cases[0]?.failures, ['retval: expected -1 (-EPERM), got -111 (-ECONNREFUSED)']);
});
