// A netpol drop event (ring buffer `drops`, one record per flow and second) as a flow record of
// apps/flow-monitor/flow.ts: verdict DROPPED, drop_reason_desc POLICY_DENIED, policy_name the
// namespace/name of the policy that selects the pod in that direction (for a default deny, the
// selecting policy) — the event carries the name, so a record is complete on its own, also read
// from a node's log far from the instance's maps. Endpoints are named from the pod identities
// (the pod's own cgroup for the local end). `kbpf flows` reads a running netpol instance as one of
// its inputs (apps/flow-monitor/inputs.ts).
import { addrText } from '../flow-monitor/collector.js';
import type { Flow, L4 } from '../flow-monitor/flow.js';
import { endpointOf } from '../flow-monitor/identities.js';
import type { PodIdentity } from '../shared/pods.js';

/** A record of `drops` as the agent logs it (struct drop_event in netpol.bpf.c). */
export interface DropEvent {
  cgroup_id: number | bigint | string;
  /** 16 bytes (hex, or the bytes), IPv4 as ::ffff:a.b.c.d */
  saddr: number[] | string;
  daddr: number[] | string;
  sport: number;
  dport: number;
  policy_id: number;
  count: number;
  proto: number;
  /** 0 ingress, 1 egress */
  direction: number;
  tcp_flags: number;
  /** 2 IPv4, 10 IPv6 */
  family: number;
  /** namespace/name of the policy (empty when the id had no name) */
  policy: string;
}

export interface DropContext {
  node: string;
  /** the pod of an address, or (the local end) of a cgroup id */
  identities: { lookup(ip: string, cgroupId?: string): PodIdentity | undefined };
  /** when the event was read (default now) */
  time?: string;
}

export const POLICY_DENIED = 'POLICY_DENIED';

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
  if (e.proto === 58) return { ICMPv6: { type: 0, code: 0 } };
  return {};
}

/** The flow record of one drop event (`packets_sent`: the drops it stands for). */
export function flowOfDrop(e: DropEvent, ctx: DropContext): Flow {
  const source = addrText(e.saddr, e.family);
  const destination = addrText(e.daddr, e.family);
  const egress = e.direction === 1;
  const cgroup = String(e.cgroup_id);
  const ids = ctx.identities;
  return {
    time: ctx.time ?? new Date().toISOString(),
    flow_id: `${ctx.node}/netpol/${e.proto}/${source}/${e.sport}/${destination}/${e.dport}`,
    node_name: ctx.node,
    verdict: 'DROPPED',
    drop_reason_desc: POLICY_DENIED,
    ...(e.policy ? { policy_name: e.policy } : {}),
    IP: { source, destination, ipVersion: e.family === 10 ? 'IPv6' : 'IPv4' },
    l4: l4Of(e),
    source: endpointOf(egress ? ids.lookup(source, cgroup) : ids.lookup(source)),
    destination: endpointOf(egress ? ids.lookup(destination) : ids.lookup(destination, cgroup)),
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
