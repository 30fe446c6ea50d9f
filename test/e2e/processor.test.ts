// Event processors through the real CLI and agent: the example package's Wasm processor drops
// the execs of `true` and logs one summary per command instead of the others; its counts are in
// the instance's status and metrics (promtool-clean); a processor that never returns is stopped
// within its budget and the events are then logged as they come; nothing is left in the kernel.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../../src/agent/api-client.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';
import { Node, ROOT } from './cli.js';

const EXAMPLE = join(ROOT, 'examples/execsummary');

interface LogRecord {
  source: string;
  event?: Record<string, unknown>;
  line?: string;
}

function logs(node: Node, name: string): LogRecord[] {
  return node
    .ok(['logs', '-o', 'json', name])
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);
}

async function until<T>(what: string, fn: () => T | undefined, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('an event processor drops and aggregates as declared; a stuck one is stopped and events pass', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  await node.startAgent();
  assert.match(node.ok(['build', EXAMPLE]), /built execsummary:1\.0\.0/);
  node.ok(['run', '--name', 'es', 'execsummary:1.0.0']);
  await sleep(300);
  for (let i = 0; i < 5; i++) execFileSync('/bin/true');
  for (let i = 0; i < 3; i++) execFileSync('/bin/ls', ['/']);
  const summary = await until('the summary of ls', () =>
    logs(node, 'es').find((r) => r.event?.comm === 'ls' && typeof r.event.execs === 'number'),
  );
  assert.equal(summary.event!.execs, 3, 'three execs of ls, counted in the processor');
  const all = logs(node, 'es');
  assert.ok(!all.some((r) => r.event?.comm === 'true'), 'the execs of true were dropped');
  assert.ok(!all.some((r) => r.event?.comm === 'ls' && 'pid' in r.event), 'the events of ls were aggregated away');
  const status = node.json<{
    events: { received: number; processor?: { in: number; dropped: number; emitted: number } };
  }>(['inspect', 'es']);
  const p = status.events.processor!;
  assert.ok(p.in >= 8 && p.dropped >= 8 && p.emitted >= 1, `counts ${JSON.stringify(p)}`);
  assert.equal(status.events.received, p.in, 'every record read went through the processor');
  const metrics = await new ApiClient(node.socket).metrics();
  assert.match(metrics, /kbpf_processor_records_total\{instance="es",outcome="dropped"\} \d+/);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
  assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);

  // a processor that never returns: stopped after its budget, the events logged as they come
  const dir = tempDir(t, 'kbpf-stuck-processor-');
  copyFileSync(join(EXAMPLE, 'execsummary.bpf.c'), join(dir, 'execsummary.bpf.c'));
  writeFileSync(
    join(dir, 'processor.c'),
    '#include <kbpf-processor.h>\nKBPF_PROCESSOR_INPUT(64);\nKBPF_PROCESS(void *rec, unsigned size) { for (volatile int i = 1; i; ) ; return KBPF_KEEP; }\n',
  );
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: stuck\nversion: 0.1.0\nprocessor: processor.c\n');
  node.ok(['build', dir]);
  node.ok(['run', '--name', 'stuck', 'stuck:0.1.0']);
  await sleep(300);
  execFileSync('/bin/true');
  const stopped = await until('the stuck processor to be stopped', () =>
    logs(node, 'stuck').find((r) => r.source === 'processor'),
  );
  assert.match(stopped.line!, /was stopped: it took more than 2000 ms over a batch/);
  execFileSync('/bin/true');
  await until('events logged as they come', () => logs(node, 'stuck').find((r) => r.event?.comm === 'true'));
  assert.match(
    node.json<{ events: { processor?: { failed?: string } } }>(['inspect', 'stuck']).events.processor!.failed!,
    /was stopped/,
  );

  node.ok(['rm', '-f', 'es']);
  node.ok(['rm', '-f', 'stuck']);
  await node.stopAgent();
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] }, 'nothing left in the kernel');
});
