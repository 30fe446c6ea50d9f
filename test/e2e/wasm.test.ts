// Wasm guests through the real CLI and agent processes: the example guest (built here for
// wasm32-wasi on kbpf's guest SDK) runs from a bare .wasm, its events are in `kbpf logs` and its
// map update in `kbpf maps`; the capability manifest refuses an attach outside it; a guest that
// loops is stopped within its CPU budget and one that traps is reported; kill -9 of the agent
// takes its guests' kernel objects with it and a restarted agent starts them again; nothing is
// left in the kernel at the end.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { compileGuest } from '../../src/compile/guest.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';
import { Node, ROOT } from './cli.js';

const EXAMPLE = join(ROOT, 'examples/wasm-execcount');
const VMLINUX_CACHE = fileURLToPath(new URL('../../../build/', import.meta.url));

interface LogLine {
  source: string;
  line: string;
}

function logs(node: Node, name: string): LogLine[] {
  return node
    .ok(['logs', '-o', 'json', name])
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
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

function execSome(): void {
  for (let i = 0; i < 5; i++) execFileSync('/bin/true');
}

test('a Wasm guest runs from a bare .wasm: logs, maps, manifest, budget, trap, kill -9, nothing left', async (t) => {
  const before = kernelIds();
  const dir = tempDir(t, 'kbpf-guest-');
  const wasm = join(dir, 'execcount.wasm');
  await compileGuest(EXAMPLE, wasm, { cacheDir: VMLINUX_CACHE });
  const node = new Node(t);
  await node.startAgent();

  // runs, prints decoded events, updates its map
  node.ok(['run', '--name', 'ec', wasm, '--', '--elsewhere']);
  const seen = await until('decoded events in the log', () => {
    execSome();
    const l = logs(node, 'ec').filter((r) => r.line.startsWith('exec pid='));
    return l.length >= 3 ? l : undefined;
  });
  assert.match(seen[0]!.line, /^exec pid=\d+ uid=\d+ comm=\S+/);
  assert.ok(
    seen.some((r) => r.line.includes('comm=true')),
    'the exec this test caused is there',
  );
  const maps = node.json<{ name: string; entries: [number, number][] }[]>(['maps', 'ec']);
  const stats = maps.find((m) => m.name === 'guest_stats')!;
  assert.equal(stats.entries[0]![0], 0);
  assert.ok(Number(stats.entries[0]![1]) >= 3, `the guest's count is in the map (${stats.entries[0]![1]})`);

  // the manifest: inspect shows it; the attach outside it was refused, the guest saw -EPERM
  const status = node.json<{ phase: string; guest: { capabilities: Record<string, string[]> } }>(['inspect', 'ec']);
  assert.equal(status.phase, 'running');
  assert.deepEqual(status.guest.capabilities, {
    attachTargets: ['tracepoint/sched/sched_process_exec'],
    maps: ['events', 'guest_stats'],
    programTypes: ['tracepoint'],
  });
  const all = logs(node, 'ec');
  assert.ok(
    all.some((r) => r.source === 'refused' && r.line.includes('sched/sched_process_fork')),
    'the refusal is in the log',
  );
  assert.ok(
    all.some((r) => r.line === 'attach elsewhere: -1'),
    'the guest got -EPERM',
  );

  // a guest that loops is stopped within its budget; one that traps is reported
  const started = Date.now();
  node.ok(['run', '--name', 'spin', '--cpu-budget', '300', '--cpu-window', '1000', wasm, '--', '--loop']);
  node.ok(['run', '--name', 'trap', wasm, '--', '--trap']);
  const spin = await until('the looping guest to be stopped', () => {
    const s = node.json<{ phase: string; message?: string }>(['inspect', 'spin']);
    return s.phase === 'failed' ? s : undefined;
  });
  assert.ok(Date.now() - started < 5000, `stopped within its budget (${Date.now() - started} ms)`);
  assert.match(spin.message!, /over its budget of 300 ms per 1000 ms/);
  const trap = await until('the trap to be reported', () => {
    const s = node.json<{ phase: string; message?: string }>(['inspect', 'trap']);
    return s.phase === 'failed' ? s : undefined;
  });
  assert.match(trap.message!, /trapped: unreachable/);
  const ps = node.json<{ name: string; phase: string }[]>(['ps']);
  assert.equal(ps.find((p) => p.name === 'ec')!.phase, 'running', 'the other guest is unaffected');

  // kill -9 of the agent: the guest's process dies with it, the kernel releases its objects
  const progId = node.json<{ programs: { progId?: number }[] }>(['inspect', 'ec']).programs[0]!.progId!;
  node.agent!.kill('SIGKILL');
  await node.waitAgentExit();
  await until('the guest to go with its agent', () => {
    const ids = kernelIds();
    return !ids.prog.has(progId) || undefined;
  });
  // a restarted agent starts the guest again, from the start
  await sleep(200); // the killed agent's pid lock: its process must be reaped
  await node.startAgent();
  const again = await until('the guest to run again', () => {
    const s = node.json<{ phase: string; programs: { progId?: number }[] }>(['inspect', 'ec']);
    return s.phase === 'running' && s.programs[0]!.progId ? s : undefined;
  });
  assert.notEqual(again.programs[0]!.progId, progId, 'its objects were loaded anew');
  await until('events after the restart', () => {
    execSome();
    return logs(node, 'ec').filter((r) => r.line === 'attached; waiting for exec()').length >= 2 || undefined;
  });

  node.ok(['clear', '--force']);
  await node.stopAgent();
  const left = await leftSince(before);
  assert.deepEqual(left, { prog: [], map: [], link: [] }, 'nothing left in the kernel');
});

test('kbpf build of a guest directory: compiled here or prebuilt, run from the store like any package', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  await node.startAgent();
  // the example's source: main.c beside execcount.bpf.c, with kbpf.yaml's name, version and limits
  const built = node.ok(['build', EXAMPLE]);
  assert.match(built, /built execcount:1\.0\.0/);
  const image = node.json<{ spec: { guest?: { module: string; limits?: { memoryMb?: number } } } }>([
    'inspect',
    'execcount:1.0.0',
  ]);
  assert.equal(image.spec.guest?.module, 'execcount.wasm');
  assert.equal(image.spec.guest?.limits?.memoryMb, 32);
  // a directory holding one prebuilt guest module (as wasm-bpf's toolchain makes them)
  const dir = tempDir(t, 'kbpf-prebuilt-');
  await compileGuest(EXAMPLE, join(dir, 'counter.wasm'), { cacheDir: VMLINUX_CACHE });
  assert.match(node.ok(['build', '--tag', 'counter:0.1.0', dir]), /built counter:0\.1\.0/);

  node.ok(['run', '--name', 'ecb', 'execcount:1.0.0']);
  node.ok(['run', '--name', 'ecp', 'counter:0.1.0']);
  for (const name of ['ecb', 'ecp'])
    await until(`${name}'s decoded events`, () => {
      execSome();
      return logs(node, name).some((r) => r.line.startsWith('exec pid=')) || undefined;
    });
  node.ok(['rm', '-f', 'ecb']);
  node.ok(['rm', '-f', 'ecp']);
  await node.stopAgent();
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] }, 'nothing left in the kernel');
});
