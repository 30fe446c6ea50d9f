// End to end through the real CLI and agent processes: build -> run -> logs shows an event the
// test caused -> upgrade (events keep flowing, a counter map keeps its value) -> rollback -> rm,
// with bpftool showing nothing left; failed build and failed run leave nothing; kill -9 of the
// agent mid-upgrade keeps programs running and a restarted agent is consistent; the 0600 socket
// refuses a non-root user.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { bpftoolShow, kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';
import { KBPF, Node, ROOT } from './cli.js';

interface LogLine {
  seq: number;
  event: { pid: number; path: string; flags: number };
}

/** A process that opens DIR/seq-N files in a loop, one every `everyMs`. */
function opener(dir: string, everyMs: number) {
  const script = `const fs=require('fs');let n=0;setInterval(()=>{fs.closeSync(fs.openSync(${JSON.stringify(dir)}+'/seq-'+(n++),'w'))},${everyMs});`;
  const p = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  return p;
}

function seqsIn(lines: LogLine[]): number[] {
  return [
    ...new Set(
      lines
        .map((l) => /seq-(\d+)$/.exec(l.event.path)?.[1])
        .filter((x): x is string => !!x)
        .map(Number),
    ),
  ].sort((a, b) => a - b);
}

/** Sequence numbers missing between the first and the last one seen. */
function gaps(seqs: number[]): number[] {
  const seen = new Set(seqs);
  const missing: number[] = [];
  for (let i = seqs[0]!; i <= seqs.at(-1)!; i++) if (!seen.has(i)) missing.push(i);
  return missing;
}

