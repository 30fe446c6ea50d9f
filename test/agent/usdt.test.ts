// USDT probes run by the agent: the binary's SDT notes read by kbpf, argument specs written into
// the object's __bpf_usdt_specs, one pinned uprobe link per probe site with the spec id as its
// cookie — so the instance survives an agent restart, and rm leaves nothing (the semaphores it
// raised are lowered again).
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hookSupport, readUsdtProbes } from 'kbpf/bpf';
import { Invalid, isKind, NotFound } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs } from '../bpf/leak-check.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };
const OURS = {
  progs: ['on_tick', 'on_konst', 'on_guarded', 'on_throw'],
  maps: ['events', 'events_lost', 'throws', '__bpf_usdt_specs', '__bpf_usdt_ip_to_spec_id'],
  objects: ['usdt_probe', 'usdt_lib'],
};

interface ProbeEvent {
  probe: number;
  pid: number;
  arg0: number;
  arg1: number;
  arg2: number;
  arg3: number;
  nargs: number;
}

function buildTarget(t: { after(fn: () => unknown): void }): string {
  const bin = join(tempDir(t, 'kbpf-usdt-'), 'usdt_target');
  execFileSync('cc', ['-O2', '-g', '-o', bin, join(FIXTURES, 'usdt_target.c')]);
  return bin;
}

function events(agent: { logs: { read(n: string): Record<string, unknown>[] } }, name: string): ProbeEvent[] {
  return agent.logs.read(name).map((r) => {
    const e = r.event as Record<string, unknown>;
    return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, Number(v)])) as unknown as ProbeEvent;
  });
}

