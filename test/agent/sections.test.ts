// Packages in every style libbpf knows, run as this kernel allows: variants chosen by feature
// probes before anything loads, programs the kernel cannot run refused naming the feature,
// perf_event samplers on every CPU, iterators into the log, map sizes and shared maps.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfMap, hookSupport, onlineCpus } from 'kbpf/bpf';
import { Conflict, Invalid, isKind, Unsupported } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, uniqueName } from '../../testbed/kernel.js';
import { leftOfOurs, type Ours } from '../bpf/leak-check.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };

function hits(agent: { maps(n: string, m?: string): { entries: [unknown, unknown][] }[] }, name: string, map: string) {
  const out = new Map<number, number>();
  for (const [k, v] of agent.maps(name, map)[0]!.entries) out.set(Number(k), Number(v));
  return out;
}

async function refusedLeavingNothing(
  run: () => Promise<unknown>,
  ours: Ours,
  check: (e: Error) => boolean,
  hintsAtManifest = false,
): Promise<void> {
  const before = kernelIds();
  await assert.rejects(run, (e: Error) => {
    assert.ok(check(e), e.message);
    if (!hintsAtManifest) assert.doesNotMatch(e.message, /kbpf\.yaml/);
    return true;
  });
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
}

/** Keeps every CPU busy for `ms` (children spinning), so samplers see samples everywhere. */
async function busyCpus(ms: number): Promise<void> {
  const kids = onlineCpus().map(() => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, ms));
  for (const k of kids) k.kill('SIGKILL');
}

test('fentry + kprobe variants of one probe: the variant this kernel has runs, or the run is refused naming both, before anything loads', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('unlink_variants'));
  const fentry = hookSupport('fentry').supported === 'yes';
  const kprobe = hookSupport('kprobe').supported === 'yes';
  const ours = { progs: ['unlink_fentry', 'unlink_kprobe'], maps: ['unlink_hits'], objects: ['unlink_variants'] };
  if (!fentry && !kprobe) {
    await refusedLeavingNothing(
      () => ta.agent.run({ image: ref, name: 'unlinks' }),
      ours,
      (e) =>
        isKind(e, Unsupported) &&
        /entry of do_unlinkat/.test(e.message) &&
        /fentry is refused by this kernel/.test(e.message) &&
        /this kernel has no kprobe support/.test(e.message),
    );
    assert.equal(ta.agent.list().length, 0);
    return;
  }
  const st = await ta.agent.run({ image: ref, name: 'unlinks' });
  const chosen = fentry ? 'unlink_fentry' : 'unlink_kprobe';
  const other = fentry ? 'unlink_kprobe' : 'unlink_fentry';
  assert.equal(st.programs.find((p) => p.name === chosen)!.state, 'running');
  assert.equal(st.programs.find((p) => p.name === other)!.state, 'disabled');
  assert.equal(st.programs.find((p) => p.name === other)!.progId, undefined);
});

test('tp_btf + raw_tp + tracepoint variants: tp_btf runs and says why; an optional program on a missing tracepoint is skipped with a warning', async (t) => {
  if (hookSupport('tp_btf').supported !== 'yes') return t.skip(`no tp_btf here: ${hookSupport('tp_btf').detail}`);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('exec_variants'));
  const st = await ta.agent.run({ image: ref, name: 'execs' });
  const state = Object.fromEntries(st.programs.map((p) => [p.name, p.state]));
  assert.deepEqual(state, { exec_btf: 'running', exec_raw: 'disabled', exec_tp: 'disabled', nowhere: 'skipped' });
  assert.match(st.programs.find((p) => p.name === 'exec_btf')!.reason!, /chosen for the event sched_process_exec/);
  assert.match(
    st.programs.find((p) => p.name === 'exec_raw')!.reason!,
    /variant of exec_btf \(tp_btf sched_process_exec\)/,
  );
  assert.ok(
    st.warnings?.some((w) => /skipped optional program nowhere .*no tracepoint kbpf_nowhere\/no_such_event/.test(w)),
  );
  assert.deepEqual(
    st.programs.filter((p) => p.progId !== undefined).map((p) => p.name),
    ['exec_btf'],
  );
  await new Promise<void>((r) => spawn('/bin/true').on('exit', () => r()));
  const h = hits(ta.agent, 'execs', 'exec_hits');
  assert.ok((h.get(0) ?? 0) > 0, 'the tp_btf variant saw the exec');
  assert.equal(h.get(1), 0);
  assert.equal(h.get(2), 0);
  // the choice is the kernel's, so a restarted agent finds the same and adopts it
  await ta.agent.close();
  const { Agent } = await import('../../src/agent/agent.js');
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  const again = ta.agent.inspect('execs');
  assert.equal(again.phase, 'running');
  assert.equal(again.programs.find((p) => p.name === 'exec_raw')!.state, 'disabled');
});

