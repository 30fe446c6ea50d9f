// The collector: flow-monitor's reports (struct flow_report, as the agent logs them) -> Flow records.
//
// The kernel half reports each flow from the local socket's side (local/remote address, bytes
// sent/received by that socket, whether it connected or accepted). Here the record is oriented the
// way Hubble shows it — source is the end that opened the connection — and its endpoints are named
// from pod identities (the local socket's cgroup first, else the address).
import { Btf } from 'kbpf/bpf';
import type { SvcOrigin } from '../service-lb/service-maps.js';
import type { Endpoint, Flow, L4, ServiceTranslation, TcpFlag, Verdict } from './flow.js';
import { endpointOf, type Identities } from './identities.js';

/** service-lb's struct svc_origin, decoded (re-exported for flow-monitor's readers) */
export type { SvcOrigin };

/** A flow's counters as the agent's log line carries them (struct flow_report's fields). */
export interface FlowState {
  cgroup_id: number | string;
  laddr: number[] | string;
  raddr: number[] | string;
  lport: number;
  rport: number;
  family: number;
  proto: number;
  active: number;
  tcp_state: number;
  flags_tx: number;
  flags_rx: number;
  icmp_type: number;
  icmp_code: number;
  has_svc: number;
  srtt_us: number;
  min_rtt_us: number;
  retransmits: number;
  drops: number;
  drop_reason: number;
  bytes_tx: number;
  bytes_rx: number;
  packets_tx: number;
  packets_rx: number;
  ip_bytes_tx: number;
  ip_bytes_rx: number;
  /** hex bytes of struct svc_origin (struct flow_report), or its fields (older reports) */
  svc: SvcOrigin | string;
  /** 1: mesh-accel sent the connection elsewhere; where the application was connecting is in
   * `svc` (struct svc_bytes' orig), or with has_svc the backend (absent before 0.2.1) */
  redirected?: number;
}

/**
 * struct flow_report: the counters at the top level (flow_report.h), or, in reports written by
 * flow-monitor before 0.2, nested under `flow`.
 */
export type FlowReport = {
  cookie: number | string;
  duration_ns: number;
  closed: number;
} & ({ flow: FlowState } | FlowState);

/** struct svc_origin's bytes (flow_report.h) -> its fields */
function svcOf(v: SvcOrigin | string): SvcOrigin {
  if (typeof v !== 'string') return v;
  const b = Buffer.from(v, 'hex');
  if (b.length < 44) throw new Error(`svc: ${b.length} bytes, struct svc_origin has 44`);
  const words = (at: number): number[] => [0, 1, 2, 3].map((i) => b.readUInt32LE(at + 4 * i));
  return {
    vip: words(0),
    backend: words(16),
    vip_port: b.readUInt16LE(32),
    backend_port: b.readUInt16LE(34),
    family: b[36]!,
    policy: b[37]!,
    level: b[38]!,
    affinity_hit: b[39]!,
    service_id: b.readUInt32LE(40),
  };
}

/** struct svc_bytes' orig (flow_report.h): where a connection mesh-accel redirected was going */
function origOf(v: SvcOrigin | string): { addr: string; port: number } | undefined {
  if (typeof v !== 'string') return undefined;
  const b = Buffer.from(v, 'hex');
  if (b.length < 18) return undefined;
  return { addr: addrText(Array.from(b.subarray(0, 16)), 10), port: b.readUInt16LE(16) };
}

export const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
];

const TCP_FLAG_BITS: Array<[TcpFlag, number]> = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ECE', 0x40],
  ['CWR', 0x80],
];

/**
 * service-lb's `policy` values, in its numbering (struct svc_origin.policy). Kept here, next to the
 * layout of svc_origin, so the two packages agree in one place.
 */
/** service-lb's policy numbers (apps/service-lb/services.ts POLICIES), as svc_origin.policy carries them */
export const LB_POLICIES = ['random', 'round-robin', 'weighted', 'least-conn'];

export interface CollectorOptions {
  /** the node the reports come from (Flow.node_name) */
  node: string;
  identities: Identities;
  /** service-lb's service ids -> `namespace/name` */
  serviceName?: (id: number) => string | undefined;
}

let dropReasonNames: Map<number, string> | undefined;

