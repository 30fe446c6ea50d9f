// Packages in the style of real tool collections (bcc's libbpf-tools, libbpf-bootstrap): an
// iterator writing binary structs, a ring buffer whose record is a typedef'd anonymous struct
// with an address read by its family field, a stack trace map its loader would size.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BpfMap, hookSupport } from 'kbpf/bpf';
import { formatEvent } from '../../src/cli/render/fields.js';
import { testAgent } from '../../testbed/agent.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));

test('an iterator writing binary records (bpf_seq_write of a struct): its log has the records decoded', async (t) => {
  if (hookSupport('iter').supported !== 'yes') return t.skip(hookSupport('iter').detail);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('task_records'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.equal(spec.programs[0]!.record, 'task_rec', 'the struct of the size its bpf_seq_write writes');
  await ta.agent.run({ image: ref, name: 'records' });
  const recs = ta.agent.logs.read('records').map((r) => r.event as Record<string, unknown>);
  assert.ok(recs.length >= 10, `a record per task: ${recs.length}`);
  assert.ok(
    recs.some((r) => r.pid === 2 && r.ppid === 0 && r.comm === 'kthreadd'),
    JSON.stringify(recs.slice(0, 3)),
  );
  assert.ok(
    recs.some((r) => r.pid === process.pid && r.comm === 'node'),
    'this process is listed',
  );
  assert.ok(!recs.some((r) => 'output' in r), 'no escaped text lines');
});

test("a typedef'd anonymous record struct decodes with its field names; a 16-byte address reads as its family says", async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('typedef_events'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  const ev = spec.events.find((e) => e.map === 'events')!;
  assert.equal(ev.type, 'exec_event_t');
  assert.deepEqual(ev.format?.addr, { kind: 'inet', family: 'family' });
  assert.equal(ev.format?.family?.kind, 'enum');
  assert.deepEqual(ev.format?.kstack, { kind: 'stack', space: 'kernel' }, 'an array of kernel addresses');
  await ta.agent.run({ image: ref, name: 'execs' });
  let seen: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !seen; i++) {
    execFileSync('/bin/true');
    await sleep(100);
    seen = ta.agent.logs
      .read('execs')
      .map((r) => r.event as Record<string, unknown>)
      .find((e) => e.comm === 'true');
  }
  assert.ok(seen, 'an exec event of /bin/true');
  assert.equal(seen.port, 8080);
  assert.equal(seen.family, 2);
  assert.deepEqual(formatEvent(seen, ev.format), { ...seen, addr: '127.0.0.1', family: 'AF_INET', kstack: '' });
});

test('a stack trace map without a size gets 1024 stacks of 127 frames, as the tools’ loaders give it', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('stack_counts'));
  await ta.agent.run({ image: ref, name: 'stacks' });
  const m = BpfMap.fromPin(ta.agent.instanceMapPath('stacks', 'stackmap'));
  try {
    const info = m.info();
    assert.equal(info.maxEntries, 1024);
    assert.equal(info.valueSize, 127 * 8);
  } finally {
    m.close();
  }
  execFileSync('/bin/true');
  const hits = ta.agent.maps('stacks', 'stack_hits')[0]!.entries;
  assert.ok(hits.length > 0, 'the program ran with its stack map');
});
