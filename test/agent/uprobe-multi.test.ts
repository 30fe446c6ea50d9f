// uprobe.multi programs, which Debian's libbpf 1.1 does not know: typed before load and
// attached through kbpf's own BPF_LINK_CREATE (one link on every function matching a glob),
// or refused naming the feature where the kernel lacks it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hookSupport } from 'kbpf/bpf';
import { isKind, NotFound, Unsupported } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs } from '../bpf/leak-check.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/uprobe_multi/', import.meta.url));
const TARGET = fileURLToPath(new URL('../../../test/fixtures/multi_target.c', import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };
const OURS = { progs: ['on_entry', 'on_return'], maps: ['multi_calls'], objects: ['uprobe_multi'] };

test('uprobe.multi and uretprobe.multi programs count every call of the functions matching a pattern, one link each; rm leaves nothing', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG);
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.programs.map((p) => [p.name, p.type, p.attach]),
    [
      ['on_entry', 'kprobe', { hook: 'uprobe' }],
      ['on_return', 'kprobe', { hook: 'uretprobe' }],
    ],
  );
  const bin = join(tempDir(t, 'kbpf-multi-'), 'multi_target');
  execFileSync('cc', ['-O2', '-o', bin, TARGET]);
  const attach = (pattern: string) => ({
    programs: { on_entry: `uprobe:${bin}:${pattern}`, on_return: `uretprobe:${bin}:${pattern}` },
  });
  const support = hookSupport('uprobe_multi');
  if (support.supported !== 'yes') {
    await assert.rejects(
      ta.agent.run({ image: ref, name: 'multi', attach: attach('kbpf_multi_*') }),
      (e: Error) => isKind(e, Unsupported) && /uprobe\.multi/.test(e.message),
    );
    assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
    return t.skip(support.detail);
  }
  await assert.rejects(ta.agent.run({ image: ref, name: 'multi', attach: attach('nothing_*') }), (e: Error) => {
    assert.ok(isKind(e, NotFound), e.message);
    assert.match(e.message, /no function of .*multi_target matches nothing_\*/);
    return true;
  });
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);

  const st = await ta.agent.run({ image: ref, name: 'multi', attach: attach('kbpf_multi_*') });
  assert.equal(st.phase, 'running');
  assert.equal(spawnSync(bin, ['4']).status, 0);
  const calls = new Map(ta.agent.maps('multi', 'multi_calls')[0]!.entries.map(([k, v]) => [Number(k), Number(v)]));
  // 4 rounds of a (1) + b (2) + c (3); kbpf_other does not match
  assert.deepEqual([calls.get(0), calls.get(1)], [24, 24]);
  await ta.agent.remove('multi', { force: true });
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
});

const SESSION_PKG = fileURLToPath(new URL('../../../test/agent/packages/uprobe_session/', import.meta.url));
const SESSION_OURS = { progs: ['on_call'], maps: ['session_calls'], objects: ['uprobe_session'] };

test('a uprobe.session program runs at entry and, when the entry returned 0, at return; rm leaves nothing', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(SESSION_PKG);
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.programs.map((p) => [p.name, p.type, p.attach]),
    [['on_call', 'kprobe', { hook: 'uprobe' }]],
  );
  const bin = join(tempDir(t, 'kbpf-session-'), 'multi_target');
  execFileSync('cc', ['-O2', '-o', bin, TARGET]);
  const run = () =>
    ta.agent.run({ image: ref, name: 'session', attach: { programs: { on_call: `uprobe:${bin}:kbpf_multi_*` } } });
  const support = hookSupport('uprobe_session');
  if (support.supported !== 'yes') {
    await assert.rejects(run(), (e: Error) => isKind(e, Unsupported) && /uprobe\.(session|multi)/.test(e.message));
    assert.deepEqual(await leftOfOurs(before, SESSION_OURS), NOTHING);
    return t.skip(support.detail);
  }
  const st = await run();
  assert.equal(st.phase, 'running');
  assert.equal(spawnSync(bin, ['4']).status, 0);
  const calls = new Map(ta.agent.maps('session', 'session_calls')[0]!.entries.map(([k, v]) => [Number(k), Number(v)]));
  // 24 matching calls, their arguments 0–5, 7–12, 14–19, 21–26: the 12 even ones ask for their return
  assert.deepEqual([calls.get(0), calls.get(1)], [24, 12]);
  await ta.agent.remove('session', { force: true });
  assert.deepEqual(await leftOfOurs(before, SESSION_OURS), NOTHING);
});
