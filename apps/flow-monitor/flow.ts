// The flow record: one connection (TCP), or one 5-tuple conversation (UDP, ICMP), as flow-monitor
// reports it. Field names are Hubble's (flow.proto's JSON names) where the meaning is the same, so
// `kbpf flows -o json` reads like `hubble observe -o json`; what Hubble lacks (bytes, packets, RTT,
// retransmits, the socket-LB choice) is added under names of our own.
//
// This module is the contract between the data path's user-space half (the collector that turns
// the package's events into flows), the CLI (`kbpf flows`, filters, renderers), the metrics and the
// web view: each of them imports these types and nothing else of the others.

export type Verdict = 'FORWARDED' | 'DROPPED' | 'REDIRECTED';
export type TrafficDirection = 'EGRESS' | 'INGRESS';
export type FlowState = 'OPEN' | 'CLOSED';
export type TcpFlag = 'SYN' | 'ACK' | 'FIN' | 'RST' | 'PSH' | 'URG' | 'ECE' | 'CWR';

/** One side of a flow: an address with the workload it belongs to, where known. */
export interface Endpoint {
  namespace?: string;
  pod_name?: string;
  /** `key=value` (Hubble writes `k8s:key=value`; we keep the plain form) */
  labels?: string[];
  /** the owning workload (Deployment, DaemonSet…), else the pod's name without its hash suffix */
  workload?: string;
}

export interface L4 {
  TCP?: { source_port: number; destination_port: number; flags?: Partial<Record<TcpFlag, boolean>> };
  UDP?: { source_port: number; destination_port: number };
  ICMPv4?: { type: number; code: number };
  ICMPv6?: { type: number; code: number };
}

/** The socket-LB translation (service-lb), when the connection was made to a service address. */
export interface ServiceTranslation {
  /** the address the application connected to */
  vip: string;
  vip_port: number;
  /** `namespace/name` of the service, where declared */
  name?: string;
  /** the backend chosen */
  backend: string;
  backend_port: number;
  /** the policy that chose it: random, round-robin, weighted, least-conn, … */
  lb_policy?: string;
  /** locality level (0 = same node … ) the backend came from (failover) */
  lb_level?: number;
  affinity_hit?: boolean;
  /** service-lb's id of the service (what `name` was found from) */
  service_id?: number;
}

/** Counted from the source's side: `*_sent` went source -> destination, `*_received` came back. */
export interface Traffic {
  /** transport payload (TCP bytes acknowledged / received, UDP payload, the ICMP message) */
  bytes_sent: number;
  bytes_received: number;
  packets_sent: number;
  packets_received: number;
  /** whole IP packets, headers included */
  ip_bytes_sent?: number;
  ip_bytes_received?: number;
}

/**
 * Set (not serialised) on a flow whose DROPPED verdict another input's record gave it (netpol's
 * drop of the same connection): that record counts the drop, this one must not count it again.
 */
export const VERDICT_FROM_OTHER_INPUT: unique symbol = Symbol('verdict from another input');

export interface Flow {
  [VERDICT_FROM_OTHER_INPUT]?: true;
  /** RFC 3339 time of this report */
  time: string;
  /** a stable id for the connection: reports of one flow share it */
  flow_id: string;
  node_name: string;
  verdict: Verdict;
  /** the kernel's drop reason (skb:kfree_skb) or POLICY_DENIED; only on DROPPED */
  drop_reason_desc?: string;
  /** the policy (namespace/name) that denied it; only on a policy drop */
  policy_name?: string;
  /**
   * REDIRECTED (mesh-accel sent the connection to a sidecar, or to a peer's inbound port): the
   * port it was sent to. `IP.destination` and the destination port are then where the
   * application was connecting, as Hubble shows a flow redirected to a proxy.
   */
  proxy_port?: number;
  IP: { source: string; destination: string; ipVersion: 'IPv4' | 'IPv6' };
  l4: L4;
  source: Endpoint;
  destination: Endpoint;
  traffic_direction: TrafficDirection;
  /** Hubble's name for "the service the destination belongs to" */
  destination_service?: { name: string; namespace?: string };
  service?: ServiceTranslation;
  /** OPEN: a periodic report of a live flow; CLOSED: its last report */
  state: FlowState;
  /** the TCP state the kernel last reported (ESTABLISHED, CLOSE_WAIT, …), TCP only */
  tcp_state?: string;
  traffic: Traffic;
  /** microseconds; absent where the protocol has none */
  rtt?: { srtt_us: number; min_rtt_us: number };
  retransmits: number;
  /** packets of this flow the kernel dropped (skb:kfree_skb) while it went on: count and last reason */
  drops?: { count: number; last_reason: string };
  /** since the flow's first packet */
  duration_ms: number;
}

/**
 * The filters of `kbpf flows` (and the web view's filter bar), in the manner of `hubble observe`.
 * Every field given must match (AND); each list is OR within itself; `not` negates the whole filter.
 */
export interface FlowFilter {
  pod?: string[];
  namespace?: string[];
  from_ip?: string[];
  to_ip?: string[];
  from_pod?: string[];
  to_pod?: string[];
  port?: number[];
  service?: string[];
  verdict?: Verdict[];
  protocol?: Array<'tcp' | 'udp' | 'icmp'>;
  tcp_flags?: TcpFlag[];
  not?: boolean;
}

/** Where flows come from: the collector standalone, the merged node streams in a cluster, a test's fake. */
export interface FlowSource {
  /** the most recent flows, oldest first (at most `last`) */
  recent(last: number): Flow[];
  /** every flow report from now on, until the signal aborts */
  follow(signal: AbortSignal): AsyncIterable<Flow>;
}
