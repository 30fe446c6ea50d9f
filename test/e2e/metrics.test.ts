// The agent's Prometheus metrics, from a real agent with the kernel's BPF stats on: instances by
// phase, events per instance, program run counts; and promtool accepts the exposition.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ApiClient } from '../../src/agent/api-client.js';
import { makeCgroup, runInCgroup } from '../../testbed/kernel.js';
import { Node, ROOT } from './cli.js';

test('metrics: run counts from BPF stats, events, phases; promtool check passes', async (t) => {
  const node = new Node(t);
  const cg = makeCgroup(t);
  const srv = createServer((s) => s.end('ok'));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const port = (srv.address() as { port: number }).port;

  node.ok(['build', join(ROOT, 'examples/tcpconnect')]);
  await node.startAgent({}, ['--bpf-stats']);
  node.ok(['run', '--name', 'conn', '--cgroup', cg, 'tcpconnect:1.0.0']);
  for (let i = 0; i < 3; i++) {
    const r = await runInCgroup(cg, process.execPath, [
      '-e',
      `require('net').connect(${port},'127.0.0.1').on('data',()=>process.exit(0))`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  await new Promise((r) => setTimeout(r, 500));
  const text = await new ApiClient(node.socket).metrics();
  assert.match(text, /^kbpf_instances\{phase="running"\} 1$/m);
  const runs = /^kbpf_program_run_count_total\{instance="conn",program="trace_connect4"\} (\d+)$/m.exec(text);
  assert.ok(runs && Number(runs[1]) >= 3, `run count from BPF stats:\n${text}`);
  const events = /^kbpf_events_received_total\{instance="conn"\} (\d+)$/m.exec(text);
  assert.ok(events && Number(events[1]) >= 3, `events counted:\n${text}`);

  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (promtool.error) {
    t.diagnostic('promtool not installed (Debian package prometheus): exposition check skipped');
  } else {
    assert.equal(promtool.status, 0, `${promtool.stdout}${promtool.stderr}`);
  }
});
