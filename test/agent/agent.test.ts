// The agent core against the real kernel: run -> events -> upgrade (map state carried, events
// keep flowing) -> rollback -> stop/start -> rm, with nothing left behind; failed runs leave
// nothing; a restarted agent adopts running programs instead of attaching twice.

import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from '../../src/agent/agent.js';
import { Conflict, Invalid, isKind, NotFound } from '../../src/errors.js';
import { EXAMPLES, testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';

async function openAndWaitForEvent(
  agent: Agent,
  instance: string,
  marker: string,
  timeoutMs = 5000,
): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-open-'));
  const path = join(dir, marker);
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      closeSync(openSync(path, 'w'));
      await sleep(100);
      const hit = agent.logs
        .read(instance)
        .find((r) => String((r as { event?: { path?: string } }).event?.path ?? '').endsWith(marker));
      if (hit) return hit as Record<string, unknown>;
    }
    throw new Error(`no event for ${marker} from ${instance}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('run, events, upgrade, rollback, stop, start, rm of opensnoop', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const v1 = await ta.build(join(EXAMPLES, 'opensnoop'));
  assert.equal(v1, 'opensnoop:1.0.0');
  const v2 = await ta.build(
    ta.variant('opensnoop', (f, s) =>
      f === 'kbpf.yaml'
        ? s.replace('version: 1.0.0', 'version: 2.0.0')
        : s.replace('e->flags = (__s32)ctx->args[2];', 'e->flags = (__s32)ctx->args[2] | 0x40000000;'),
    ),
  );
  assert.equal(v2, 'opensnoop:2.0.0');

  const st = await ta.agent.run({ image: v1, name: 'snoop', config: { target_pid: String(process.pid) } });
  assert.equal(st.phase, 'running');
  assert.ok(st.programs[0]!.linkId && st.programs[0]!.progId);
  const ev1 = await openAndWaitForEvent(ta.agent, 'snoop', 'kbpf-marker-1');
  const e1 = ev1.event as { pid: number; comm: string; flags: number };
  assert.equal(e1.pid, process.pid);
  assert.ok((e1.flags & 0x40000000) === 0);

  const comm = e1.comm;
  const countBefore = ta.agent.maps('snoop', 'opens_by_comm')[0]!.entries.find(([k]) => k === comm)?.[1] as number;
  assert.ok(countBefore >= 1);

  const up = await ta.agent.upgrade('snoop', { image: v2 });
  assert.equal(up.revision, 2);
  assert.notEqual(up.programs[0]!.progId, st.programs[0]!.progId);
  const ev2 = await openAndWaitForEvent(ta.agent, 'snoop', 'kbpf-marker-2');
  assert.ok(((ev2.event as { flags: number }).flags & 0x40000000) !== 0, 'events now come from revision 2');
  const countAfter = ta.agent.maps('snoop', 'opens_by_comm')[0]!.entries.find(([k]) => k === comm)?.[1] as number;
  assert.ok(countAfter > countBefore, `counter map carried over (${countBefore} -> ${countAfter})`);

  const back = await ta.agent.rollback('snoop');
  assert.equal(back.revision, 3);
  assert.equal(back.digest, st.digest);
  const ev3 = await openAndWaitForEvent(ta.agent, 'snoop', 'kbpf-marker-3');
  assert.ok(((ev3.event as { flags: number }).flags & 0x40000000) === 0, 'rolled back to revision 1 code');
  assert.deepEqual(
    ta.agent.history('snoop').map((r) => [r.revision, r.cause, r.image]),
    [
      [1, 'run', v1],
      [2, 'upgrade', v2],
      [3, 'rollback', v1],
    ],
  );
  assert.equal(back.image, v1, 'a rollback shows the reference of the revision it went back to');

  await ta.agent.stop('snoop');
  assert.equal(ta.agent.inspect('snoop').phase, 'stopped');
  assert.equal(ta.agent.inspect('snoop').programs[0]!.linkId, undefined);
  await ta.agent.startInstance('snoop');
  await openAndWaitForEvent(ta.agent, 'snoop', 'kbpf-marker-4');

  await assert.rejects(ta.agent.remove('snoop'), /running: stop it first/);
  await ta.agent.remove('snoop', { force: true });
  assert.equal(ta.agent.list().length, 0);
  assert.ok(!existsSync(join(ta.paths.bpffsDir, 'snoop')));
  assert.ok(!existsSync(ta.paths.bpffsDir), "the agent's bpffs directory goes with its last instance");
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('errors say what happened by kind, not by HTTP status', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(join(EXAMPLES, 'opensnoop'));
  await assert.rejects(ta.agent.run({ image: 'nope:1.0' }), (e) => isKind(e, NotFound));
  await assert.rejects(ta.agent.run({ image: ref, name: 'Bad Name' }), (e) => isKind(e, Invalid));
  await assert.rejects(ta.agent.run({ image: ref, config: { target_pid: 'abc' } }), (e: Error) => {
    assert.ok(isKind(e, Invalid));
    assert.match(e.message, /^run opensnoop:1\.0\.0: config variable target_pid/);
    return true;
  });
  await ta.agent.run({ image: ref, name: 'k', config: { target_pid: '1' } });
  await assert.rejects(ta.agent.run({ image: ref, name: 'k' }), (e) => isKind(e, Conflict));
  await assert.rejects(ta.agent.rollback('k'), (e) => isKind(e, Conflict));
  await assert.rejects(ta.agent.rollback('k', { toRevision: 7 }), (e) => isKind(e, NotFound));
  await assert.rejects(ta.agent.remove('k'), (e) => isKind(e, Conflict));
  assert.throws(
    () => ta.agent.inspect('ghost'),
    (e) => isKind(e, NotFound),
  );
  assert.throws(
    () => ta.agent.maps('k', 'nope'),
    (e) => isKind(e, NotFound),
  );
  // an application reaches an instance's map through the agent, not by the pin layout
  const counts = ta.agent.instanceMap('k', 'opens_by_comm');
  try {
    assert.equal(counts.type, 'hash');
  } finally {
    counts.close();
  }
  assert.throws(
    () => ta.agent.instanceMapPath('k', 'nope'),
    (e) => isKind(e, NotFound),
  );
});

test('a run with a bad config or a failing attach leaves nothing', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(join(EXAMPLES, 'opensnoop'));
  await assert.rejects(ta.agent.run({ image: ref, config: { no_such: '1' } }), /unknown config variable "no_such"/);
  await assert.rejects(ta.agent.run({ image: ref, config: { target_pid: 'abc' } }), /target_pid/);
  const tcp = await ta.build(join(EXAMPLES, 'tcpconnect'));
  await assert.rejects(
    ta.agent.run({ image: tcp, name: 'bad', attach: { cgroup: '/sys/fs/cgroup/unified/does-not-exist' } }),
    /does-not-exist/,
  );
  await assert.rejects(ta.agent.run({ image: 'nope:1.0' }), /nope/);
  assert.equal(ta.agent.list().length, 0);
  assert.ok(!existsSync(join(ta.paths.bpffsDir, 'bad')));
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('a restarted agent adopts running programs without attaching twice', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(join(EXAMPLES, 'opensnoop'));
  const st = await ta.agent.run({ image: ref, name: 'adopt', config: { target_pid: String(process.pid) } });
  await ta.agent.close();
  const links = kernelIds().link.size;
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  const again = ta.agent.inspect('adopt');
  assert.equal(again.phase, 'running');
  assert.equal(again.programs[0]!.linkId, st.programs[0]!.linkId, 'same link: not attached again');
  assert.equal(kernelIds().link.size, links);
  await openAndWaitForEvent(ta.agent, 'adopt', 'kbpf-marker-adopt');
  await ta.agent.remove('adopt', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('a second agent on the same state directory is refused', async (t) => {
  const ta = await testAgent(t);
  const second = new Agent(ta.paths, { log: () => {} });
  await assert.rejects(second.start(), /another kbpf agent \(pid \d+\) owns this state directory/);
});

test('a failed upgrade leaves the running revision untouched', async (t) => {
  const ta = await testAgent(t);
  const v1 = await ta.build(join(EXAMPLES, 'opensnoop'));
  // version 3 compiles but the verifier rejects it (reads past the end of the event)
  const bad = await ta.build(
    ta.variant('opensnoop', (f, s) =>
      f === 'kbpf.yaml'
        ? s.replace('version: 1.0.0', 'version: 3.0.0')
        : s.replace(
            'e->flags = (__s32)ctx->args[2];',
            'e->flags = (__s32)ctx->args[2]; ((char *)e)[sizeof(*e) + 64] = 1;',
          ),
    ),
  );
  const st = await ta.agent.run({ image: v1, name: 'keep', config: { target_pid: String(process.pid) } });
  await assert.rejects(
    ta.agent.upgrade('keep', { image: bad }),
    (e: Error) => /trace_openat/.test(e.message) && /verifier|invalid|out of bounds|access/i.test(e.message),
  );
  const after = ta.agent.inspect('keep');
  assert.equal(after.revision, 1);
  assert.equal(after.programs[0]!.progId, st.programs[0]!.progId);
  assert.equal(after.programs[0]!.linkId, st.programs[0]!.linkId);
  assert.deepEqual(
    ta.agent.history('keep').map((r) => r.revision),
    [1],
  );
  await openAndWaitForEvent(ta.agent, 'keep', 'kbpf-marker-keep');
});

test("an instance's event log has its package's size (kbpf.yaml logs:), or run --log-size's", async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(
    ta.variant('opensnoop', (f, s) => (f === 'kbpf.yaml' ? `${s}\nlogs: { max_bytes: 64Ki, keep: 1 }\n` : s)),
  );
  const st = await ta.agent.run({ image: ref, name: 'sized', config: { target_pid: String(process.pid) } });
  assert.deepEqual(st.logs, { maxBytes: 64 * 1024, keep: 1 });
  const other = await ta.agent.run({
    image: ref,
    name: 'resized',
    config: { target_pid: '1' },
    attach: { logBytes: 128 * 1024 },
  });
  assert.deepEqual(other.logs, { maxBytes: 128 * 1024, keep: 1 });
  assert.deepEqual(ta.agent.inspect('resized').logs, { maxBytes: 128 * 1024, keep: 1 });
  // opens until the log has rotated twice: two files, the rotated one filled to 64 KiB (not 4 MiB)
  const logDir = join(ta.paths.logsDir, 'sized');
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // with keep: 1, the first record is gone after the second rotation
  const oldest = (): number => (ta.agent.logs.read('sized')[0]?.seq as number | undefined) ?? 0;
  for (let round = 0; round < 200 && oldest() <= 1; round++) {
    for (let i = 0; i < 200; i++) closeSync(openSync(join(dir, `f${i}`), 'w'));
    await sleep(50);
  }
  await ta.agent.logs.flush('sized');
  assert.ok(oldest() > 1, 'the log rotated twice');
  assert.deepEqual(readdirSync(logDir).sort(), ['events.jsonl', 'events.jsonl.1'], 'keep: 1');
  const size = statSync(join(logDir, 'events.jsonl.1')).size;
  assert.ok(size <= 64 * 1024 && size > 60 * 1024, `the rotated file is ${size} bytes`);
  await ta.agent.remove('sized', { force: true });
  await ta.agent.remove('resized', { force: true });
  assert.ok(!existsSync(logDir));
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
