// The service map: workloads as nodes, the flows between them as edges, over a window of time,
// computed from flow reports (the web view's GET /api/map). A connection counts once however many
// reports it has (periodic OPEN reports, the CLOSED one, one from each end): its latest report in
// the window stands for it, keyed by its tuple. Its bytes are what it moved within the window (its
// latest total less its total in its last report before the window, when there is one).
import type { Endpoint, Flow } from '../../apps/flow-monitor/flow.js';

export interface MapNode {
  /** `namespace/workload`, or the address for an endpoint without a pod identity */
  id: string;
  label: string;
  namespace?: string;
  kind: 'workload' | 'address';
}

export interface MapEdge {
  /** `SOURCE->DESTINATION` (node ids) */
  id: string;
  source: string;
  destination: string;
  /** connections seen in the window */
  flows: number;
  /** connections per second over the window */
  flow_rate: number;
  /** bytes both ways within the window */
  bytes: number;
  bytes_per_s: number;
  /** connections whose verdict was DROPPED */
  drops: number;
  /** the median of the connections' smoothed RTT, microseconds; absent when none had one */
  p50_rtt_us?: number;
  /** destination ports, protocols, services and denying policies seen, sorted */
  ports: number[];
  protocols: string[];
  services: string[];
  drop_reasons: string[];
}

export interface ServiceMap {
  /** RFC 3339 time the map was computed at */
  time: string;
  window_s: number;
  nodes: MapNode[];
  edges: MapEdge[];
}

export function nodeOf(ep: Endpoint, ip: string): MapNode {
  const name = ep.workload ?? ep.pod_name;
  if (!name) return { id: ip, label: ip, kind: 'address' };
  const ns = ep.namespace ?? '';
  return { id: `${ns}/${name}`, label: name, namespace: ep.namespace, kind: 'workload' };
}

/** TCP, UDP, ICMPv4, ICMPv6 */
export function protocolOf(f: Flow): string {
  if (f.l4.TCP) return 'TCP';
  if (f.l4.UDP) return 'UDP';
  if (f.l4.ICMPv4) return 'ICMPv4';
  if (f.l4.ICMPv6) return 'ICMPv6';
  return 'other';
}

/** One key for a connection's reports, whichever end reported it. */
function tupleKey(f: Flow): string {
  const l4 = f.l4.TCP ?? f.l4.UDP;
  const a = `${f.IP.source}:${l4?.source_port ?? ''}`;
  const b = `${f.IP.destination}:${l4?.destination_port ?? ''}`;
  return `${protocolOf(f)} ${a} ${b}`;
}

const totalBytes = (f: Flow): number => f.traffic.bytes_sent + f.traffic.bytes_received;

/** An earlier report of the same tuple is of the same connection when it has its id (the same
 * end) or falls within the later report's lifetime (the other end); else the tuple was reused. */
function sameConnection(earlier: Flow, later: Flow, at: Map<Flow, number>): boolean {
  return earlier.flow_id === later.flow_id || at.get(earlier)! >= at.get(later)! - later.duration_ms;
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const sorted = <T extends string | number>(s: Set<T>): T[] => [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** The map of the reports (any order) whose time falls in the `windowS` seconds before `now`. */
export function serviceMap(reports: readonly Flow[], windowS: number, now = Date.now()): ServiceMap {
  const since = now - windowS * 1000;
  const latest = new Map<string, Flow>();
  const before = new Map<string, Flow>();
  const at = new Map<Flow, number>();
  for (const f of reports) {
    const t = Date.parse(f.time);
    if (Number.isNaN(t) || t > now) continue;
    at.set(f, t);
    const key = tupleKey(f);
    const into = t >= since ? latest : before;
    const prev = into.get(key);
    if (!prev || at.get(prev)! <= t) into.set(key, f);
  }

  const nodes = new Map<string, MapNode>();
  interface Acc {
    edge: MapEdge;
    rtts: number[];
    ports: Set<number>;
    protocols: Set<string>;
    services: Set<string>;
    reasons: Set<string>;
  }
  const edges = new Map<string, Acc>();
  for (const [key, f] of latest) {
    const src = nodeOf(f.source, f.IP.source);
    const dst = nodeOf(f.destination, f.IP.destination);
    nodes.set(src.id, src);
    nodes.set(dst.id, dst);
    const id = `${src.id}->${dst.id}`;
    let acc = edges.get(id);
    if (!acc) {
      acc = {
        edge: {
          id,
          source: src.id,
          destination: dst.id,
          flows: 0,
          flow_rate: 0,
          bytes: 0,
          bytes_per_s: 0,
          drops: 0,
          ports: [],
          protocols: [],
          services: [],
          drop_reasons: [],
        },
        rtts: [],
        ports: new Set(),
        protocols: new Set(),
        services: new Set(),
        reasons: new Set(),
      };
      edges.set(id, acc);
    }
    const e = acc.edge;
    e.flows++;
    const prior = before.get(key);
    e.bytes += Math.max(0, totalBytes(f) - (prior && sameConnection(prior, f, at) ? totalBytes(prior) : 0));
    if (f.verdict === 'DROPPED') {
      e.drops++;
      const reason = [f.drop_reason_desc, f.policy_name].filter(Boolean).join(' ');
      if (reason) acc.reasons.add(reason);
    }
    if (f.rtt && f.rtt.srtt_us > 0) acc.rtts.push(f.rtt.srtt_us);
    const l4 = f.l4.TCP ?? f.l4.UDP;
    if (l4) acc.ports.add(l4.destination_port);
    acc.protocols.add(protocolOf(f));
    const ds = f.destination_service;
    const svc = f.service?.name ?? (ds && (ds.namespace ? `${ds.namespace}/${ds.name}` : ds.name));
    if (svc) acc.services.add(svc);
  }
  const out: MapEdge[] = [];
  for (const acc of edges.values()) {
    const e = acc.edge;
    e.flow_rate = e.flows / windowS;
    e.bytes_per_s = e.bytes / windowS;
    const p50 = median(acc.rtts);
    if (p50 !== undefined) e.p50_rtt_us = p50;
    e.ports = sorted(acc.ports);
    e.protocols = sorted(acc.protocols);
    e.services = sorted(acc.services);
    e.drop_reasons = sorted(acc.reasons);
    out.push(e);
  }
  out.sort((a, b) => (a.id < b.id ? -1 : 1));
  const ns = [...nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  return { time: new Date(now).toISOString(), window_s: windowS, nodes: ns, edges: out };
}
