// `npm run bench -- flows`: what flow-monitor costs and how many flows it delivers.
//
//   flows_conn_overhead_ratio   new connections/s between two pods (wrk, `Connection: close`) with
//                               flow-monitor running / without it, paired per repeat (goal >= 0.95)
//   flows_rps_overhead_ratio    requests/s on keep-alive connections, same pairing (goal >= 0.97)
//   flows_per_s_max_lossless    the highest rate of flow reports (written into the instance's ring
//                               by a synthetic producer, bench/flows_producer.bpf.c) that reaches
//                               a `kbpf flows -f -o json --metrics-listen` process — every line on
//                               its stdout and every flow in its metrics — with none lost; rates
//                               step up until one loses (goal >= 100,000)
//   flows_rss_mb_100k           the agent process's RSS with 100,000 open flows reported (the
//                               reader's too)
//   flows_conn_hooks_ratio,     the same rates with bench/flows-hooks instead: a program on each of
//   flows_rps_hooks_ratio       flow-monitor's hooks that returns at once, paired with the same off
//                               window — the floor the kernel's dispatch to those hooks sets, before
//                               any work of flow-monitor's own (--flows-hooks=0 leaves it out;
//                               --flows-hooks=DIR puts another package there instead, attached
//                               like flow-monitor: an A/B of two builds in one run)
//   flows_agent_idle_cpu_ms_per_s  the agent's CPU (ms a second) with flow-monitor loaded and no
//                               traffic, against _none: the same agent without an instance
//   flows_conn_cpu_ratio,       the pods' CPU (their parent cgroup's usage_usec: wrk, HAProxy and
//   flows_rps_cpu_ratio         the softirq work done in their context) per connection / request,
//                               off / on (flows_*_cpu_us_off|on): what the rate ratio would be on a
//                               machine doing nothing else; a busy machine disturbs it less
//
// The test bed is the mesh one without sidecars: pod A runs wrk against pod B's app (HAProxy
// answering itself on :80). flow-monitor runs on the pods' parent cgroup through a real agent
// process (`kbpf agent`, its own state directory, bpffs directory and API socket); the reader is
// a real `kbpf flows` process talking to that agent's API socket.
// Options: --duration=S (each window, default 3), --repeats=N (default 3), --flows-conns=N (wrk
// connections, default 16), --flows-rates=20000,50000,... (report rates to try),
// --flows-parts=overhead,delivery (default both; the RSS figures come with delivery; conn or rps
// instead of overhead for one of its two windows),
// --flows-reader-profile=DIR, --flows-agent-profile=DIR (the reader's, the agent's V8 CPU profile,
// written there when it stops),
// --flows-agent-warmup=N (windows of connections with flow-monitor on, not measured, before the
// repeats: the agent's code warmed up, as on a node running it for more than seconds; default 1),
// --flows-package=DIR (another build of the package, e.g. a variant of the programs to compare),
// --flows-config=NAME=VALUE,... (the instance's config), --flows-perf=DIR (`perf record -a -g` over
// each window, off and on: DIR/conn-off-N.data, DIR/rps-on-N.data, ...), --flows-progstats (the
// kernel's run time of each flow-monitor program per connection / request over the on windows,
// BPF stats on while they run), --flows-agent-args=A,B,... (more arguments of the agent's, e.g.
// --events-priority=normal), --flows-alt-agent=A,B,... (a second agent with these arguments, its
// own state and bpffs directories, runs flow-monitor for a third window each repeat, on and alt
// taken in turns: flows_conn_alt_ratio, flows_rps_alt_ratio against the same off window — an A/B
// of two agents' settings in one run; --flows-alt-package=DIR: the second agent runs that build
// of the package instead, e.g. other kbpf.yaml event settings; --flows-alt-state=DIR: the second
// agent's state directory, its logs with it, is made under DIR, e.g. a tmpfs).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BpfMap, BpfObject, ensureBpffs, infoOfId, RunTimeStats, testRunAsync } from 'kbpf/bpf';
import { ApiClient } from '../src/agent/api-client.js';
import { instanceMapPin } from '../src/agent/pins.js';
import { buildPackage } from '../src/compile/builder.js';
import { LayoutStore } from '../src/package/layout-store.js';
import { FLOW_APP_DIR } from '../testbed/flows.js';
import { type Pod, Testbed } from '../testbed/mesh/testbed.js';
import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRODUCER = join(here, 'flows_producer.bpf.o');
const HOOKS_PACKAGE = join(ROOT, 'bench/flows-hooks');
const KBPF = join(ROOT, 'bin/kbpf.js');

