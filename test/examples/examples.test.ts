// Each example package, built by kbpf and run by the agent, reports a real event the test causes.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, copyFileSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from '../../src/agent/agent.js';
import { EXAMPLES, testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince, makeCgroup, run, runInCgroup, tempDir } from '../../testbed/kernel.js';

type Ev = Record<string, unknown>;

async function waitFor(
  agent: Agent,
  instance: string,
  match: (e: Ev) => boolean,
  poke: () => unknown,
  timeoutMs = 5000,
): Promise<Ev> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await poke();
    await sleep(100);
    const hit = agent.logs
      .read(instance)
      .map((r) => (r as { event?: Ev }).event)
      .find((e) => e && match(e));
    if (hit) return hit;
  }
  throw new Error(`no matching event from ${instance}`);
}

test('opensnoop shows an open of a file, with the process that opened it', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const dir = tempDir(t, 'kbpf-ex-');
  await ta.agent.run({
    image: await ta.build(join(EXAMPLES, 'opensnoop')),
    name: 'os',
    config: { target_pid: String(process.pid) },
  });
  const path = join(dir, 'opened-by-the-test');
  const e = await waitFor(
    ta.agent,
    'os',
    (x) => x.path === path,
    () => closeSync(openSync(path, 'w')),
  );
  assert.equal(e.pid, process.pid);
  assert.equal(e.comm, process.title.slice(0, 15) === 'node' ? 'node' : e.comm);
  await ta.agent.remove('os', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('execsnoop shows an exec with its file name and parent', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const dir = tempDir(t, 'kbpf-ex-');
  const bin = join(dir, 'kbpf-exec-probe');
  copyFileSync('/bin/true', bin);
  await ta.agent.run({ image: await ta.build(join(EXAMPLES, 'execsnoop')), name: 'ex' });
  const e = await waitFor(
    ta.agent,
    'ex',
    (x) => x.filename === bin,
    () => run(bin, []),
  );
  assert.equal(e.comm, 'kbpf-exec-probe');
  assert.equal(e.ppid, process.pid);
  assert.equal(e.uid, 0);
  await ta.agent.remove('ex', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('tcpconnect shows a connection from a process in the cgroup, and counts it per port', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const cg = makeCgroup(t);
  const srv = createServer((s) => s.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const port = (srv.address() as { port: number }).port;
  await ta.agent.run({
    image: await ta.build(join(EXAMPLES, 'tcpconnect')),
    name: 'tc',
    attach: { cgroup: cg },
    config: { target_port: String(port) },
  });
  const client = `const s=require('net').connect(${port},'127.0.0.1');s.on('close',()=>process.exit(0));s.resume()`;
  const e = await waitFor(
    ta.agent,
    'tc',
    (x) => x.dport === port,
    () => runInCgroup(cg, process.execPath, ['-e', client]),
  );
  assert.deepEqual(e.daddr, [127, 0, 0, 1]);
  const counts = ta.agent.maps('tc', 'connects_by_port')[0]!.entries;
  assert.ok(
    counts.some(([k, v]) => k === port && Number(v) >= 1),
    JSON.stringify(counts),
  );
  await ta.agent.remove('tc', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
