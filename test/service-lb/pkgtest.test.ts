// service-lb's own `kbpf test` cases (apps/service-lb/tests) in the user-space engine: the reverse
// translations (recvmsg4, getpeername4) pass; the translation cases (connect4, sendmsg4) are
// reported skipped, naming what the engine lacks (it cannot link the bpf_loop callbacks), and
// nothing else fails. No kernel: the cases run in the VM.
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

test("service-lb's kbpf test cases: recvmsg4 and getpeername4 pass in the VM, connect4 and sendmsg4 are skipped with the reason", async (t) => {
  const store = new LayoutStore(join(tempDir(t, 'kbpf-svclb-pkgtest-'), 'store'));
  const res = await buildPackage(SVCLB_APP_DIR, { store, cacheDir: VMLINUX_CACHE });
  const r = runTests(await packageTestInput(store, res.stored.reference), 'vm');
  const failed = r.cases.filter((c) => c.status !== 'pass' && c.status !== 'skip');
  assert.deepEqual(failed, [], JSON.stringify(failed, null, 1));
  const passed = r.cases.filter((c) => c.status === 'pass').map((c) => c.program);
  assert.equal(passed.filter((p) => p === 'svc_recvmsg4').length, 4);
  assert.equal(passed.filter((p) => p === 'svc_getpeername4').length, 3);
  const skipped = r.cases.filter((c) => c.status === 'skip');
  assert.deepEqual(new Set(skipped.map((c) => c.program)), new Set(['svc_connect4', 'svc_sendmsg4']));
  for (const c of skipped)
    assert.match(
      c.skipped.map((s) => s.reason).join('\n'),
      /cannot load svc_(connect|sendmsg)4: .*relocation against \.text/,
    );
});
