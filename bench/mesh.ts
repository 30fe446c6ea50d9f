// `npm run bench -- mesh`: requests through two sidecars, eBPF (mesh-accel) vs iptables REDIRECT.
//
// One test bed node (testbed/mesh/testbed.ts), two pods A and B, each with its app (HAProxy
// answering itself) and its sidecar (HAProxy with `option transparent`, 1 thread, the istio uid).
// wrk runs in pod A as the app would (its netns and cgroup, uid 0) against B's pod IP:
//   none      no capture: A's app talks to B's app directly (the sidecars idle)
//   iptables  istio-init's nat rules in both pods: app -> REDIRECT 15001 -> sidecar A ->
//             B:80 -> REDIRECT 15006 -> sidecar B -> app B
//   ebpf      mesh-accel run by a real agent on the pods' parent cgroup, both pods declared:
//             app -> connect4 -> sidecar A -> connect4 -> B:15006 -> sidecar B -> app B, with
//             sk_msg moving the bytes of every local hop through the sockhash
// Each repeat measures every path (none, iptables, ebpf in turn, the instance removed again
// after its turn so it costs the other paths nothing) at every point: keep-alive and
// `Connection: close`, at 8 / 32 / 128 connections, with the whole test bed (wrk included) on
// CPU 0; and keep-alive at 32 connections with the test bed on every CPU (figures named
// *_allcpus), and once more on CPU 0 with L4 sidecars (HAProxy `mode tcp`: bytes passed on, no
// HTTP parsing, as a sidecar does for plain TCP services; figures named *_l4). Reported: medians
// over repeats, with the min-max of requests/s as the spread.
//
// Why one CPU for the headline: the chain is four single-threaded processes (wrk, sidecar A,
// sidecar B, app B). On one CPU they never wait for a wake-up on another CPU, the CPU is always
// busy, and requests/s follow what a request costs on each path: that is what the data path
// changes, and it repeats within a few percent. On a machine with fewer CPUs than processes
// (this 2-vCPU VM), letting them spread makes requests/s depend on how the scheduler packs them:
// the eBPF path's hops are so short that its CPUs sit idle 20-25% of the time against 10-12% for
// iptables. The _allcpus point shows that case in every run.
//
// Every window is preceded by a discarded 1 s warm-up window on the same path (all paths alike:
// the freshly restarted sidecars and their first connections are not measured).
// The headline ratios (mesh_rps_ratio, mesh_p50_ratio) are the median of the per-repeat paired
// ratios (eBPF and iptables windows of one repeat run back to back, so load from elsewhere on
// a shared machine hits both alike); their min-max is printed as the spread.
//
// Also measured per window: CPU time per request (all CPUs, every process, from /proc/stat) and
// how much of the window the CPUs sat idle; mesh_cpu_ratio is eBPF / iptables CPU per request,
// the cost of the data path without the scheduler's idle gaps. And the CPU time of each sidecar
// per request (/proc/PID/stat): mesh_sidecar_cpu_ratio, eBPF / iptables, is the ratio that bounds
// requests/s on a node where every process of the chain has a core of its own.
//
// Options after --: --duration=S (default 2 s for this benchmark), --repeats=N (default 5),
// --mesh-wrk-threads=N (default 1), --mesh-sidecar-threads=N (HAProxy nbthread, default 1),
// --mesh-cpus=LIST (where the test bed runs, wrk included: a taskset list, default 0; CPU time and
// idle are then counted on these CPUs only; =all pins nothing and drops the _allcpus point),
// --mesh-conns=8,32,128, --mesh-warmup=S (default 1, 0 = none), --mesh-ka-only (keep-alive points
// only), --mesh-alt=DIR (A/B against another build of the package, e.g. an older commit's tree
// from `git archive`: adds the path ebpf_alt, the package DIR/apps/mesh-accel run the same way,
// its pods written as this version's IPv4 settings (the IPv6 fields were appended to
// struct pod_settings, so the IPv4 part is the 0.1.0 layout); its paired ratios to iptables are
// printed next to ebpf's).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from 'kbpf/bpf';
import { cgroupId, ipNet, podSettings } from '../apps/mesh-accel/mesh.js';
import { testAgent } from '../testbed/agent.js';
import { MESH_APP_DIR, runMesh } from '../testbed/mesh/mesh-node.js';
import { type Pod, Testbed } from '../testbed/mesh/testbed.js';
import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

