// `npm run bench -- service-lb`: new connections to a service through socket LB, kube-proxy's
// iptables mode, kube-proxy's nftables mode, and straight to a backend, at 10 / 100 / 1,000 /
// 10,000 services.
//
// One test bed node (testbed/mesh/testbed.ts): three backend pods, each running bench/svclb_load.c
// as the server (TCP: read the request, answer, close; UDP: echo) with 2 threads, and four client
// pods, one per path, so the paths share nothing but the backends:
//   socketlb  service-lb run by a real agent on the pods' parent cgroup, the services applied to
//             its maps (services.ts); the client runs in its pod's cgroup
//   iptables  kube-proxy's iptables rules (bench/kube-proxy-rules.ts) in the client pod's nat table
//   nftables  kube-proxy's nftables table in the client pod's namespace
//   direct    the client connects to the backends' own addresses, no translation
// Every service has a TCP port (80 -> 8080) and a UDP port (53 -> 8053) on the three backends.
// The client (svclb_load client, C, one thread) picks a random service per connection: TCP
// connect + one request + read to EOF + close, or UDP: a fresh socket, one datagram, its reply.
// The iptables, nftables and direct clients run outside the parent cgroup (no socket-LB hook).
// Client on CPU 0, backends on CPU 1. Per scale and repeat every path runs back to back
// (conntrack flushed before each iptables / nftables window; each repeat starts at the next
// path); reported: medians over repeats,
// the ratios as medians of the per-repeat (paired) ratios.
//
// Printed: svclb_conn_per_s_<path>_<n> (TCP) and svclb_udp_per_s_<path>_<n>;
// svclb_vs_direct_10000 (socketlb / direct, TCP), svclb_vs_iptables_min and svclb_vs_nftables_min
// (the lowest socketlb / baseline TCP ratio over the scales; _udp_ variants for UDP);
// svclb_apply_<n>_ms (services written to the maps), iptables_restore_<n>_ms, nft_apply_<n>_ms.
// Options after --: --svclb-scales=10,100,1000,10000, --duration=S (default 2), --repeats=N (default 3).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceSpec } from '../apps/service-lb/services.js';
import { type Pod, Testbed } from '../testbed/mesh/testbed.js';
import { run } from '../testbed/netns.js';
import { runServiceLb } from '../testbed/service-lb/svclb-node.js';
import { type BenchService, iptablesRules, nftablesRules } from './kube-proxy-rules.js';
import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

const SRC = fileURLToPath(new URL('../../bench/svclb_load.c', import.meta.url));
const PATHS = ['socketlb', 'iptables', 'nftables', 'direct'] as const;
type PathName = (typeof PATHS)[number];

function vipOf(i: number): string {
  const n = i + 1;
  return `10.96.${n >>> 8}.${n & 0xff}`;
}