function arg(opts: BenchOptions, name: string): string | undefined {
  const a = opts.args.find((x) => x.startsWith(`--flows-${name}=`));
  return a?.slice(a.indexOf('=') + 1);
}

/** A comma-separated option's items (none when it is absent). */
function listArg(opts: BenchOptions, name: string): string[] {
  return (arg(opts, name) ?? '').split(',').filter((x) => x !== '');
}

/** How a window's rate reads: connections or requests a second. */
function unitOf(window: string): string {
  return window === 'conn' ? 'conn/s' : 'req/s';
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time of a process so far (user + system), in ms */
function cpuMs(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** CPU time of a process so far in user space and in the kernel, in ms */
function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) * 10, system: Number(f[12]) * 10 }; // clock ticks of 10 ms (USER_HZ 100)
}

/** A `kbpf agent` process with its own state and bpffs directories, reached on its API socket. */
async function startAgent(
  t: {
    after(f: () => unknown): void;
  },
  /** profileDir: its V8 CPU profile; args: more arguments; name: its bpffs directory's suffix; under: where its state directory is made */
  {
    profileDir,
    args = [],
    name = 'main',
    under = tmpdir(),
  }: { profileDir?: string; args?: string[]; name?: string; under?: string } = {},
): Promise<{ proc: ChildProcess; client: ApiClient; socket: string; stateDir: string; bpffsDir: string }> {
  ensureBpffs();
  const stateDir = mkdtempSync(join(under, 'kbpf-flows-bench-'));
  const bpffsDir = `/sys/fs/bpf/kbpf-flows-bench-${process.pid}-${name}`;
  const socket = join(stateDir, 'agent.sock');
  const proc = spawn(
    process.execPath,
    [
      // sampled every 10 ms: V8's profiler signals the thread at each sample, and a signal during
      // BPF_PROG_LOAD stops the verifier (EAGAIN), which the default 1 ms makes near-certain
      ...(profileDir ? ['--cpu-prof', '--cpu-prof-interval=10000', `--cpu-prof-dir=${profileDir}`] : []),
      KBPF,
      'agent',
      '--state-dir',
      stateDir,
      '--bpffs-dir',
      bpffsDir,
      '--socket',
      socket,
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const client = new ApiClient(socket);
  t.after(async () => {
    try {
      for (const s of await client.list().catch(() => [])) await client.remove(s.name, { force: true }).catch(() => {});
    } finally {
      client.close();
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
      rmSync(bpffsDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
  for (let i = 0; i < 200; i++) {
    if (existsSync(socket)) {
      try {
        await client.version();
        return { proc, client, socket, stateDir, bpffsDir };
      } catch {
        /* not ready */
      }
    }
    await sleep(50);
  }
  throw new Error('the agent did not start');
}

async function wrkRate(
  tb: Testbed,
  from: Pod,
  url: string,
  conns: number,
  keepAlive: boolean,
  durationS: number,
): Promise<number> {
  const args = [
    `-t1`,
    `-c${conns}`,
    `-d${durationS}s`,
    '--timeout',
    '5s',
    ...(keepAlive ? [] : ['-H', 'Connection: close']),
    url,
  ];
  const r = await tb.execInPod(from, 'wrk', args, { timeoutMs: (durationS + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr}${r.stdout}`);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`cannot parse wrk output:\n${r.stdout}`);
  return Number(m[1]);
}

/** CPU used so far by the processes of a cgroup (v2) and its children, µs */
function cgroupCpuUs(cgroup: string): number {
  const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(cgroup, 'cpu.stat'), 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** --flows-config=NAME=VALUE,...: numbers */
function configArg(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kv of (text ?? '').split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0 || !Number.isFinite(Number(kv.slice(i + 1)))) throw new Error(`--flows-config: not NAME=NUMBER: ${kv}`);
    out[kv.slice(0, i)] = Number(kv.slice(i + 1));
  }
  return out;
}

/** Run count and run time (ns) of each program, by name, from the kernel's info of its id */
function progStats(programs: Array<{ name: string; progId?: number }>): Map<string, { cnt: number; ns: number }> {
  const out = new Map<string, { cnt: number; ns: number }>();
  for (const p of programs) {
    const i = p.progId === undefined ? undefined : infoOfId('prog', p.progId);
    if (i) out.set(p.name, { cnt: Number(i.runCount), ns: Number(i.runTimeNs) });
  }
  return out;
}

/** Runs `f` under `perf record -a -g` writing DIR/NAME.data (just `f` without a DIR). */
async function perfed<T>(dir: string | undefined, name: string, f: () => Promise<T>): Promise<T> {
  if (!dir) return f();
  mkdirSync(dir, { recursive: true });
  const perf = spawn('perf', ['record', '-a', '-g', '-q', '-o', join(dir, `${name}.data`)], { stdio: 'ignore' });
  await sleep(300); // perf's start
  try {
    return await f();
  } finally {
    perf.kill('SIGINT');
    await new Promise((r) => (perf.exitCode !== null ? r(null) : perf.once('exit', r)));
  }
}

/** A `kbpf flows -f -o json` process: counts the lines it prints. */
class Reader {
  readonly proc: ChildProcess;
  lines = 0;
  constructor(socket: string, metricsPort: number, profileDir?: string) {
    this.proc = spawn(
      process.execPath,
      [
        ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
        KBPF,
        '--socket',
        socket,
        'flows',
        '--instance',
        'flows',
        '-f',
        '-o',
        'json',
        '--metrics-listen',
        `127.0.0.1:${metricsPort}`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.proc.stdout!.on('data', (d: Buffer) => {
      let n = 0;
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) n++;
      this.lines += n;
    });
  }
  stop(): void {
    this.proc.kill('SIGTERM');
  }
}

async function processed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^hubble_flows_processed_total\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
  return n;
}

export const benchmark: Benchmark = {
  name: 'flows',
  description:
    'flow-monitor: connection and request rate with it on vs off, flows/s delivered lossless to kbpf flows -f and metrics, agent RSS with 100k open flows',
  async run(opts) {
    const cleanups: Array<() => unknown> = [];
    const t = { after: (f: () => unknown) => cleanups.push(f) };
    try {
      const parts = (arg(opts, 'parts') ?? 'overhead,delivery').split(',');
      const tb = await Testbed.create(t, 'kbpfflowb');
      const a = await tb.addPod({ sidecar: false });
      const b = await tb.addPod({ sidecar: false });
      const ag = await startAgent(t, { profileDir: arg(opts, 'agent-profile'), args: listArg(opts, 'agent-args') });
      const api = ag.client;
      const store = new LayoutStore(join(ag.stateDir, 'store'));
      const pkgDir = arg(opts, 'package') ?? FLOW_APP_DIR;
      const ref = (await buildPackage(pkgDir, { store, cacheDir: join(ROOT, 'build') })).stored.reference;
      // the agents that run flow-monitor: this one (arm `on`), and a second one (`alt`) when any
      // --flows-alt-* option is given
      type FlowAgent = { agent: typeof ag; ref: string; arm: 'on' | 'alt' };
      const flowAgents: FlowAgent[] = [{ agent: ag, ref, arm: 'on' }];
      if (['alt-agent', 'alt-package', 'alt-state'].some((n) => arg(opts, n) !== undefined)) {
        const alt = await startAgent(t, {
          args: listArg(opts, 'alt-agent'),
          name: 'alt',
          under: arg(opts, 'alt-state'),
        });
        const altStore = new LayoutStore(join(alt.stateDir, 'store'));
        const built = await buildPackage(arg(opts, 'alt-package') ?? pkgDir, {
          store: altStore,
          cacheDir: join(ROOT, 'build'),
        });
        flowAgents.push({ agent: alt, ref: built.stored.reference, arm: 'alt' });
      }
      const hooksArg = arg(opts, 'hooks');
      const hooksDir = hooksArg === undefined || hooksArg === '0' ? HOOKS_PACKAGE : hooksArg;
      const hooksRef =
        hooksArg !== '0'
          ? (await buildPackage(hooksDir, { store, cacheDir: join(ROOT, 'build') })).stored.reference
          : undefined;
      const attach = { cgroup: tb.parentCgroup, mapSizes: { flows: 131072 } };
      const config = configArg(arg(opts, 'config'));
      // the floor package has none of flow-monitor's maps or config; another build of flow-monitor has
      const hooksRun = hooksDir === HOOKS_PACKAGE ? { attach: { cgroup: tb.parentCgroup } } : { attach, config };
      const perfDir = arg(opts, 'perf');
      const withProgStats = opts.args.includes('--flows-progstats');
      let programs: Array<{ name: string; progId?: number }> = []; // the running instance's
      const conns = Number(arg(opts, 'conns') ?? 16);
      const url = `http://${b.ip}:80/`;

      // 1. connection rate and request rate, off vs on, paired per repeat; with each rate the pods'
      // CPU (their parent cgroup's usage: wrk, HAProxy and the packets' softirq work in their
      // context) per connection / request, which a busy machine disturbs less than the rates
      const windows = parts.includes('overhead') ? ['conn', 'rps'] : parts.filter((p) => p === 'conn' || p === 'rps');
      if (windows.length > 0) {
        type Arm = 'off' | 'on' | 'hooks' | 'alt';
        type Series = Record<Arm, number[]> & { cpu: Record<Arm, number[]> };
        const m: Record<string, Series> = {};
        for (const w of windows)
          m[w] = { off: [], on: [], hooks: [], alt: [], cpu: { off: [], on: [], hooks: [], alt: [] } };
        const measure = async (w: string, arm: Arm, i: number): Promise<void> => {
          const s = m[w]!;
          const on = arm === 'on';
          // BPF stats on for this window only (held by an fd: off again if the window fails)
          using stats = on && withProgStats ? RunTimeStats.enable() : undefined;
          const ps0 = stats ? progStats(programs) : undefined;
          const u0 = cgroupCpuUs(tb.parentCgroup);
          const t0 = performance.now();
          const rate = await perfed(perfDir, `${w}-${arm}-${i + 1}`, () =>
            wrkRate(tb, a, url, conns, w === 'rps', opts.durationS),
          );
          const n = rate * opts.durationS; // wrk's rate is its count over its own run time
          const cpu = (cgroupCpuUs(tb.parentCgroup) - u0) / n;
          if (ps0) {
            const parts: string[] = [];
            let total = 0;
            for (const [name, b] of progStats(programs)) {
              const a0 = ps0.get(name) ?? { cnt: 0, ns: 0 };
              const ns = (b.ns - a0.ns) / n;
              total += ns;
              parts.push(`${name} ${ns.toFixed(0)} ns (${((b.cnt - a0.cnt) / n).toFixed(1)} runs)`);
            }
            note(
              `${w} programs per ${w === 'conn' ? 'connection' : 'request'}: ${total.toFixed(0)} ns: ${parts.join(', ')}`,
            );
          }
          s[arm].push(rate);
          s.cpu[arm].push(cpu);
          if (performance.now() - t0 > (opts.durationS + 5) * 1000) note(`${w} window took long`);
        };
        await wrkRate(tb, a, url, conns, false, 1); // warm-up
        // the agent's warm-up: its first windows with reports flowing cost it more (its code is
        // compiled and optimized as it runs; its CPU fell ~95 -> ~65 -> ~57 ms/s over the first
        // three repeats of every run), which a node running flow-monitor for longer than a few
        // seconds does not pay; --flows-agent-warmup=0 measures from a cold agent
        const agentWarmup = Number(arg(opts, 'agent-warmup') ?? 1);
        for (let k = 0; k < agentWarmup; k++) {
          for (const { agent, ref } of flowAgents) {
            await agent.client.run({ image: ref, name: 'flows', attach, config });
            await wrkRate(tb, a, url, conns, false, opts.durationS);
            await agent.client.remove('flows', { force: true });
          }
        }
        // flow-monitor's windows through one agent
        const withFlows = async ({ agent: x, ref, arm }: FlowAgent, i: number): Promise<void> => {
          await x.client.run({ image: ref, name: 'flows', attach, config });
          if (withProgStats && arm === 'on') programs = (await x.client.inspect('flows')).programs;
          const cpu0 = cpuTimes(x.proc.pid!);
          const t0 = performance.now();
          for (const w of windows) await measure(w, arm, i);
          const cpu1 = cpuTimes(x.proc.pid!);
          const onS = (performance.now() - t0) / 1000;
          const agentUser = (cpu1.user - cpu0.user) / onS;
          const agentSystem = (cpu1.system - cpu0.system) / onS;
          const st = await x.client.inspect('flows');
          const line = windows.map((w) => {
            const s = m[w]!;
            return `${unitOf(w)} off ${s.off[i]!.toFixed(0)} ${arm} ${s[arm][i]!.toFixed(0)} (pods' CPU µs each: off ${s.cpu.off[i]!.toFixed(1)} ${arm} ${s.cpu[arm][i]!.toFixed(1)})`;
          });
          note(
            `repeat ${i + 1}${arm === 'alt' ? ', second agent' : ''}: ${line.join('; ')}; agent CPU ${(agentUser + agentSystem).toFixed(0)} ms/s (user ${agentUser.toFixed(0)}, system ${agentSystem.toFixed(0)}); flow reports ${st.events.received}, lost ${st.events.lost}`,
          );
          await x.client.remove('flows', { force: true });
        };
        for (let i = 0; i < opts.repeats; i++) {
          for (const w of windows) await measure(w, 'off', i);
          // two agents in turns, so neither is always the one right after the off window
          for (const fa of i % 2 === 1 ? [...flowAgents].reverse() : flowAgents) await withFlows(fa, i);
          if (hooksRef) {
            await api.run({ image: hooksRef, name: 'flows-hooks', ...hooksRun });
            const hc0 = cpuMs(ag.proc.pid!);
            const ht0 = performance.now();
            for (const w of windows) await measure(w, 'hooks', i);
            const hookCpu = (cpuMs(ag.proc.pid!) - hc0) / ((performance.now() - ht0) / 1000);
            await api.remove('flows-hooks', { force: true });
            const line = windows.map((w) => {
              const s = m[w]!;
              return `${unitOf(w)} ${s.hooks[i]!.toFixed(0)} (pods' CPU µs each ${s.cpu.hooks[i]!.toFixed(1)})`;
            });
            note(`repeat ${i + 1}, hooks only: ${line.join('; ')}; agent CPU ${hookCpu.toFixed(0)} ms/s`);
          }
        }
        // the agent's own CPU with no traffic: without an instance, then with flow-monitor loaded
        // (its ring buffer watched), a second after the load
        const idleCpu = async (): Promise<number> => {
          const c0 = cpuMs(ag.proc.pid!);
          const t0 = performance.now();
          await sleep(3000);
          return (cpuMs(ag.proc.pid!) - c0) / ((performance.now() - t0) / 1000);
        };
        const idleNone = await idleCpu();
        await api.run({ image: ref, name: 'flows', attach, config });
        await sleep(1000);
        const idleLoaded = await idleCpu();
        await api.remove('flows', { force: true });
        result('flows_agent_idle_cpu_ms_per_s', idleLoaded.toFixed(1));
        result('flows_agent_idle_cpu_ms_per_s_none', idleNone.toFixed(1));
        const ratio = (on: number[], off: number[]): number => median(on.map((v, i) => v / off[i]!));
        const names: Record<string, [string, string]> = { conn: ['conn', 'conn_per_s'], rps: ['rps', 'rps'] };
        for (const w of windows) {
          const s = m[w]!;
          const [k, rate] = names[w]!;
          result(`flows_${k}_overhead_ratio`, ratio(s.on, s.off).toFixed(3));
          result(`flows_${rate}_off`, median(s.off).toFixed(0));
          result(`flows_${rate}_on`, median(s.on).toFixed(0));
          // CPU per unit off / on: the rate ratio a machine with nothing else running would show
          result(`flows_${k}_cpu_ratio`, ratio(s.cpu.off, s.cpu.on).toFixed(3));
          result(`flows_${k}_cpu_us_off`, median(s.cpu.off).toFixed(2));
          result(`flows_${k}_cpu_us_on`, median(s.cpu.on).toFixed(2));
          if (s.alt.length > 0) {
            result(`flows_${k}_alt_ratio`, ratio(s.alt, s.off).toFixed(3));
            result(`flows_${k}_alt_cpu_ratio`, ratio(s.cpu.off, s.cpu.alt).toFixed(3));
          }
          if (s.hooks.length > 0) {
            result(`flows_${k}_hooks_ratio`, ratio(s.hooks, s.off).toFixed(3));
            result(`flows_${k}_hooks_cpu_ratio`, ratio(s.cpu.off, s.cpu.hooks).toFixed(3));
            result(`flows_${k}_cpu_us_hooks`, median(s.cpu.hooks).toFixed(2));
          }
        }
      }
      if (!parts.includes('delivery')) return;

      // 2. flows/s delivered to `kbpf flows -f` and its metrics, synthetic reports into the ring
      await api.run({ image: ref, name: 'flows', attach, config });
      await sleep(500);
      const idleRss = rssMb(ag.proc.pid!);
      const metricsPort = 19965 + Math.floor(Math.random() * 500);
      const reader = new Reader(ag.socket, metricsPort, arg(opts, 'reader-profile'));
      cleanups.push(() => reader.stop());
      for (let i = 0; i < 100; i++) {
        if (
          await processed(metricsPort)
            .then(() => true)
            .catch(() => false)
        )
          break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const obj = BpfObject.open(PRODUCER);
      cleanups.push(() => obj.close());
      const ringPin = instanceMapPin(ag.bpffsDir, 'flows', 'flow_events');
      if (!ringPin) throw new Error(`no pinned flow_events under ${ag.bpffsDir}`);
      const ring = BpfMap.fromPin(ringPin);
      obj.reuseMap('flow_events', ring);
      ring.close();
      obj.load();
      const prog = obj.program('produce');
      let next = 1;
      const produce = async (count: number, closed: number): Promise<void> => {
        const data = Buffer.alloc(64); // struct args at the start of a test packet
        data.writeBigUInt64LE(BigInt(next), 0);
        data.writeUInt32LE(count, 8);
        data.writeUInt32LE(closed, 12);
        next += count;
        await testRunAsync(prog, { data, dataOutSize: 64 });
      };
      const settle = async (want: number): Promise<{ lines: number; metrics: number }> => {
        let last = -1;
        let still = 0;
        for (;;) {
          const m = await processed(metricsPort);
          if ((reader.lines >= want && m >= want) || still > 60) return { lines: reader.lines, metrics: m };
          still = reader.lines === last ? still + 1 : 0;
          last = reader.lines;
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const rates = (arg(opts, 'rates') ?? '25000,50000,100000,150000,200000,300000').split(',').map(Number);
      let best = 0;
      for (const rate of rates) {
        const startLines = reader.lines;
        const startMetrics = await processed(metricsPort);
        const t0 = performance.now();
        const cpu0 = { agent: cpuMs(ag.proc.pid!), reader: cpuMs(reader.proc.pid!) };
        let sent = 0;
        while (performance.now() - t0 < opts.durationS * 1000) {
          const due = Math.floor((rate * (performance.now() - t0)) / 1000) - sent;
          if (due > 0) {
            await produce(due, 1);
            sent += due;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        const got = await settle(startLines + sent);
        const busyS = (performance.now() - t0) / 1000;
        const cpu = {
          agent: (cpuMs(ag.proc.pid!) - cpu0.agent) / busyS,
          reader: (cpuMs(reader.proc.pid!) - cpu0.reader) / busyS,
        };
        const lines = got.lines - startLines;
        const inMetrics = got.metrics - startMetrics;
        const lossless = lines === sent && inMetrics === sent;
        // the producer's .bss: written, failed (reservations that found the ring full)
        const counters = obj.maps.get('.bss')?.lookupRaw(Buffer.alloc(4));
        const ringFull = counters ? Number(counters.readBigUInt64LE(8)) : Number.NaN;
        const st = await api.inspect('flows');
        note(
          `rate ${rate}/s: ${sent} reports written (${ringFull} found the ring full so far), the agent read ${st.events.received} so far, ${lines} printed by kbpf flows -f, ${inMetrics} in its metrics${lossless ? '' : ' — LOST'}; CPU ms/s until delivered: agent ${cpu.agent.toFixed(0)}, reader ${cpu.reader.toFixed(0)}`,
        );
        if (!lossless) break;
        best = rate;
      }
      result('flows_per_s_max_lossless', best);

      // 3. 100,000 open flows reported (periodic reports, distinct flows): agent and reader RSS
      const before = reader.lines;
      for (let i = 0; i < 10; i++) {
        await produce(10_000, 0);
        await new Promise((r) => setTimeout(r, 100));
      }
      await settle(before + 100_000);
      result('flows_rss_mb_100k', rssMb(ag.proc.pid!).toFixed(1));
      result('flows_rss_mb_idle', idleRss.toFixed(1));
      result('flows_reader_rss_mb_100k', rssMb(reader.proc.pid!).toFixed(1));
    } finally {
      for (const f of cleanups.reverse()) await f();
    }
  },
};