/** The kernel's enum skb_drop_reason, from its BTF, without the SKB_DROP_REASON_ prefix. */
export function dropReasonName(n: number): string {
  if (!dropReasonNames) {
    dropReasonNames = new Map();
    try {
      const t = Btf.kernel().findByName('skb_drop_reason', 'ENUM');
      if (t && t.type.kind === 'ENUM')
        for (const v of t.type.values) dropReasonNames.set(v.value, v.name.replace(/^SKB_DROP_REASON_/, ''));
    } catch {
      /* no kernel BTF: numbers */
    }
  }
  return dropReasonNames.get(n) ?? `reason_${n}`;
}

function bytesOf(v: number[] | string): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'hex');
  return Uint8Array.from(v);
}

/** The text of addresses seen lately, by family and hex (a node's flows come from a few thousand). */
const addrCache4 = new Map<string, string>();
const addrCache6 = new Map<string, string>();
const ADDR_CACHE_MAX = 8192;

/** 16 bytes (IPv4 as ::ffff:a.b.c.d) -> text, IPv4 plain. */
export function addrText(v: number[] | string, family: number): string {
  if (typeof v !== 'string') return addrTextOf(bytesOf(v), family);
  const cache = family === 2 ? addrCache4 : addrCache6;
  let text = cache.get(v);
  if (text === undefined) {
    if (cache.size >= ADDR_CACHE_MAX) cache.clear();
    text = addrTextOf(bytesOf(v), family);
    cache.set(v, text);
  }
  return text;
}

function addrTextOf(b: Uint8Array, family: number): string {
  if (family === 2 || (b[10] === 0xff && b[11] === 0xff && b.subarray(0, 10).every((x) => x === 0)))
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** An address kept as four u32 in network order, read as little-endian numbers (struct svc_origin). */
function wordsText(words: number[], family: number): string {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 4; i++) dv.setUint32(i * 4, words[i] ?? 0, true);
  if (family === 2) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return addrText(Array.from(b), 10);
}

function netPort(p: number): number {
  return ((p & 0xff) << 8) | (p >> 8);
}

function flagsOf(bits: number): Partial<Record<TcpFlag, boolean>> {
  const out: Partial<Record<TcpFlag, boolean>> = {};
  for (const [name, bit] of TCP_FLAG_BITS) if (bits & bit) out[name] = true;
  return out;
}

/** How many cgroups' addresses a collector remembers (from their flows) before it starts afresh. */
const LEARNT_MAX = 65_536;

export class Collector {
  /** cgroup id -> the local address its flows had, by family (for cgroups no identity names) */
  readonly #learnt = new Map<string, { 2?: string; 10?: string }>();

  constructor(readonly opts: CollectorOptions) {}

  #learn(cgroup: string, family: 2 | 10, address: string): void {
    let known = this.#learnt.get(cgroup);
    if (known?.[family] === address) return;
    if (!known) {
      if (this.#learnt.size >= LEARNT_MAX) this.#learnt.clear();
      known = {};
      this.#learnt.set(cgroup, known);
    }
    known[family] = address;
  }