test('a kprobe-only package builds, and its run fails naming the missing feature with nothing loaded', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('kprobe_only'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs[0]!.attach, { hook: 'kprobe', target: 'do_unlinkat' });
  if (hookSupport('kprobe').supported === 'yes') return t.skip('this kernel has kprobes: nothing to refuse');
  await refusedLeavingNothing(
    () => ta.agent.run({ image: ref, name: 'kp' }),
    { progs: ['unlink_entry'], maps: ['kprobe_hits'], objects: ['kprobe_only'] },
    (e) =>
      isKind(e, Unsupported) &&
      /program unlink_entry \(section "kprobe\/do_unlinkat"\) cannot run on this kernel: this kernel has no kprobe support/.test(
        e.message,
      ),
  );
  assert.equal(ta.agent.list().length, 0);
});

test('a perf_event sampler attaches on every online CPU and sees samples on each; a hardware event falls back to cpu-clock where there is no PMU', async (t) => {
  if (hookSupport('perf_event').supported !== 'yes') return t.skip(hookSupport('perf_event').detail);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('cpu_sampler'));
  const st = await ta.agent.run({ image: ref, name: 'sampler', attach: { programs: { sample: 'cpu-clock:999' } } });
  assert.equal(st.programs[0]!.attach, 'perf_event cpu-clock:999 (every CPU)');
  const cpus = onlineCpus();
  const pins = ta.agent.instanceMapPath('sampler', 'samples').replace(/maps\/samples$/, 'links');
  assert.equal((await import('node:fs')).readdirSync(pins).length, cpus.length, 'one link per CPU');
  await busyCpus(400);
  const h = hits(ta.agent, 'sampler', 'samples');
  for (const cpu of cpus) assert.ok((h.get(cpu) ?? 0) > 0, `samples on CPU ${cpu}: ${JSON.stringify([...h])}`);

  const hw = await ta.agent.run({
    image: ref,
    name: 'cycles',
    attach: { programs: { sample: 'perf_event:cycles:99' } },
  });
  if (existsSync('/sys/bus/event_source/devices/cpu')) assert.equal(hw.warnings, undefined);
  else
    assert.ok(hw.warnings?.some((w) => /perf event cycles cannot be opened here .*sampling cpu-clock instead/.test(w)));
  assert.equal(hw.phase, 'running');
});

test("an iterator's output becomes the instance's log", async (t) => {
  if (hookSupport('iter').supported !== 'yes') return t.skip(hookSupport('iter').detail);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('task_lines'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs[0]!.attach, { hook: 'iter', target: 'task' });
  await ta.agent.run({ image: ref, name: 'tasks' });
  const lines = ta.agent.logs.read('tasks').map((r) => (r.event as { output: string }).output);
  assert.equal(lines[0], 'PID COMM');
  // kthreadd is pid 2 in the kernel's own pid namespace, on every Linux
  assert.ok(lines.includes('2 kthreadd'), `kthreadd listed: ${lines.slice(0, 5).join(' | ')}`);
  assert.ok(lines.filter((l) => /^\d+ \S/.test(l)).length >= 10, 'a line per task');
});