type PathName = 'none' | 'iptables' | 'ebpf' | 'ebpf_nomsg' | 'ebpf_alt';
const DEFAULT_PATHS: PathName[] = ['none', 'iptables', 'ebpf'];

interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU time (all CPUs, user + system + softirq, every process) per request, µs */
  cpuUsPerReq: number;
  /** share of the window the CPUs were idle (0-1) */
  idle: number;
  /**
   * CPU time of one sidecar per request, µs (the mean of A's and B's, from /proc/PID/stat; kernel
   * work done in the process's context, softirq included, counts): what bounds requests/s once
   * each process has a core of its own
   */
  sidecarUsPerReq: number;
}

/** The CPUs of a taskset list ("0", "0-1,3"). */
function cpuList(list: string): Set<number> {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const [lo, hi = lo] = part.split('-').map(Number);
    for (let c = lo!; c <= hi!; c++) out.add(c);
  }
  return out;
}

/**
 * Busy and idle time so far (/proc/stat, USER_HZ ticks) of the given CPUs, or of all of them;
 * steal counts as neither.
 */
function cpuTimes(cpus: Set<number> | null): { busy: number; idle: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const rows = cpus
    ? lines.filter((l) => {
        const m = /^cpu(\d+) /.exec(l);
        return m !== null && cpus.has(Number(m[1]));
      })
    : [lines[0]!];
  let busy = 0;
  let idleTicks = 0;
  for (const row of rows) {
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0] = row
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    busy += user + nice + system + irq + softirq;
    idleTicks += idle + iowait;
  }
  return { busy, idle: idleTicks };
}
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** user + system ticks a process has used so far (/proc/PID/stat fields 14 and 15) */
function procTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** the pid of the pod's sidecar (HAProxy runs in the foreground: the spawned pid is its own) */
function sidecarPid(pod: Pod): number {
  const pid = pod.sidecarProc?.pid;
  if (pid === undefined || readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'haproxy')
    throw new Error(`${pod.name}: no running sidecar to measure`);
  return pid;
}

