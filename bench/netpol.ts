// `npm run bench -- netpol`: the connection rate between two pods with netpol enforcing 1,000
// rules on both ends vs no netpol at all, in the same run.
//
// One test bed node (testbed/mesh/testbed.ts), pods `web` (HAProxy answering on :80) and
// `client`, both on CPU 0 (as bench/mesh.ts: the chain's processes never wait for a wake-up on
// another CPU, so the rate follows what a connection costs). wrk in `client` makes a new
// connection per request (`Connection: close`, 8 connections, 1 thread) to web:80. Paths:
//   none    no netpol instance (nothing attached to the pods' cgroup)
//   netpol  the package run by a real agent on the pods' parent cgroup, with two policies:
//           web's ingress has 1,000 rules (999 of other /32 CIDRs on other ports, and one
//           allowing app=client on :80), client's egress 1,000 rules likewise (one allowing
//           app=web on :80): every connection's first packet is checked on both ends (the
//           trie, or the verdict kept for that peer and port); web's egress and client's ingress
//           are unrestricted, so the connections need no records (replies pass anyway). With
//           --netpol-isolate=both the two policies isolate the other direction too (allowing
//           nothing there): replies then pass by the connections' records only — each TCP
//           socket's record in socket storage, a listener's handshakes in a table
//   empty   the same instance with no policy applied (its programs attached, the slot empty:
//           every packet passes after one array lookup) — the headline's baseline
// First `repeats` windows of none (netpol_none_conn_per_s, for reference), then netpol is run and
// each repeat measures empty, 1,000 rules, 1,000 rules, empty (ABBA, switching with one apply /
// clear, so a trend in the machine's load hits both alike). netpol_conn_ratio_1000 is the median
// of the per-repeat ratios (rules / no policy), with their min-max. Also printed: the time to
// compile and apply the 2,000-rule generation (netpol_apply_ms_1000), and what a packet costs in
// netpol's programs (the kernel's run time / run count of both, BPF stats on during the windows:
// netpol_ns_per_packet_1000 and netpol_ns_per_packet_empty, medians of the windows) — CPU time
// of the programs themselves, which the machine's load moves far less than the connection rate.
// Options: --duration=S (default 3), --repeats=N (default 3), --netpol-conns=N (default 8),
// --netpol-cpus=LIST (taskset list for the pods, default 0; =all pins nothing),
// --netpol-isolate=one|both (default one).
import { performance } from 'node:perf_hooks';
import { infoOfId, RunTimeStats } from 'kbpf/bpf';
import type { NetworkPolicyPeer, NetworkPolicyPort, PolicyInput } from '../apps/netpol/policy.js';
import { testAgent } from '../testbed/agent.js';
import { APP_PORT, type Pod, Testbed } from '../testbed/mesh/testbed.js';
import { NETPOL_APP_DIR, podIdentity, runNetpol } from '../testbed/netpol/netpol-node.js';
import { parseWrk } from './mesh.js';
import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

export const RULES = 1000;

/** 999 peers of /32s elsewhere on other ports, and (in the middle) the pod `app` on :80. */
function rulePeers(second: number, app: string): { peers: NetworkPolicyPeer[]; ports: NetworkPolicyPort[] }[] {
  const list: { peers: NetworkPolicyPeer[]; ports: NetworkPolicyPort[] }[] = Array.from(
    { length: RULES - 1 },
    (_, i) => ({
      peers: [{ ipBlock: { cidr: `172.${second}.${i >> 8}.${i & 255}/32` } }],
      ports: [{ protocol: 'TCP', port: 10000 + i }],
    }),
  );
  list.splice(RULES >> 1, 0, {
    peers: [{ podSelector: { matchLabels: { app } } }],
    ports: [{ protocol: 'TCP', port: APP_PORT }],
  });
  return list;
}

export function benchPolicies(web: Pod, client: Pod, both = false): PolicyInput {
  const ingress = rulePeers(16, 'client').map((r) => ({ from: r.peers, ports: r.ports }));
  const egress = rulePeers(17, 'web').map((r) => ({ to: r.peers, ports: r.ports }));
  return {
    namespaces: [],
    pods: [podIdentity(web, 'bench', { app: 'web' }), podIdentity(client, 'bench', { app: 'client' })],
    policies: [
      {
        metadata: { namespace: 'bench', name: 'web-ingress' },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          ...(both ? { policyTypes: ['Ingress', 'Egress'], egress: [] } : { policyTypes: ['Ingress'] }),
          ingress,
        },
      },
      {
        metadata: { namespace: 'bench', name: 'client-egress' },
        spec: {
          podSelector: { matchLabels: { app: 'client' } },
          ...(both ? { policyTypes: ['Ingress', 'Egress'], ingress: [] } : { policyTypes: ['Egress'] }),
          egress,
        },
      },
    ],
  };
}

function option(opts: BenchOptions, name: string, dflt: string): string {
  const a = opts.args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
}