test('map sizes: a map left at 0 is refused naming it; --map-size sets max_entries before load', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('sized_later'));
  await refusedLeavingNothing(
    () => ta.agent.run({ image: ref, name: 'sized' }),
    { progs: ['count_pid'], maps: ['per_pid'], objects: ['sized_later'] },
    (e) => isKind(e, Invalid) && /map per_pid \(hash\) has max_entries 0.*--map-size per_pid=N/.test(e.message),
    true,
  );
  await assert.rejects(ta.agent.run({ image: ref, name: 'sized', attach: { mapSizes: { nope: 1 } } }), /no map "nope"/);
  await ta.agent.run({ image: ref, name: 'sized', attach: { mapSizes: { per_pid: 321 } } });
  const m = BpfMap.fromPin(ta.agent.instanceMapPath('sized', 'per_pid'));
  try {
    assert.equal(m.info().maxEntries, 321);
  } finally {
    m.close();
  }
});

test("map sharing: a second instance uses the first one's map; a different layout is refused; the owner is kept while used", async (t) => {
  const ta = await testAgent(t);
  const owner = uniqueName('owner').toLowerCase();
  await ta.agent.run({ image: await ta.build(PKG('share_owner')), name: owner });
  const user = await ta.agent.run({
    image: await ta.build(PKG('share_user')),
    name: 'user',
    attach: { shareMaps: { tally: owner } },
  });
  assert.equal(user.maps[0]!.mapId, ta.agent.inspect(owner).maps[0]!.mapId, 'the same kernel map');
  void process.ppid; // getppid(): both programs count
  const h = hits(ta.agent, owner, 'tally');
  assert.ok((h.get(1) ?? 0) > 0 && (h.get(2) ?? 0) > 0, JSON.stringify([...h]));

  await refusedLeavingNothing(
    async () =>
      ta.agent.run({
        image: await ta.build(PKG('share_mismatch')),
        name: 'mismatch',
        attach: { shareMaps: { tally: `${owner}:tally` } },
      }),
    { progs: ['count_mismatch'], objects: ['share_mismatch'] },
    (e) =>
      isKind(e, Conflict) &&
      /map tally cannot be shared with instance .*: its map is hash, key 4 B, value 8 B, 64 entries, this package's is hash, key 4 B, value 4 B, 64 entries/.test(
        e.message,
      ),
  );
  await assert.rejects(
    ta.agent.run({ image: 'share_user:0.0.0', name: 'u2', attach: { shareMaps: { tally: 'nobody' } } }),
    /instance nobody, which does not exist/,
  );

  await ta.agent.stop(owner);
  await assert.rejects(
    ta.agent.remove(owner),
    (e: Error) => isKind(e, Conflict) && /shares its maps with instance\(s\) user/.test(e.message),
  );
  await ta.agent.remove(owner, { force: true });
  // the user keeps the map it shares
  void process.ppid;
  assert.ok((hits(ta.agent, 'user', 'tally').get(2) ?? 0) > 0);
});

test('uprobes without a target: the package builds; run asks for one in the form it takes, and attaches where told', async (t) => {
  if (hookSupport('uprobe').supported !== 'yes') return t.skip(hookSupport('uprobe').detail);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('bare_uprobe'));
  await refusedLeavingNothing(
    () => ta.agent.run({ image: ref, name: 'calls' }),
    { progs: ['on_call', 'on_return'], maps: ['calls'], objects: ['bare_uprobe'] },
    (e) =>
      isKind(e, Invalid) &&
      /--attach on_call=uprobe:BINARY:SYMBOL; e\.g\. --attach on_call=uprobe:\/usr\/bin\/bash:readline/.test(e.message),
  );
  const libc = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/)[5])
    .find((p) => p && /\/libc[.-]/.test(p))!;
  const st = await ta.agent.run({
    image: ref,
    name: 'calls',
    attach: { programs: { on_call: `uprobe:${libc}:getppid`, on_return: `uretprobe:${libc}:getppid` } },
  });
  assert.equal(st.programs[0]!.attach, `uprobe ${libc}:getppid`);
  void process.ppid;
  const h = hits(ta.agent, 'calls', 'calls');
  assert.ok((h.get(0) ?? 0) > 0 && (h.get(1) ?? 0) > 0, JSON.stringify([...h]));
});
