// Prometheus metrics of flows, in the text exposition format (promtool-clean): Hubble's names where
// the meaning matches, plus what Hubble lacks (bytes, packets, RTT, retransmits) by source and
// destination. Flow reports are cumulative (a flow is reported while open and at close), so
// counters add what changed since the flow's previous report.
//
// The `source` / `destination` labels say what the context says (as Hubble's sourceContext /
// destinationContext): ip, pod (namespace/pod), workload (namespace/workload) or namespace. Series
// of a pod that is removed go at once (Identities.onRemove); any series not updated for `ttlMs`
// goes too, so cardinality follows what is live.
import { type Endpoint, type Flow, type TcpFlag, VERDICT_FROM_OTHER_INPUT } from './flow.js';

export type LabelContext = 'ip' | 'pod' | 'workload' | 'namespace';
export const LABEL_CONTEXTS: readonly LabelContext[] = ['ip', 'pod', 'workload', 'namespace'];

export interface FlowMetricsOptions {
  context?: LabelContext;
  /** drop series not updated for this long (default 10 minutes) */
  ttlMs?: number;
  /** open flows whose last counters are kept for deltas (default 200,000) */
  maxOpenFlows?: number;
  now?: () => number;
}

/** RTT buckets, seconds: 50 µs .. 2.5 s */
const RTT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

interface Series {
  labels: Record<string, string>;
  value: number;
  touched: number;
}

interface Histogram {
  labels: Record<string, string>;
  buckets: number[];
  sum: number;
  count: number;
  touched: number;
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  series: Map<string, Series | Histogram>;
}

interface Last {
  bytes_sent: number;
  bytes_received: number;
  packets_sent: number;
  packets_received: number;
  retransmits: number;
  drops: number;
  flags: number;
}