  #addressOf(cgroup: string, family: 2 | 10): string | undefined {
    return this.#learnt.get(cgroup)?.[family];
  }

  /** One report (the `event` of a flow_events log line) and the time it was read. */
  flowOf(r: FlowReport, time: string): Flow {
    const f = 'flow' in r ? r.flow : r;
    const family = f.family === 10 ? 10 : 2;
    const remote = addrText(f.raddr, family);
    const ids = this.opts.identities;
    const cgroup = String(f.cgroup_id);
    const localPod = ids.ofCgroup(cgroup);
    // a wildcard-bound datagram socket's own address is its pod's (the kernel's send and receive
    // calls do not say which address the route chose): its identity's, else the one the other
    // flows of its cgroup had
    let local = addrText(f.laddr, family);
    if (local === '0.0.0.0' || local === '::')
      local =
        (localPod ? (family === 2 ? localPod.ip : localPod.ip6) : undefined) ??
        this.#addressOf(cgroup, family) ??
        local;
    else if (!localPod) this.#learn(cgroup, family, local);
    // a connection mesh-accel redirected is shown going where the application sent it
    const redirected = f.redirected === 1 && f.active === 1;
    const service = f.has_svc ? this.service(f) : undefined;
    const orig = redirected
      ? service
        ? { addr: service.backend, port: service.backend_port }
        : origOf(f.svc)
      : undefined;
    const shownRemote = orig?.addr ?? remote;
    const shownRport = orig?.port ?? f.rport;
    const localEp = endpointOf(localPod ?? ids.lookup(local));
    const remoteEp = endpointOf(ids.lookup(shownRemote));
    const out = f.active === 1;
    const tcp = f.proto === 6;
    // TCP's byte counters include the SYN (connecting side) and the FIN, one sequence number each
    const txPayload = tcp ? Math.max(0, f.bytes_tx - (out ? 1 : 0) - (f.flags_tx & 1 ? 1 : 0)) : f.bytes_tx;
    const rxPayload = tcp ? Math.max(0, f.bytes_rx - (f.flags_rx & 1 ? 1 : 0)) : f.bytes_rx;
    const [src, dst, srcEp, dstEp] = out ? [local, shownRemote, localEp, remoteEp] : [remote, local, remoteEp, localEp];
    const [sport, dport] = out ? [f.lport, shownRport] : [f.rport, f.lport];
    const l4: L4 = {};
    if (tcp) l4.TCP = { source_port: sport, destination_port: dport, flags: flagsOf(f.flags_tx | f.flags_rx) };
    else if (f.proto === 17) l4.UDP = { source_port: sport, destination_port: dport };
    else if (f.proto === 1) l4.ICMPv4 = { type: f.icmp_type, code: f.icmp_code };
    else if (f.proto === 58) l4.ICMPv6 = { type: f.icmp_type, code: f.icmp_code };

    const tcpState = tcp ? (TCP_STATES[f.tcp_state] ?? String(f.tcp_state)) : undefined;
    // a connection that never got past SYN_SENT, with its packets dropped, was dropped
    const neverOpened = tcp && f.tcp_state === 7 && !(f.flags_rx & 0x10);
    let verdict: Verdict = 'FORWARDED';
    let dropReason: string | undefined;
    if (f.drops > 0 && neverOpened) {
      verdict = 'DROPPED';
      dropReason = dropReasonName(f.drop_reason);
    } else if (redirected) {
      verdict = 'REDIRECTED';
    }
    const nodeId = this.opts.node;
    const flow: Flow = {
      time,
      flow_id: tcp ? `${nodeId}/${r.cookie}` : `${nodeId}/${r.cookie}/${remote}/${f.rport}`,
      node_name: nodeId,
      verdict,
      IP: { source: src, destination: dst, ipVersion: family === 10 ? 'IPv6' : 'IPv4' },
      l4,
      source: srcEp,
      destination: dstEp,
      traffic_direction: out ? 'EGRESS' : 'INGRESS',
      state: r.closed ? 'CLOSED' : 'OPEN',
      traffic: {
        bytes_sent: out ? txPayload : rxPayload,
        bytes_received: out ? rxPayload : txPayload,
        packets_sent: out ? f.packets_tx : f.packets_rx,
        packets_received: out ? f.packets_rx : f.packets_tx,
        ip_bytes_sent: out ? f.ip_bytes_tx : f.ip_bytes_rx,
        ip_bytes_received: out ? f.ip_bytes_rx : f.ip_bytes_tx,
      },
      retransmits: f.retransmits,
      duration_ms: Math.round(r.duration_ns / 1e4) / 100,
    };
    if (dropReason) flow.drop_reason_desc = dropReason;
    if (redirected) flow.proxy_port = f.rport;
    if (tcpState) flow.tcp_state = tcpState;
    if (tcp && (f.srtt_us > 0 || f.min_rtt_us > 0)) flow.rtt = { srtt_us: f.srtt_us, min_rtt_us: f.min_rtt_us };
    if (f.drops > 0) flow.drops = { count: f.drops, last_reason: dropReasonName(f.drop_reason) };
    if (service) {
      const s = service;
      flow.service = s;
      if (s.name) {
        const [ns, name] = s.name.includes('/') ? s.name.split('/', 2) : [undefined, s.name];
        flow.destination_service = ns ? { name: name!, namespace: ns } : { name: name! };
      }
    }
    return flow;
  }

  private service(f: FlowState): ServiceTranslation {
    const s = svcOf(f.svc);
    const fam = s.family === 10 ? 10 : 2;
    const out: ServiceTranslation = {
      vip: wordsText(s.vip, fam),
      vip_port: netPort(s.vip_port),
      backend: wordsText(s.backend, fam),
      backend_port: netPort(s.backend_port),
      lb_policy: LB_POLICIES[s.policy] ?? String(s.policy),
      lb_level: s.level,
      affinity_hit: s.affinity_hit !== 0,
      service_id: s.service_id,
    };
    const name = this.opts.serviceName?.(s.service_id);
    if (name) out.name = name;
    return out;
  }
}

/** Endpoint text as the renderers show it: namespace/pod, else nothing. */
export function endpointName(e: Endpoint): string | undefined {
  return e.pod_name ? `${e.namespace ?? 'default'}/${e.pod_name}` : undefined;
}