/** The instance's log as JSON lines. */
function jsonLogs(node: Node, instance: string): LogLine[] {
  return node
    .ok(['logs', '-o', 'json', instance])
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

function variant(dir: string, from: string, version: string, edit: (c: string) => string): string {
  cpSync(from, dir, { recursive: true });
  const c = join(dir, 'opensnoop.bpf.c');
  writeFileSync(c, edit(readFileSync(c, 'utf8')));
  const y = join(dir, 'kbpf.yaml');
  writeFileSync(y, readFileSync(y, 'utf8').replace(/version: .*/, `version: ${version}`));
  return dir;
}

test('build, run, logs, upgrade, rollback, rm through the CLI', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  const work = tempDir(t, 'kbpf-e2e-src-');
  const opens = tempDir(t, 'kbpf-e2e-opens-');

  const built = node.ok(['build', join(ROOT, 'examples/opensnoop')]);
  assert.match(built, /opensnoop:1\.0\.0/);
  node.ok([
    'build',
    variant(join(work, 'v2'), join(ROOT, 'examples/opensnoop'), '2.0.0', (c) =>
      c.replace('e->flags = (__s32)ctx->args[2];', 'e->flags = (__s32)ctx->args[2] | 0x40000000;'),
    ),
  ]);
  await node.startAgent();
  const images = node.json<{ name: string; tags: string[] }[]>(['images']);
  assert.deepEqual(images.map((i) => [i.name, i.tags]).sort(), [
    ['opensnoop', ['1.0.0']],
    ['opensnoop', ['2.0.0']],
  ]);
  const gen = opener(opens, 20);
  t.after(() => gen.kill('SIGKILL'));
  node.ok(['run', '--name', 'snoop', '--set', `target_pid=${gen.pid}`, 'opensnoop:1.0.0']);
  const ps = node.json<{ name: string; phase: string; revision: number }[]>(['ps']);
  assert.deepEqual(
    ps.map((p) => [p.name, p.phase, p.revision]),
    [['snoop', 'running', 1]],
  );

  await sleep(700);
  let logs = jsonLogs(node, 'snoop');
  assert.ok(logs.length > 5, `events arrive (${logs.length})`);
  assert.equal(logs[0]!.event.pid, gen.pid);
  const table = node.ok(['logs', '--tail', '3', 'snoop']);
  assert.match(table.split('\n')[0]!, /PID.*COMM.*PATH/i);

  const count = () => {
    const maps = node.json<{ name: string; entries: [string, number][] }[]>(['maps', 'snoop', 'opens_by_comm']);
    return maps[0]!.entries.reduce((n, [, v]) => n + Number(v), 0);
  };
  const c1 = count();
  assert.ok(c1 > 0);

  node.ok(['upgrade', 'snoop', 'opensnoop:2.0.0']);
  await sleep(700);
  assert.ok(count() > c1, 'the counter map kept its value and keeps counting');
  node.ok(['rollback', 'snoop']);
  await sleep(700);
  gen.kill('SIGKILL');
  await sleep(300);
  logs = jsonLogs(node, 'snoop');
  assert.deepEqual(gaps(seqsIn(logs)), [], 'no event lost across upgrade and rollback');
  assert.ok(
    logs.some((l) => (l.event.flags & 0x40000000) !== 0),
    'some events came from revision 2',
  );
  assert.ok((logs.at(-1)!.event.flags & 0x40000000) === 0, 'the last events come from the rolled-back code');
  const history = node.json<{ revision: number; cause: string }[]>(['history', 'snoop']);
  assert.deepEqual(
    history.map((h) => [h.revision, h.cause]),
    [
      [1, 'run'],
      [2, 'upgrade'],
      [3, 'rollback'],
    ],
  );

  node.ok(['rm', '-f', 'snoop']);
  assert.deepEqual(node.json<unknown[]>(['ps']), []);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('a failed build and a failed run leave nothing', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  const bad = tempDir(t, 'kbpf-e2e-bad-');
  writeFileSync(join(bad, 'broken.bpf.c'), '#include "vmlinux.h"\nint x(void) { return y; }\n');
  const r = node.kbpf(['build', '-t', 'broken:1.0', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /broken\.bpf\.c:2:\d+: error/);
  await node.startAgent();
  assert.deepEqual(node.json<unknown[]>(['images']), []);
  node.ok(['build', join(ROOT, 'examples/tcpconnect')]);
  const fail = node.kbpf([
    'run',
    '--name',
    'tc1',
    '--cgroup',
    '/sys/fs/cgroup/unified/no-such-cgroup',
    'tcpconnect:1.0.0',
  ]);
  assert.equal(fail.code, 1);
  assert.match(fail.stderr, /no-such-cgroup/);
  const badSet = node.kbpf(['run', '--set', 'nope=1', 'tcpconnect:1.0.0']);
  assert.equal(badSet.code, 1);
  assert.match(badSet.stderr, /unknown config variable "nope"/);
  assert.deepEqual(node.json<unknown[]>(['ps']), []);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('kill -9 of the agent mid-upgrade: programs keep running, the restarted agent is consistent', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  const work = tempDir(t, 'kbpf-e2e-src-');
  const opens = tempDir(t, 'kbpf-e2e-opens-');
  node.ok(['build', join(ROOT, 'examples/opensnoop')]);
  node.ok([
    'build',
    variant(join(work, 'v2'), join(ROOT, 'examples/opensnoop'), '2.0.0', (c) =>
      c.replace('e->flags = (__s32)ctx->args[2];', 'e->flags = (__s32)ctx->args[2] | 0x40000000;'),
    ),
  ]);

  await node.startAgent({ KBPF_FAULT: 'upgrade-after-attach' });
  const gen = opener(opens, 20);
  t.after(() => gen.kill('SIGKILL'));
  node.ok(['run', '--name', 'crashy', '--set', `target_pid=${gen.pid}`, 'opensnoop:1.0.0']);
  const rev1 = JSON.parse(node.ok(['inspect', 'crashy'])) as { programs: { progId: number }[] };
  const up = node.kbpf(['upgrade', 'crashy', 'opensnoop:2.0.0']);
  assert.notEqual(up.code, 0, 'the agent died during the upgrade');
  await node.waitAgentExit();

  // while no agent runs, revision 1's program is still attached
  const links = bpftoolShow('link').filter((l) => l.prog_id === rev1.programs[0]!.progId);
  assert.equal(links.length, 1, 'revision 1 still attached while the agent is down');
  await sleep(300);

  await node.startAgent();
  const st = JSON.parse(node.ok(['inspect', 'crashy'])) as {
    revision: number;
    phase: string;
    programs: { progId: number }[];
    message?: string;
  };
  assert.equal(st.phase, 'running');
  assert.equal(st.revision, 1, 'the uncommitted upgrade was rolled back');
  assert.equal(st.programs[0]!.progId, rev1.programs[0]!.progId);
  assert.match(st.message ?? '', /interrupted/);
  const ours = bpftoolShow('link').filter((l) => l.type === 'perf_event' && l.prog_id === rev1.programs[0]!.progId);
  assert.equal(ours.length, 1, 'attached exactly once');
  // events from while the agent was down were kept in the ring and arrive now
  await sleep(500);
  gen.kill('SIGKILL');
  await sleep(300);
  assert.deepEqual(gaps(seqsIn(jsonLogs(node, 'crashy'))), [], 'no event lost while the agent was down');

  // the upgrade works once the agent is healthy
  node.ok(['upgrade', 'crashy', 'opensnoop:2.0.0']);
  assert.equal((JSON.parse(node.ok(['inspect', 'crashy'])) as { revision: number }).revision, 2);
  node.ok(['rm', '-f', 'crashy']);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('the agent socket is 0600 and refuses a non-root user', async (t) => {
  const node = new Node(t);
  await node.startAgent();
  assert.equal(statSync(node.socket).mode & 0o777, 0o600);
  const r = spawnSync(
    'setpriv',
    ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, KBPF, 'ps'],
    { env: node.env(), encoding: 'utf8' },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /permission denied|EACCES/i);
});

test('kill -9 in the middle of rm: the restarted agent does not bring the instance back, and sweeps its log', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  node.ok(['build', join(ROOT, 'examples/opensnoop')]);
  await node.startAgent({ KBPF_FAULT: 'rm-midway' });
  node.ok(['run', '--name', 'gone', '--set', `target_pid=${process.pid}`, 'opensnoop:1.0.0']);
  const logDir = join(node.stateDir, 'logs', 'gone');
  for (let i = 0; i < 100 && !existsSync(logDir); i++) {
    readFileSync(KBPF); // an openat by target_pid: an event, so a log
    await sleep(50);
  }
  assert.ok(existsSync(logDir), 'the instance has a log');
  assert.notEqual(node.kbpf(['rm', '-f', 'gone']).code, 0, 'the agent died during rm');
  await node.waitAgentExit();
  assert.ok(existsSync(join(node.bpffsDir, 'gone')), 'its pins were still there when the agent died');

  await node.startAgent();
  assert.deepEqual(node.json<unknown[]>(['ps']), [], 'not re-adopted');
  assert.equal(existsSync(join(node.bpffsDir, 'gone')), false, 'its pins were removed as orphans');
  assert.equal(existsSync(logDir), false, 'its log was swept');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