function ms(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

export function parseWrk(out: string): Omit<Sample, 'cpuUsPerReq' | 'idle' | 'sidecarUsPerReq'> {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p = (q: string) => {
    const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? ms(m[1]!, m[2]!) : NaN;
  };
  const err = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (err ? err.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  if (!Number.isFinite(rps)) throw new Error(`cannot parse wrk output:\n${out}`);
  return { rps, p50Ms: p('50'), p99Ms: p('99'), errors };
}

function fmt(n: number, d = 2): string {
  return Number.isFinite(n) ? n.toFixed(d) : 'n/a';
}

async function wrk(
  tb: Testbed,
  from: Pod,
  url: string,
  conns: number,
  keepAlive: boolean,
  durationS: number,
  threads: number,
  sidecars: Pod[],
): Promise<Sample> {
  const args = [
    `-t${threads}`,
    `-c${conns}`,
    `-d${durationS}s`,
    '--latency',
    '--timeout',
    '5s',
    ...(keepAlive ? [] : ['-H', 'Connection: close']),
    url,
  ];
  const pids = sidecars.map(sidecarPid);
  const sidecarBefore = pids.map(procTicks);
  const measured = from.cpus !== null ? cpuList(from.cpus) : null;
  const before = cpuTimes(measured);
  const r = await tb.execInPod(from, 'wrk', args, { timeoutMs: (durationS + 30) * 1000 });
  const after = cpuTimes(measured);
  const sidecarTicks = pids.reduce((sum, pid, i) => sum + procTicks(pid) - sidecarBefore[i]!, 0);
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr}${r.stdout}`);
  const w = parseWrk(r.stdout);
  // the window includes wrk's own start and exit (a few ms): small next to the seconds measured
  const busy = after.busy - before.busy;
  const idle = after.idle - before.idle;
  const requests = w.rps * durationS;
  return {
    ...w,
    cpuUsPerReq: (busy * TICK_US) / requests,
    idle: idle / Math.max(1, busy + idle),
    sidecarUsPerReq: (sidecarTicks * TICK_US) / pids.length / requests,
  };
}

export const benchmark: Benchmark = {
  name: 'mesh',
  description:
    'HTTP through two HAProxy sidecars: no mesh vs iptables REDIRECT vs mesh-accel (eBPF), wrk keep-alive and close',
  async run(opts: BenchOptions): Promise<void> {
    const durationS = process.argv.some((a) => a.startsWith('--duration')) ? opts.durationS : 2;
    const repeats = process.argv.some((a) => a.startsWith('--repeats')) ? opts.repeats : 5;
    // the value of --mesh-NAME=VALUE, or undefined
    const arg = (name: string) =>
      opts.args.find((a) => a.startsWith(`--mesh-${name}=`))?.slice(`--mesh-${name}=`.length);
    // one wrk thread (it takes ~15% of the machine; 2 threads slow every path, the ratios stay alike)
    const wrkThreads = Number(arg('wrk-threads') ?? 1);
    if (!Number.isInteger(wrkThreads) || wrkThreads < 1)
      throw new Error('--mesh-wrk-threads must be a positive integer');
    // HAProxy threads per sidecar (default 1; istio runs its sidecars with concurrency 2)
    const sidecarThreads = Number(arg('sidecar-threads') ?? 1);
    if (!Number.isInteger(sidecarThreads) || sidecarThreads < 1)
      throw new Error('--mesh-sidecar-threads must be a positive integer');
    // Where the test bed runs (wrk included): by default all of it on CPU 0, where requests/s
    // follow the CPU cost of a request; plus one keep-alive point at the middle connection count
    // with every CPU, where four single-threaded processes share the CPUs and wait on each other's
    // wake-ups (its figures carry _allcpus). --mesh-cpus=LIST pins elsewhere; =all pins nothing
    // (and drops the extra point).
    const cpusArg = arg('cpus') ?? '0';
    if (cpusArg !== 'all' && !/^\d+([-,]\d+)*$/.test(cpusArg))
      throw new Error(`--mesh-cpus: not a CPU list (or all): ${cpusArg}`);
    const cpus = cpusArg === 'all' ? null : cpusArg;
    const warmupS = Number(arg('warmup') ?? 1);
    const conns = arg('conns')?.split(',').map(Number) ?? [8, 32, 128];
    const mid = conns[Math.floor(conns.length / 2)]!;
    // --mesh-paths=none,iptables,ebpf,ebpf_nomsg (ebpf_nomsg: redirect_msgs=0, connect-time only)
    const PATHS = (arg('paths')?.split(',') as PathName[] | undefined) ?? [...DEFAULT_PATHS];
    const altDir = arg('alt') ?? null;
    if (altDir && !PATHS.includes('ebpf_alt')) PATHS.push('ebpf_alt');
    if (!altDir && PATHS.includes('ebpf_alt')) throw new Error('--mesh-paths: ebpf_alt needs --mesh-alt=DIR');
    const kaOnly = opts.args.includes('--mesh-ka-only');
    for (const p of PATHS)
      if (!['none', 'iptables', 'ebpf', 'ebpf_nomsg', 'ebpf_alt'].includes(p))
        throw new Error(`--mesh-paths: unknown path ${p}`);
    for (const p of ['iptables', 'ebpf'] as const)
      if (!PATHS.includes(p)) throw new Error(`--mesh-paths must include ${p} (the ratios compare them)`);
    const cleanups: (() => unknown)[] = [];
    const t = { after: (fn: () => unknown) => void cleanups.push(fn) };
    const cleanUp = async () => {
      for (const fn of cleanups.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          note(`mesh: cleanup: ${(err as Error).message}`);
        }
      }
    };
    // Ctrl-C / kill: take the test bed down (namespaces, cgroups, the agent's pins) before exiting
    const onSignal = (sig: NodeJS.Signals) => {
      note(`mesh: ${sig}: cleaning up`);
      void cleanUp().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const tb = await Testbed.create(t, 'kbpfmeshbench');
      const a = await tb.addPod({ threads: sidecarThreads });
      const b = await tb.addPod({ threads: sidecarThreads });
      // many short connections: allow reuse of TIME_WAIT ports inside the pods
      for (const p of [a, b]) {
        await tb.execInPod(p, 'sysctl', [
          '-q',
          '-w',
          'net.ipv4.tcp_tw_reuse=1',
          'net.ipv4.ip_local_port_range=1024 65000',
        ]);
      }
      const ta = await testAgent(t);
      const ref = await ta.build(MESH_APP_DIR);
      // the A/B package: its own build and its own (possibly different) map layouts
      const alt = altDir ? { ref: await ta.build(join(altDir, 'apps/mesh-accel')) } : null;
      const url = `http://${b.ip}:80/`;
      // a point: keep-alive or close, connections, where the test bed runs, L7 or L4 sidecars
      interface PointKey {
        ka: boolean;
        c: number;
        allCpus?: true;
        l4?: true;
      }
      interface Point extends PointKey {
        cpus: string | null;
      }
      const points: Point[] = [
        ...conns.map((c) => ({ c, ka: true, cpus })),
        ...(kaOnly ? [] : conns.map((c) => ({ c, ka: false, cpus }))),
        ...(cpus !== null ? [{ c: mid, ka: true, cpus: null, allCpus: true as const }] : []),
        { c: mid, ka: true, cpus, l4: true },
      ];
      const key = (path: PathName, pt: PointKey) =>
        `${path}_${pt.ka ? 'ka' : 'close'}_c${pt.c}${pt.allCpus ? '_allcpus' : ''}${pt.l4 ? '_l4' : ''}`;
      const samples = new Map<string, Sample[]>();
      note(
        `mesh: node ${tb.subnet}.0/24, pods ${a.ip} -> ${b.ip}, ${points.length} points x ${PATHS.length} paths x ${repeats} repeats x ${durationS} s (+ ${warmupS} s warm-up), wrk -t${wrkThreads}, sidecar threads ${sidecarThreads}, test bed on CPUs ${cpus ?? 'all'}${cpus !== null ? ` (and on all CPUs: keep-alive, ${mid} connections)` : ''}`,
      );

      let instances = 0;
      const counters = {
        connect_out: 0n,
        connect_peer: 0n,
        msg_redirect: 0n,
        msg_redirect_peer: 0n,
        msg_pass: 0n,
        origdst: 0n,
      };
      for (let rep = 0; rep < repeats; rep++) {
        for (const pt of points) {
          // the three paths back to back for each point (order rotated per repeat), so load
          // from elsewhere on the machine hits them alike
          const order = PATHS.map((_, i) => PATHS[(i + rep) % PATHS.length]!);
          for (const path of order) {
            let mesh: Awaited<ReturnType<typeof runMesh>> | null = null;
            let altMesh: { name: string; maps: { close(): void } } | null = null;
            // a clean start: no pooled sidecar connection and no conntrack entry of another path
            for (const p of [a, b]) {
              await tb.setPodCpus(p, pt.cpus);
              p.sidecarProtocol = pt.l4 ? 'tcp' : 'http';
            }
            for (const p of [a, b]) await tb.restartSidecar(p);
            await new Promise((res) => setTimeout(res, 100));
            for (const p of [a, b]) await tb.flushConntrack(p);
            if (path === 'iptables') for (const p of [a, b]) await tb.enableIptables(p);
            if (path === 'ebpf' || path === 'ebpf_nomsg') {
              mesh = await runMesh(
                t,
                tb,
                `mesh-bench-${instances++}`,
                { ta, ref },
                path === 'ebpf_nomsg' ? { redirect_msgs: 0 } : {},
              );
              for (const p of [a, b]) mesh.declare(p);
            }
            if (path === 'ebpf_alt' && alt) {
              const name = `mesh-bench-alt-${instances++}`;
              await ta.agent.run({ image: alt.ref, name, attach: { cgroup: tb.parentCgroup } });
              const dir = join(ta.paths.bpffsDir, name);
              const rev = readdirSync(dir).find(
                (d) => /^rev-\d+$/.test(d) && existsSync(join(dir, d, 'maps', 'pods_by_ip')),
              );
              if (!rev) throw new Error(`ebpf_alt: no pinned maps under ${dir}`);
              const byIp = BpfMap.fromPin(join(dir, rev, 'maps', 'pods_by_ip'));
              const byCg = BpfMap.fromPin(join(dir, rev, 'maps', 'pods_by_cgroup'));
              altMesh = {
                name,
                maps: {
                  close: () => {
                    byIp.close();
                    byCg.close();
                  },
                },
              };
              for (const p of [a, b]) {
                const {
                  ip6: _a,
                  exclude_out_cidrs6: _b,
                  include_out_cidrs6: _c,
                  ...v4
                } = podSettings({ ip: p.ip, cgroup: p.cgroup, mode: p.mode });
                byIp.update(ipNet(p.ip), v4);
                byCg.update(cgroupId(p.cgroup), v4);
              }
            }
            try {
              // check the path really is what it says before measuring it
              // (the app's peer is B's sidecar, 127.0.0.6, or pod A itself; L7 sidecars add their headers)
              const probe = await tb.get(a, url);
              const meshed = path !== 'none';
              const headers = /outbound=\S+ inbound=\S+/.test(probe.body);
              if (!probe.ok || probe.peer !== (meshed ? '127.0.0.6' : a.ip) || headers !== (meshed && !pt.l4)) {
                throw new Error(
                  `${path}${pt.l4 ? ' (L4 sidecars)' : ''}: probe request went wrong: ${probe.code} ${probe.err} peer ${probe.peer} ${probe.body}`,
                );
              }
              if (warmupS > 0) await wrk(tb, a, url, pt.c, pt.ka, warmupS, wrkThreads, [a, b]);
              const s = await wrk(tb, a, url, pt.c, pt.ka, durationS, wrkThreads, [a, b]);
              const k = key(path, pt);
              samples.set(k, [...(samples.get(k) ?? []), s]);
              note(
                `mesh: rep ${rep + 1} ${k}: ${fmt(s.rps, 0)} req/s p50 ${fmt(s.p50Ms, 3)} ms p99 ${fmt(s.p99Ms, 3)} ms cpu ${fmt(s.cpuUsPerReq, 1)} us/req (sidecar ${fmt(s.sidecarUsPerReq, 1)}) idle ${fmt(100 * s.idle, 1)}%${s.errors ? ` errors ${s.errors}` : ''}`,
              );
              if (mesh && path === 'ebpf') {
                const st = mesh.maps.stats();
                for (const c of Object.keys(counters) as (keyof typeof counters)[]) counters[c] += st[c];
              }
            } finally {
              if (path === 'iptables') for (const p of [a, b]) await tb.disableIptables(p);
              if (mesh) await mesh.remove();
              if (altMesh) {
                altMesh.maps.close();
                await ta.agent.remove(altMesh.name, { force: true });
              }
            }
          }
        }
      }
      note(
        `mesh: ebpf counters over all windows: ${Object.entries(counters)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );

      const agg = (k: string) => {
        const xs = samples.get(k) ?? [];
        return {
          rps: median(xs.map((x) => x.rps)),
          rpsMin: Math.min(...xs.map((x) => x.rps)),
          rpsMax: Math.max(...xs.map((x) => x.rps)),
          p50: median(xs.map((x) => x.p50Ms)),
          p99: median(xs.map((x) => x.p99Ms)),
          errors: xs.reduce((s, x) => s + x.errors, 0),
          cpu: median(xs.map((x) => x.cpuUsPerReq)),
          idle: median(xs.map((x) => x.idle)),
          sidecar: median(xs.map((x) => x.sidecarUsPerReq)),
        };
      };
      note('');
      note(
        '| conn | connections | CPUs | sidecars | path | req/s (median) | req/s min-max | p50 ms | p99 ms | CPU µs/req | sidecar µs/req | CPU idle | errors |',
      );
      note('| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const pt of points) {
        for (const path of PATHS) {
          const k = key(path, pt);
          const g = agg(k);
          note(
            `| ${pt.ka ? 'keep-alive' : 'close'} | ${pt.c} | ${pt.cpus ?? 'all'} | ${pt.l4 ? 'L4' : 'L7'} | ${path} | ${fmt(g.rps, 0)} | ${fmt(g.rpsMin, 0)}-${fmt(g.rpsMax, 0)} | ${fmt(g.p50, 3)} | ${fmt(g.p99, 3)} | ${fmt(g.cpu, 1)} | ${fmt(g.sidecar, 1)} | ${fmt(100 * g.idle, 1)}% | ${g.errors} |`,
          );
          result(`mesh_${k}_rps`, fmt(g.rps, 0));
          result(`mesh_${k}_p50_ms`, fmt(g.p50, 3));
          result(`mesh_${k}_p99_ms`, fmt(g.p99, 3));
          result(`mesh_${k}_cpu_us_per_req`, fmt(g.cpu, 1));
          if (path !== 'none') result(`mesh_${k}_sidecar_cpu_us_per_req`, fmt(g.sidecar, 1));
        }
      }
      // Ratios within each repeat (same moment, same machine load), then their median and range.
      // The headline (mesh_rps_ratio, mesh_p50_ratio): keep-alive at the middle connection count.
      const rps = (x: Sample) => x.rps;
      const p50 = (x: Sample) => x.p50Ms;
      const cpu = (x: Sample) => x.cpuUsPerReq;
      const sidecarCpu = (x: Sample) => x.sidecarUsPerReq;
      const ka = { ka: true, c: mid };
      const close = { ka: false, c: mid };
      const all = { ka: true, c: mid, allCpus: true as const };
      const l4 = { ka: true, c: mid, l4: true as const };
      const byName = [
        ['rps', ka, rps],
        ['p50', ka, p50],
        ['cpu', ka, cpu],
        ['sidecar_cpu', ka, sidecarCpu],
        ['close_rps', close, rps],
        ['close_p50', close, p50],
        ['close_cpu', close, cpu],
        ['allcpus_rps', all, rps],
        ['allcpus_p50', all, p50],
        ['allcpus_cpu', all, cpu],
        ['allcpus_sidecar_cpu', all, sidecarCpu],
        ['l4_rps', l4, rps],
        ['l4_p50', l4, p50],
        ['l4_cpu', l4, cpu],
        ['l4_sidecar_cpu', l4, sidecarCpu],
      ] as const;
      const paired = (path: PathName, pt: PointKey, f: (x: Sample) => number) => {
        const es = samples.get(key(path, pt)) ?? [];
        const is = samples.get(key('iptables', pt)) ?? [];
        return es.map((x, i) => f(x) / f(is[i]!));
      };
      const spread = (r: number[]) =>
        `${r.map((x) => fmt(x, 3)).join(' ')} (median ${fmt(median(r), 3)}, min ${fmt(Math.min(...r), 3)}, max ${fmt(Math.max(...r), 3)})`;
      for (const [name, pt, f] of byName) {
        const r = paired('ebpf', pt, f);
        if (r.length === 0) continue; // a point this run left out
        const where = `c${pt.c}, CPUs ${'allCpus' in pt ? 'all' : (cpus ?? 'all')}${'l4' in pt ? ', L4 sidecars' : ''}`;
        if (alt) {
          const ra = paired('ebpf_alt', pt, f);
          note(`mesh: ${name} ratio (ebpf_alt/iptables, ${where}) per repeat: ${spread(ra)}`);
          result(`mesh_alt_${name}_ratio`, fmt(median(ra), 3));
        }
        note(`mesh: ${name} ratio (ebpf/iptables, ${where}) per repeat: ${spread(r)}`);
        result(`mesh_${name}_ratio`, fmt(median(r), 3));
        result(`mesh_${name}_ratio_min`, fmt(Math.min(...r), 3));
        result(`mesh_${name}_ratio_max`, fmt(Math.max(...r), 3));
      }
      const e = agg(key('ebpf', ka));
      const i = agg(key('iptables', ka));
      note(
        `mesh: ratio of medians (keep-alive, c${mid}): rps ${fmt(e.rps / i.rps, 3)}, p50 ${fmt(e.p50 / i.p50, 3)}, cpu/req ${fmt(e.cpu / i.cpu, 3)}`,
      );
      note(
        `mesh: machine: ${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs, kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}`,
      );
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await cleanUp();
    }
  },
};
