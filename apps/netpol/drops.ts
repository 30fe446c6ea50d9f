// A netpol drop event (ring buffer `drops`, one record per flow and second) as a flow record of
// apps/flow-monitor/flow.ts: verdict DROPPED, drop_reason_desc POLICY_DENIED, policy_name the
// namespace/name of the policy that selects the pod in that direction (for a default deny, the
// selecting policy), endpoints named from the pod declarations. flow-monitor's collector takes
// these as one of its inputs (the events as `kbpf logs` / the agent's log store keep them).
import type { Endpoint, Flow, L4 } from '../flow-monitor/flow.js';
import { type PodIdentity, workloadOf } from '../shared/pods.js';

/** A record of `drops` as decoded from BTF (struct drop_event in netpol.bpf.c). */
export interface DropEvent {
  cgroup_id: number | bigint;
  /** network-order u32 (as decoded), or dotted quad */
  saddr: number | string;
  daddr: number | string;
  sport: number;
  dport: number;
  policy_id: number;
  count: number;
  proto: number;
  /** 0 ingress, 1 egress */
  direction: number;
  tcp_flags: number;
}

export interface DropContext {
  /** policy id -> namespace/name (NetpolMaps.policyNames()) */
  policyNames: Map<number, string>;
  /** the declared pods (their IPs name the endpoints) */
  pods: PodIdentity[];
  node: string;
  /** when the event was read (default now) */
  time?: Date;
}

export const POLICY_DENIED = 'POLICY_DENIED';

/** A network-order u32 as the codec decodes it (its little-endian reading) -> dotted quad. */
export function ipOf(v: number | string): string {
  if (typeof v === 'string') return v;
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24].join('.');
}

function endpoint(ip: string, pods: PodIdentity[]): Endpoint {
  const p = pods.find((x) => x.ip === ip);
  if (!p) return {};
  return {
    namespace: p.namespace,
    pod_name: p.name,
    labels: Object.entries(p.labels).map(([k, v]) => `${k}=${v}`),
    workload: workloadOf(p),
  };
}

const FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'] as const;

function l4Of(e: DropEvent): L4 {
  if (e.proto === 6) {
    const flags: Partial<Record<(typeof FLAGS)[number], boolean>> = {};
    FLAGS.forEach((f, i) => {
      if (e.tcp_flags & (1 << i)) flags[f] = true;
    });
    return { TCP: { source_port: e.sport, destination_port: e.dport, flags } };
  }
  if (e.proto === 17) return { UDP: { source_port: e.sport, destination_port: e.dport } };
  if (e.proto === 1) return { ICMPv4: { type: 0, code: 0 } };
  return {};
}

/** The flow record of one drop event (`packets_sent`: the drops it stands for). */
export function flowOfDrop(e: DropEvent, ctx: DropContext): Flow {
  const source = ipOf(e.saddr);
  const destination = ipOf(e.daddr);
  const egress = e.direction === 1;
  const policy = ctx.policyNames.get(e.policy_id);
  return {
    time: (ctx.time ?? new Date()).toISOString(),
    flow_id: `netpol:${ctx.node}:${e.proto}:${source}:${e.sport}:${destination}:${e.dport}`,
    node_name: ctx.node,
    verdict: 'DROPPED',
    drop_reason_desc: POLICY_DENIED,
    ...(policy ? { policy_name: policy } : {}),
    IP: { source, destination, ipVersion: 'IPv4' },
    l4: l4Of(e),
    source: endpoint(source, ctx.pods),
    destination: endpoint(destination, ctx.pods),
    traffic_direction: egress ? 'EGRESS' : 'INGRESS',
    state: 'CLOSED',
    traffic: {
      bytes_sent: 0,
      bytes_received: 0,
      // the source sent them; none got through
      packets_sent: e.count,
      packets_received: 0,
    },
    retransmits: 0,
    duration_ms: 0,
  };
}
