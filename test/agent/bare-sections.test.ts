// Sections that name no event (`SEC("raw_tp/")`, `SEC("tp")`: their loaders attach them by
// hand): the package builds, run without a target is refused showing the --attach form with
// nothing loaded, and run with one attaches there.
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Invalid, isKind } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds } from '../../testbed/kernel.js';
import { leftOfOurs } from '../bpf/leak-check.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/bare_raw_tp/', import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };
const OURS = { progs: ['on_raw', 'on_tp'], maps: ['bare_calls'], objects: ['bare_raw_tp'] };

test('bare raw_tp/ and tp sections build, are refused at run until given an event, then count it; rm leaves nothing', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG);
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.programs.map((p) => [p.name, p.attach]),
    [
      ['on_raw', { hook: 'raw_tracepoint' }],
      ['on_tp', { hook: 'tracepoint' }],
    ],
  );
  await assert.rejects(ta.agent.run({ image: ref, name: 'bare' }), (e: Error) => {
    assert.ok(isKind(e, Invalid), e.message);
    assert.match(e.message, /on_raw \(section "raw_tp\/"\) attaches to a raw_tracepoint but names no target/);
    assert.match(e.message, /--attach on_raw=raw_tracepoint:NAME/);
    return true;
  });
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);

  const st = await ta.agent.run({
    image: ref,
    name: 'bare',
    attach: { programs: { on_raw: 'raw_tracepoint:sys_enter', on_tp: 'tracepoint:syscalls/sys_enter_openat' } },
  });
  assert.equal(st.phase, 'running');
  for (let i = 0; i < 5; i++) closeSync(openSync('/proc/self/stat', 'r'));
  const calls = new Map(ta.agent.maps('bare', 'bare_calls')[0]!.entries.map(([k, v]) => [Number(k), Number(v)]));
  assert.ok((calls.get(0) ?? 0) >= 10, `system calls counted: ${calls.get(0)}`);
  assert.ok((calls.get(1) ?? 0) >= 5, `openat calls counted: ${calls.get(1)}`);
  await ta.agent.remove('bare', { force: true });
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
});