async function must(cmd: string, args: string[], input?: string): Promise<void> {
  const r = await run(cmd, args, { timeoutMs: 300_000, input });
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} failed (${r.code}): ${r.stderr.trim().slice(0, 500)}`);
}

async function timed(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export const benchmark: Benchmark = {
  name: 'service-lb',
  description:
    'new connections to a service: socket LB vs kube-proxy iptables / nftables vs direct, 10..10,000 services',
  async run(opts: BenchOptions) {
    const arg = (k: string) => opts.args.find((a) => a.startsWith(`--svclb-${k}=`))?.split('=')[1];
    const scales = (arg('scales') ?? '10,100,1000,10000').split(',').map(Number);
    const duration = opts.args.some((a) => a.startsWith('--duration')) ? opts.durationS : 2;
    const repeats = opts.repeats;
    const cleanups: (() => unknown)[] = [];
    const t = { after: (fn: () => unknown) => void cleanups.push(fn) };
    const cleanUp = async () => {
      for (const fn of cleanups.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          note(`service-lb: cleanup: ${(err as Error).message}`);
        }
      }
    };
    // Ctrl-C / kill: take the test bed down (namespaces, cgroups, the agent's pins) before exiting
    const onSignal = (sig: NodeJS.Signals) => {
      note(`service-lb: ${sig}: cleaning up`);
      void cleanUp().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const tb = await Testbed.create(t, 'kbpfslbbench');
      const bin = join(tb.dir, 'svclb_load');
      execFileSync('cc', ['-O2', '-Wall', '-o', bin, SRC, '-lpthread']);
      const lb = await runServiceLb(t, tb);
      const backends: Pod[] = [];
      for (let i = 0; i < 3; i++) backends.push(await tb.addPod({ sidecar: false, cpus: '1' }));
      const clients = {} as Record<PathName, Pod>;
      for (const p of PATHS) clients[p] = await tb.addPod({ sidecar: false, cpus: '0' });
      for (const b of backends) tb.spawnInPod(b, bin, ['server', '8080', '8053', '2']);
      for (const b of backends) await tb.waitListening(b, [8080]);
      for (const p of ['iptables', 'nftables'] as const)
        await must('ip', ['-n', clients[p].netns, 'route', 'add', '10.96.0.0/16', 'dev', 'eth0']);
      const clusterCidr = `${tb.subnet}.0/24`;
      const eps = backends.map((b) => b.ip);

      const rates = new Map<string, number[]>();
      const add = (k: string, v: number) => rates.set(k, [...(rates.get(k) ?? []), v]);
      const window = async (path: PathName, proto: 'tcp' | 'udp', n: number): Promise<number> => {
        const file = join(tb.dir, `addrs-${path}-${proto}`);
        const port = proto === 'tcp' ? (path === 'direct' ? 8080 : 80) : path === 'direct' ? 8053 : 53;
        const addrs = path === 'direct' ? eps : Array.from({ length: n }, (_, i) => vipOf(i));
        writeFileSync(file, addrs.map((a) => `${a} ${port}\n`).join(''));
        const pod = clients[path];
        if (path === 'iptables' || path === 'nftables') await tb.flushConntrack(pod);
        const args = ['client', proto, String(duration), file];
        const r =
          path === 'socketlb'
            ? await tb.execInPod(pod, bin, args, { timeoutMs: (duration + 30) * 1000 })
            : await run('ip', ['netns', 'exec', pod.netns, 'taskset', '-c', '0', bin, ...args], {
                timeoutMs: (duration + 30) * 1000,
              });
        const m = /ok (\d+) fail (\d+)/.exec(r.stdout);
        if (!m) throw new Error(`client ${path} ${proto}: ${r.stdout} ${r.stderr}`);
        if (Number(m[2]) > 0) note(`service-lb: ${path} ${proto} ${n}: ${m[2]} failed`);
        return Number(m[1]) / duration;
      };

      for (const n of scales) {
        const specs: ServiceSpec[] = [];
        const bench: BenchService[] = [];
        for (let i = 0; i < n; i++) {
          specs.push({
            name: `svc-${i}`,
            vips: [vipOf(i)],
            ports: [
              { port: 80, targetPort: 8080, protocol: 'TCP' },
              { port: 53, targetPort: 8053, protocol: 'UDP' },
            ],
            backends: eps.map((ip) => ({ ip })),
          });
          for (const [protocol, port, targetPort] of [
            ['tcp', 80, 8080],
            ['udp', 53, 8053],
          ] as const)
            bench.push({ name: `default/svc-${i}`, vip: vipOf(i), port, protocol, targetPort, endpoints: eps });
        }
        const applyMs = await timed(() => lb.maps.apply(specs, {}, { endRemoved: false }));
        const ipt = iptablesRules(bench, clusterCidr);
        const iptMs = await timed(() => must('ip', ['netns', 'exec', clients.iptables.netns, 'iptables-restore'], ipt));
        const nftFile = join(tb.dir, 'kube-proxy.nft');
        writeFileSync(nftFile, nftablesRules(bench, clusterCidr));
        const nftMs = await timed(() => must('ip', ['netns', 'exec', clients.nftables.netns, 'nft', '-f', nftFile]));
        result(`svclb_apply_${n}_ms`, applyMs.toFixed(1));
        result(`iptables_restore_${n}_ms`, iptMs.toFixed(1));
        result(`nft_apply_${n}_ms`, nftMs.toFixed(1));
        for (let r = 0; r < repeats; r++)
          // each repeat starts at another path, so no path always runs first after the rules
          // were written (or always right after another one)
          for (const proto of ['tcp', 'udp'] as const)
            for (const path of PATHS.map((_, i) => PATHS[(i + r) % PATHS.length]!)) {
              const rate = await window(path, proto, n);
              add(`${proto}_${path}_${n}`, rate);
              note(`service-lb: n=${n} repeat ${r} ${proto} ${path}: ${rate.toFixed(0)}/s`);
            }
        for (const proto of ['tcp', 'udp'] as const)
          for (const path of PATHS)
            result(
              `svclb_${proto === 'tcp' ? 'conn' : 'udp'}_per_s_${path}_${n}`,
              median(rates.get(`${proto}_${path}_${n}`)!).toFixed(0),
            );
      }
      // paired: the median over repeats of socketlb / baseline in the same repeat (load from
      // elsewhere on a shared machine hits both windows of a pair alike)
      const ratio = (proto: string, base: string, n: number) => {
        const sock = rates.get(`${proto}_socketlb_${n}`)!;
        const other = rates.get(`${proto}_${base}_${n}`)!;
        return median(sock.map((x, i) => x / other[i]!));
      };
      const last = scales[scales.length - 1]!;
      result(`svclb_vs_direct_${last}`, ratio('tcp', 'direct', last).toFixed(3));
      result(`svclb_udp_vs_direct_${last}`, ratio('udp', 'direct', last).toFixed(3));
      for (const base of ['iptables', 'nftables']) {
        result(`svclb_vs_${base}_min`, Math.min(...scales.map((n) => ratio('tcp', base, n))).toFixed(3));
        result(`svclb_udp_vs_${base}_min`, Math.min(...scales.map((n) => ratio('udp', base, n))).toFixed(3));
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await cleanUp();
    }
  },
};