async function until<T>(what: string, get: () => T, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(v)}`);
    await sleep(20);
  }
}

/** What one round of fire(i) reports, as usdt_target.c computes it (p.a grows by i before each round). */
function expectedRound(i: number, pid: number, a: number): ProbeEvent[] {
  return [
    { probe: 1, pid, arg0: i, arg1: a, arg2: -7 - i, arg3: 200, nargs: 4 },
    { probe: 2, pid, arg0: 42, arg1: -5, arg2: 0, arg3: 0, nargs: 2 },
    { probe: 3, pid, arg0: 1000 + i, arg1: 0, arg2: 0, arg3: 0, nargs: 1 },
  ];
}

/** The value of a probe's semaphore in a running process, read from its memory. */
function semaphore(pid: number, bin: string, probe: string): number {
  const { semaphoreOffset } = readUsdtProbes(readFileSync(bin), bin).find((x) => x.name === probe)!;
  // the mapping of the binary that holds the semaphore's file offset
  const vma = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/))
    .filter((f) => f[5] === bin)
    .map((f) => {
      const [lo, hi] = f[0]!.split('-').map((x) => Number.parseInt(x, 16)) as [number, number];
      return { lo, hi, off: Number.parseInt(f[2]!, 16) };
    })
    .find((m) => semaphoreOffset >= m.off && semaphoreOffset < m.off + (m.hi - m.lo));
  assert.ok(vma, `a mapping of ${bin} holds the semaphore of ${probe}`);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const buf = Buffer.alloc(2);
    readSync(fd, buf, 0, 2, vma.lo + (semaphoreOffset - vma.off));
    return buf.readUInt16LE(0);
  } finally {
    closeSync(fd);
  }
}

/** A usdt_target that fires one round per line on stdin. */
async function waitingTarget(t: { after(fn: () => unknown): void }, bin: string) {
  const child = spawn(bin, ['wait']) as ChildProcessWithoutNullStreams;
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await until(
    'the target is ready',
    () => out,
    (o) => o.includes('ready'),
  );
  return {
    pid: child.pid!,
    async fire(): Promise<void> {
      const n = out.split('fired').length;
      child.stdin.write('\n');
      await until(
        'the target fired',
        () => out.split('fired').length,
        (m) => m > n,
      );
    },
  };
}

test('USDT probes of a test binary deliver their arguments (register, memory, constant), raise their semaphores, survive an agent restart, and rm leaves nothing', async (t) => {
  if (hookSupport('uprobe').supported !== 'yes') return t.skip(hookSupport('uprobe').detail);
  const before = kernelIds();
  const bin = buildTarget(t);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('usdt_probe'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs.find((p) => p.name === 'on_tick')!.attach, { hook: 'usdt' });

  // a bare usdt section needs its target, and a probe the binary lacks is named with what it has
  await assert.rejects(ta.agent.run({ image: ref, name: 'usdt' }), (e: Error) => {
    assert.ok(isKind(e, Invalid), e.message);
    assert.match(e.message, /--attach on_tick=usdt:BINARY:PROVIDER:NAME\[:pid=PID\]/);
    return true;
  });
  const targets = (probe: (p: string) => string) => ({
    programs: { on_tick: probe('tick'), on_konst: probe('konst'), on_guarded: probe('guarded') },
  });
  await assert.rejects(
    ta.agent.run({ image: ref, name: 'usdt', attach: targets((p) => `usdt:${bin}:kbpftest:${p}x`) }),
    (e: Error) => {
      assert.ok(isKind(e, NotFound), e.message);
      assert.match(
        e.message,
        /has no USDT probe kbpftest:tickx \(it has kbpftest:tick, kbpftest:konst, kbpftest:guarded\)/,
      );
      return true;
    },
  );
  assert.equal(ta.agent.list().length, 0);
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);

  const waiting = await waitingTarget(t, bin);
  assert.equal(semaphore(waiting.pid, bin, 'guarded'), 0);
  const st = await ta.agent.run({ image: ref, name: 'usdt', attach: targets((p) => `usdt:${bin}:kbpftest:${p}`) });
  assert.equal(st.phase, 'running');
  assert.equal(st.programs.find((p) => p.name === 'on_tick')!.attach, `usdt ${bin}:kbpftest:tick`);
  // the kernel raised the semaphore of every process that maps the binary, this one too
  assert.equal(semaphore(waiting.pid, bin, 'guarded'), 1);

  const r = spawnSync(bin, ['3']);
  assert.equal(r.status, 0);
  const want = [0, 1, 2].flatMap((i) => expectedRound(i, r.pid!, 1234567890123 + (i * (i + 1)) / 2));
  const got = await until(
    'three rounds of events',
    () => events(ta.agent, 'usdt'),
    (e) => e.length >= want.length,
  );
  assert.deepEqual(got, want);

  // a restarted agent adopts what is pinned: the probes keep firing into the instance's log
  await ta.agent.close();
  const { Agent } = await import('../../src/agent/agent.js');
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  assert.equal(ta.agent.inspect('usdt').phase, 'running');
  await waiting.fire();
  const after = await until(
    'events after the restart',
    () => events(ta.agent, 'usdt').filter((e) => e.pid === waiting.pid),
    (e) => e.length >= 3,
  );
  assert.deepEqual(after, expectedRound(0, waiting.pid, 1234567890123));

  // one process only: a run with :pid=N sees that process and no other
  const solo = await ta.agent.run({
    image: ref,
    name: 'usdt-solo',
    attach: targets((p) => `usdt:${bin}:kbpftest:${p}:pid=${waiting.pid}`),
  });
  assert.equal(
    solo.programs.find((p) => p.name === 'on_tick')!.attach,
    `usdt ${bin}:kbpftest:tick (pid ${waiting.pid})`,
  );
  assert.equal(spawnSync(bin, ['2']).status, 0);
  await waiting.fire();
  const soloEvents = await until(
    'the solo instance sees its process',
    () => events(ta.agent, 'usdt-solo'),
    (e) => e.length >= 3,
  );
  await sleep(100);
  assert.ok(
    events(ta.agent, 'usdt-solo').every((e) => e.pid === waiting.pid),
    JSON.stringify(soloEvents),
  );
  // the kernel counts the uprobe once per process, however many links share it
  assert.equal(semaphore(waiting.pid, bin, 'guarded'), 1);

  await ta.agent.remove('usdt', { force: true });
  assert.equal(semaphore(waiting.pid, bin, 'guarded'), 1, 'the other instance still holds the semaphore');
  await ta.agent.remove('usdt-solo', { force: true });
  assert.equal(semaphore(waiting.pid, bin, 'guarded'), 0, 'rm lowers the semaphores again');
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
  assert.ok(!existsSync(ta.paths.bpffsDir) || readdirSync(ta.paths.bpffsDir).length === 0);
});

test("a USDT probe of a real library named in the section (libstdc++'s throw) counts a C++ program's throws", async (t) => {
  if (hookSupport('uprobe').supported !== 'yes') return t.skip(hookSupport('uprobe').detail);
  const before = kernelIds();
  const bin = join(tempDir(t, 'kbpf-usdt-'), 'throw_target');
  execFileSync('c++', ['-O2', '-o', bin, join(FIXTURES, 'throw_target.cc')]);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('usdt_lib'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs[0]!.attach, { hook: 'usdt', target: 'libstdc++.so.6:libstdcxx:throw' });
  const st = await ta.agent.run({ image: ref, name: 'throws' });
  assert.equal(st.phase, 'running');
  const r = spawnSync(bin, ['5']);
  assert.equal(r.status, 0);
  const counts = await until(
    'five throws counted',
    () => new Map(ta.agent.maps('throws', 'throws')[0]!.entries.map(([k, v]) => [Number(k), Number(v)])),
    (m) => m.get(r.pid!) === 5,
  );
  assert.equal(counts.get(r.pid!), 5);
  await ta.agent.remove('throws', { force: true });
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
});