const FLAG_ORDER: TcpFlag[] = ['SYN', 'ACK', 'FIN', 'RST', 'PSH', 'URG', 'ECE', 'CWR'];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Record<string, string>, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  if (extra) parts.push(`${extra[0]}="${esc(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** The series keys of one source/destination pair (values in label order, as add() makes keys). */
interface PairKeys {
  source: string;
  destination: string;
  pair: string;
  sent: string;
  received: string;
  /** the labels of a new series of the pair (made once per pair, called only for a new series) */
  pairLabels: () => Record<string, string>;
  sentLabels: () => Record<string, string>;
  receivedLabels: () => Record<string, string>;
}

/** pair keys made lately, by source then destination (bounded: cleared when it grows past this) */
const PAIR_KEYS_MAX = 16_384;

function protocolOf(f: Flow): string {
  if (f.l4.TCP) return 'TCP';
  if (f.l4.UDP) return 'UDP';
  if (f.l4.ICMPv4) return 'ICMPv4';
  if (f.l4.ICMPv6) return 'ICMPv6';
  return 'unknown';
}

export class FlowMetrics {
  readonly context: LabelContext;
  readonly #families = new Map<string, Family>();
  readonly #last = new Map<string, Last>();
  readonly #ttl: number;
  readonly #maxOpen: number;
  readonly #now: () => number;
  /** the time of the report being counted */
  #clock = 0;
  /** flow reports counted */
  observed = 0;
  // the families every report counts in, at hand
  readonly #processed: Family;
  readonly #bytes: Family;
  readonly #packets: Family;
  readonly #retransmits: Family;
  readonly #drops: Family;
  readonly #flags: Family;
  readonly #ports: Family;
  readonly #rtt: Family;
  readonly #pairKeys = new Map<string, Map<string, PairKeys>>();
  #pairKeyCount = 0;
  /** keys of the series every report counts in, made once: processed by verdict, flags by family */
  readonly #processedKeys = new Map<string, string>();
  readonly #flagKeys = new Map<string, string[]>();
  readonly #portKeys = new Map<string, Map<number, string>>();

  constructor(opts: FlowMetricsOptions = {}) {
    this.context = opts.context ?? 'workload';
    this.#ttl = opts.ttlMs ?? 600_000;
    this.#maxOpen = opts.maxOpenFlows ?? 200_000;
    this.#now = opts.now ?? Date.now;
    this.#processed = this.family('hubble_flows_processed_total', 'Flows processed, by type and verdict', 'counter');
    this.#drops = this.family('hubble_drop_total', 'Drops, by reason and protocol', 'counter');
    this.#flags = this.family('hubble_tcp_flags_total', 'TCP flags seen, by flag and IP family', 'counter');
    this.#ports = this.family('hubble_port_distribution_total', 'Flows by destination port and protocol', 'counter');
    this.#bytes = this.family(
      'kbpf_flows_bytes_total',
      'Transport payload bytes of flows, by source, destination and direction',
      'counter',
    );
    this.#packets = this.family(
      'kbpf_flows_packets_total',
      'Packets of flows, by source, destination and direction',
      'counter',
    );
    this.#retransmits = this.family(
      'kbpf_flows_retransmits_total',
      'TCP retransmits, by source and destination',
      'counter',
    );
    this.#rtt = this.family(
      'kbpf_flows_rtt_seconds',
      'Smoothed RTT of closed TCP flows, by source and destination',
      'histogram',
    );
  }

  private family(name: string, help: string, type: Family['type']): Family {
    const fam: Family = { name, help, type, series: new Map() };
    this.#families.set(name, fam);
    return fam;
  }

  /** The label value of an endpoint in this context ("" when it is not known). */
  endpointLabel(e: Endpoint, ip: string): string {
    switch (this.context) {
      case 'ip':
        return ip;
      case 'pod':
        return e.pod_name ? `${e.namespace ?? 'default'}/${e.pod_name}` : '';
      case 'workload':
        return e.pod_name ? `${e.namespace ?? 'default'}/${e.workload ?? e.pod_name}` : '';
      case 'namespace':
        return e.namespace ?? '';
    }
  }

  private add(fam: Family, labels: Record<string, string>, n: number): void {
    if (n <= 0) return;
    // the key only has to tell series apart: the values in order (names are fixed per family)
    let key = '';
    for (const k in labels) key += `${labels[k]}\u0001`;
    this.bump(fam, key, () => labels, n);
  }

  private pairKeys(source: string, destination: string): PairKeys {
    let bySource = this.#pairKeys.get(source);
    let k = bySource?.get(destination);
    if (k) return k;
    if (this.#pairKeyCount >= PAIR_KEYS_MAX) {
      this.#pairKeys.clear();
      this.#pairKeyCount = 0;
      bySource = undefined;
    }
    if (!bySource) {
      bySource = new Map();
      this.#pairKeys.set(source, bySource);
    }
    const pair = `${source}\u0001${destination}\u0001`;
    k = {
      source,
      destination,
      pair,
      sent: `${pair}sent\u0001`,
      received: `${pair}received\u0001`,
      pairLabels: () => ({ source, destination }),
      sentLabels: () => ({ source, destination, direction: 'sent' }),
      receivedLabels: () => ({ source, destination, direction: 'received' }),
    };
    bySource.set(destination, k);
    this.#pairKeyCount++;
    return k;
  }

  private processedKey(verdict: string): string {
    let k = this.#processedKeys.get(verdict);
    if (k === undefined) {
      k = `L3_L4\u0001${verdict}\u0001`;
      this.#processedKeys.set(verdict, k);
    }
    return k;
  }

  /** hubble_tcp_flags_total's keys of each flag (FLAG_ORDER) in one IP family */
  private flagKeys(family: string): string[] {
    let k = this.#flagKeys.get(family);
    if (!k) {
      k = FLAG_ORDER.map((fl) => `${fl}\u0001${family}\u0001`);
      this.#flagKeys.set(family, k);
    }
    return k;
  }

  private portKey(protocol: string, port: number): string {
    let byPort = this.#portKeys.get(protocol);
    if (!byPort) {
      byPort = new Map();
      this.#portKeys.set(protocol, byPort);
    }
    let k = byPort.get(port);
    if (k === undefined) {
      k = `${protocol}\u0001${port}\u0001`;
      byPort.set(port, k);
    }
    return k;
  }

  /** Adds n to the series `key` of a family; `labels` makes its labels when it is new. */
  private bump(fam: Family, key: string, labels: () => Record<string, string>, n: number): void {
    if (n <= 0) return;
    const s = fam.series.get(key) as Series | undefined;
    if (s) {
      s.value += n;
      s.touched = this.#clock;
    } else fam.series.set(key, { labels: labels(), value: n, touched: this.#clock });
  }

  private observeHistogram(fam: Family, key: string, labels: () => Record<string, string>, v: number): void {
    let h = fam.series.get(key) as Histogram | undefined;
    if (!h) {
      h = { labels: labels(), buckets: RTT_BUCKETS.map(() => 0), sum: 0, count: 0, touched: 0 };
      fam.series.set(key, h);
    }
    for (let i = 0; i < RTT_BUCKETS.length; i++) if (v <= RTT_BUCKETS[i]!) h.buckets[i]!++;
    h.sum += v;
    h.count++;
    h.touched = this.#clock;
  }

  observe(f: Flow): void {
    this.observed++;
    this.#clock = this.#now();
    const prev = this.#last.get(f.flow_id);
    const tcpFlags = f.l4.TCP?.flags;
    let flagBits = 0;
    if (tcpFlags) for (let i = 0; i < FLAG_ORDER.length; i++) if (tcpFlags[FLAG_ORDER[i]!]) flagBits |= 1 << i;
    const t = f.traffic;
    const drops = f.drops?.count ?? 0;
    const protocol = protocolOf(f);
    const verdict = f.verdict;
    this.bump(this.#processed, this.processedKey(verdict), () => ({ type: 'L3_L4', verdict }), 1);
    if (!prev) {
      const port = f.l4.TCP?.destination_port ?? f.l4.UDP?.destination_port;
      if (port !== undefined)
        this.bump(this.#ports, this.portKey(protocol, port), () => ({ protocol, port: String(port) }), 1);
      if (f.verdict === 'DROPPED' && !f[VERDICT_FROM_OTHER_INPUT])
        this.add(this.#drops, { reason: f.drop_reason_desc ?? 'UNKNOWN', protocol }, 1);
    }
    const dropDelta = drops - (prev?.drops ?? 0);
    if (dropDelta > 0 && f.drops) this.add(this.#drops, { reason: f.drops.last_reason, protocol }, dropDelta);
    const newFlags = flagBits & ~(prev?.flags ?? 0);
    if (newFlags) {
      const family = f.IP.ipVersion;
      const keys = this.flagKeys(family);
      for (let i = 0; i < FLAG_ORDER.length; i++)
        if (newFlags & (1 << i)) {
          const flag = FLAG_ORDER[i]!;
          this.bump(this.#flags, keys[i]!, () => ({ flag, family }), 1);
        }
    }
    const k = this.pairKeys(
      this.endpointLabel(f.source, f.IP.source),
      this.endpointLabel(f.destination, f.IP.destination),
    );
    const { pairLabels: pair, sentLabels: sent, receivedLabels: received } = k;
    if (prev) {
      this.bump(this.#bytes, k.sent, sent, t.bytes_sent - prev.bytes_sent);
      this.bump(this.#bytes, k.received, received, t.bytes_received - prev.bytes_received);
      this.bump(this.#packets, k.sent, sent, t.packets_sent - prev.packets_sent);
      this.bump(this.#packets, k.received, received, t.packets_received - prev.packets_received);
      this.bump(this.#retransmits, k.pair, pair, f.retransmits - prev.retransmits);
    } else {
      this.bump(this.#bytes, k.sent, sent, t.bytes_sent);
      this.bump(this.#bytes, k.received, received, t.bytes_received);
      this.bump(this.#packets, k.sent, sent, t.packets_sent);
      this.bump(this.#packets, k.received, received, t.packets_received);
      this.bump(this.#retransmits, k.pair, pair, f.retransmits);
    }
    if (f.state === 'CLOSED') {
      if (prev) this.#last.delete(f.flow_id);
      if (f.rtt && f.rtt.srtt_us > 0) this.observeHistogram(this.#rtt, k.pair, pair, f.rtt.srtt_us / 1e6);
    } else {
      const cur: Last = {
        bytes_sent: t.bytes_sent,
        bytes_received: t.bytes_received,
        packets_sent: t.packets_sent,
        packets_received: t.packets_received,
        retransmits: f.retransmits,
        drops,
        flags: flagBits,
      };
      if (prev) this.#last.delete(f.flow_id); // re-inserted: the map's order is the flows' last report
      this.#last.set(f.flow_id, cur);
      if (this.#last.size > this.#maxOpen) this.#last.delete(this.#last.keys().next().value!);
    }
  }

  /** Drops every series whose source or destination is this label value (a pod gone). */
  forget(value: string): void {
    if (value === '') return;
    for (const fam of this.#families.values())
      for (const [k, s] of fam.series)
        if (s.labels.source === value || s.labels.destination === value) fam.series.delete(k);
  }

  /** The series of a removed pod, in this context (call it from Identities.onRemove). */
  forgetPod(
    pod: { namespace: string; name: string; ip?: string; ip6?: string; workload?: string },
    stillThere: (value: string) => boolean = () => false,
  ): void {
    const values: string[] = [];
    if (this.context === 'ip') values.push(...[pod.ip, pod.ip6].filter((x): x is string => !!x));
    else if (this.context === 'pod') values.push(`${pod.namespace}/${pod.name}`);
    else if (this.context === 'workload' && pod.workload) values.push(`${pod.namespace}/${pod.workload}`);
    for (const v of values) if (!stillThere(v)) this.forget(v);
  }

  private expire(): void {
    const cutoff = this.#now() - this.#ttl;
    for (const fam of this.#families.values())
      for (const [k, s] of fam.series) if (s.touched < cutoff) fam.series.delete(k);
  }

  /** The exposition text (expired series dropped first). */
  render(): string {
    this.expire();
    const out: string[] = [];
    for (const fam of this.#families.values()) {
      out.push(`# HELP ${fam.name} ${fam.help}`, `# TYPE ${fam.name} ${fam.type}`);
      for (const s of fam.series.values()) {
        if (fam.type === 'counter') out.push(`${fam.name}${labelText(s.labels)} ${(s as Series).value}`);
        else {
          const h = s as Histogram;
          const base = fam.name;
          for (let i = 0; i < RTT_BUCKETS.length; i++)
            out.push(`${base}_bucket${labelText(h.labels, ['le', String(RTT_BUCKETS[i])])} ${h.buckets[i]}`);
          out.push(`${base}_bucket${labelText(h.labels, ['le', '+Inf'])} ${h.count}`);
          out.push(`${base}_sum${labelText(h.labels)} ${h.sum}`);
          out.push(`${base}_count${labelText(h.labels)} ${h.count}`);
        }
      }
    }
    return `${out.join('\n')}\n`;
  }
}