export const benchmark: Benchmark = {
  name: 'netpol',
  description: 'connection rate between two pods: netpol with 1,000 rules on each end vs no netpol',
  async run(opts: BenchOptions): Promise<void> {
    const conns = Number(option(opts, 'netpol-conns', '8'));
    const cpusOpt = option(opts, 'netpol-cpus', '0');
    const cpus = cpusOpt === 'all' ? undefined : cpusOpt;
    const isolate = option(opts, 'netpol-isolate', 'one');
    if (isolate !== 'one' && isolate !== 'both') throw new Error(`--netpol-isolate=${isolate}: one or both`);
    const cleanups: (() => unknown)[] = [];
    const t = { after: (fn: () => unknown) => cleanups.push(fn) };
    try {
      const tb = await Testbed.create(t, 'kbpfnpb');
      const web = await tb.addPod({ sidecar: false, cpus });
      const client = await tb.addPod({ sidecar: false, cpus });
      const ta = await testAgent(t);
      const ref = await ta.build(NETPOL_APP_DIR);
      const input = benchPolicies(web, client, isolate === 'both');
      const url = `http://${web.ip}:${APP_PORT}/`;
      const measure = async () => {
        const r = await tb.execInPod(
          client,
          'wrk',
          ['-t1', `-c${conns}`, `-d${opts.durationS}s`, '--timeout', '5s', '-H', 'Connection: close', url],
          { timeoutMs: (opts.durationS + 30) * 1000 },
        );
        if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr}${r.stdout}`);
        const w = parseWrk(r.stdout);
        if (w.errors) throw new Error(`wrk: ${w.errors} errors (a connection was dropped?)\n${r.stdout}`);
        return w.rps;
      };
      note(
        `netpol: pods ${client.ip} -> ${web.ip}:${APP_PORT}, ${conns} connections, ${opts.durationS} s windows, ${opts.repeats} repeats, CPUs ${cpus ?? 'all'}, isolated ${isolate === 'both' ? 'both ways' : "web's ingress, client's egress"}`,
      );
      await measure(); // warm-up
      const none: number[] = [];
      for (let rep = 0; rep < opts.repeats; rep++) none.push(await measure());
      const np = await runNetpol(t, tb, 'netpol', { ta, ref });
      const stats = RunTimeStats.enable();
      cleanups.push(() => stats.close());
      const progIds = ta.agent
        .inspect('netpol')
        .programs.map((p) => p.progId)
        .filter((id): id is number => id !== undefined);
      const runs = () =>
        progIds.reduce(
          (a, id) => {
            const i = infoOfId('prog', id);
            return { n: a.n + (i?.runCount ?? 0n), ns: a.ns + (i?.runTimeNs ?? 0n) };
          },
          { n: 0n, ns: 0n },
        );
      const nsEmpty: number[] = [];
      const nsRules: number[] = [];
      const empty: number[] = [];
      const loaded: number[] = [];
      const ratios: number[] = [];
      const applyMs: number[] = [];
      let entries = 0;
      const window = async (withRules: boolean) => {
        if (withRules) {
          const t0 = performance.now();
          entries = np.maps.apply(input).entries;
          applyMs.push(performance.now() - t0);
        } else np.maps.clear();
        const r0 = runs();
        const rps = await measure();
        const r1 = runs();
        if (r1.n > r0.n) (withRules ? nsRules : nsEmpty).push(Number(r1.ns - r0.ns) / Number(r1.n - r0.n));
        (withRules ? loaded : empty).push(rps);
        return rps;
      };
      for (let rep = 0; rep < opts.repeats; rep++) {
        // ABBA: a trend in the machine's load hits both alike
        const e1 = await window(false);
        const r1 = await window(true);
        const r2 = await window(true);
        const e2 = await window(false);
        ratios.push((r1 + r2) / (e1 + e2));
        note(
          `netpol: rep ${rep + 1}: no policy ${e1.toFixed(0)}, ${e2.toFixed(0)} conn/s; 1,000 rules ${r1.toFixed(0)}, ${r2.toFixed(0)} conn/s; ratio ${ratios[rep]!.toFixed(3)}`,
        );
      }
      const s = np.maps.stats();
      note(
        `netpol: ${entries} trie entries, applied in ${median(applyMs).toFixed(1)} ms (median); allowed ${s.allowed}, known-connection packets ${s.conn} (${s.socket} decided by their socket's record), dropped ${s.dropped}`,
      );
      if (s.dropped > 0n) throw new Error(`netpol dropped ${s.dropped} packets of allowed connections`);
      await np.remove();
      result('netpol_none_conn_per_s', median(none).toFixed(0));
      result('netpol_empty_conn_per_s', median(empty).toFixed(0));
      result('netpol_conn_per_s_1000', median(loaded).toFixed(0));
      result('netpol_conn_ratio_1000', median(ratios).toFixed(3));
      result('netpol_conn_ratio_1000_range', `${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`);
      result('netpol_apply_ms_1000', median(applyMs).toFixed(1));
      result('netpol_ns_per_packet_1000', median(nsRules).toFixed(1));
      result('netpol_ns_per_packet_empty', median(nsEmpty).toFixed(1));
    } finally {
      for (const fn of cleanups.reverse()) await fn();
    }
  },
};
