// Flow records as `kbpf flows` prints them: a table, Hubble's compact line, or JSON lines in
// Hubble's GetFlowsResponse shape ({"flow": …, "node_name": …, "time": …}), one per flow.
import { endpointName } from '../../../apps/flow-monitor/collector.js';
import type { Flow, TcpFlag } from '../../../apps/flow-monitor/flow.js';
import { escapeControl } from './escape.js';
import { table } from './output.js';

export const FLOW_FORMATS = ['table', 'compact', 'json', 'none'] as const;
export type FlowFormat = (typeof FLOW_FORMATS)[number];

const FLAG_ORDER: TcpFlag[] = ['SYN', 'ACK', 'PSH', 'FIN', 'RST', 'URG', 'ECE', 'CWR'];

function port(f: Flow, end: 'source' | 'destination'): string {
  const l = f.l4.TCP ?? f.l4.UDP;
  return l ? `:${end === 'source' ? l.source_port : l.destination_port}` : '';
}

function ip(a: string): string {
  return a.includes(':') ? `[${a}]` : a;
}

export function flowEnd(f: Flow, end: 'source' | 'destination'): string {
  const e = f[end];
  const name = endpointName(e);
  const addr = f.IP[end];
  return name ? `${name}${port(f, end)}` : `${ip(addr)}${port(f, end)}`;
}

export function flowProtocol(f: Flow): string {
  if (f.l4.TCP) return 'TCP';
  if (f.l4.UDP) return 'UDP';
  if (f.l4.ICMPv4) return `ICMPv4 ${f.l4.ICMPv4.type}/${f.l4.ICMPv4.code}`;
  if (f.l4.ICMPv6) return `ICMPv6 ${f.l4.ICMPv6.type}/${f.l4.ICMPv6.code}`;
  return '?';
}

export function flowFlags(f: Flow): string {
  const fl = f.l4.TCP?.flags;
  return fl ? FLAG_ORDER.filter((x) => fl[x]).join(',') : '';
}

function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)}MiB`;
  return `${(n / 1024 ** 3).toFixed(1)}GiB`;
}

function rtt(f: Flow): string {
  if (!f.rtt) return '-';
  const us = f.rtt.srtt_us;
  return us < 1000 ? `${us}µs` : `${(us / 1000).toFixed(2)}ms`;
}

function verdictText(f: Flow): string {
  if (f.verdict === 'REDIRECTED' && f.proxy_port !== undefined) return `REDIRECTED (proxy :${f.proxy_port})`;
  if (f.verdict !== 'DROPPED') return f.verdict;
  const why = [f.drop_reason_desc, f.policy_name].filter(Boolean).join(' ');
  return why ? `DROPPED (${why})` : 'DROPPED';
}

function time(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

const HEADER = [
  'TIME',
  'SOURCE',
  'DESTINATION',
  'PROTO',
  'FLAGS',
  'VERDICT',
  'STATE',
  'SENT',
  'RECEIVED',
  'RTT',
  'RETRANS',
  'SERVICE',
];

function row(f: Flow): string[] {
  const svc = f.service
    ? `${f.service.name ?? ''}${f.service.name ? ' ' : ''}${ip(f.service.vip)}:${f.service.vip_port}`
    : '';
  return [
    time(f.time),
    flowEnd(f, 'source'),
    flowEnd(f, 'destination'),
    flowProtocol(f),
    flowFlags(f),
    verdictText(f),
    f.tcp_state && f.state === 'OPEN' ? f.tcp_state : f.state,
    `${bytes(f.traffic.bytes_sent)}/${f.traffic.packets_sent}`,
    `${bytes(f.traffic.bytes_received)}/${f.traffic.packets_received}`,
    rtt(f),
    String(f.retransmits),
    svc,
  ];
}

/** A table of flows (widths fitted to these rows). */
export function flowTable(flows: readonly Flow[]): string {
  return table(HEADER, flows.map(row));
}

/** Hubble's compact line: `Dec  1 10:04:05.123: src:port (workload) -> dst:port ... VERDICT (TCP Flags: SYN)`. */
export function compactLine(f: Flow): string {
  const flags = flowFlags(f);
  const what = f.l4.TCP ? `TCP Flags: ${flags}` : flowProtocol(f);
  const svc = f.service ? ` via ${ip(f.service.vip)}:${f.service.vip_port}` : '';
  return escapeControl(
    `${time(f.time)} [${f.node_name}]: ${flowEnd(f, 'source')} ${f.traffic_direction === 'EGRESS' ? '->' : '<-'} ${flowEnd(f, 'destination')}${svc} ${verdictText(f)} ${f.state} (${what}) ${bytes(f.traffic.bytes_sent)}/${bytes(f.traffic.bytes_received)} rtt ${rtt(f)}`,
  );
}

export function jsonLine(f: Flow): string {
  return JSON.stringify({ flow: f, node_name: f.node_name, time: f.time });
}

/** Flows printed once (not followed). */
export function renderFlows(format: FlowFormat, flows: readonly Flow[]): string {
  if (format === 'none' || flows.length === 0) return format === 'table' ? flowTable([]) : '';
  if (format === 'table') return flowTable(flows);
  if (format === 'compact') return `${flows.map(compactLine).join('\n')}\n`;
  return `${flows.map(jsonLine).join('\n')}\n`;
}

/** A followed stream: table rows with widths fixed by the header, or lines. */
export class FlowPrinter {
  #headerDone = false;
  constructor(
    readonly format: FlowFormat,
    readonly out: (s: string) => void,
  ) {}

  print(flows: readonly Flow[]): void {
    if (flows.length === 0 || this.format === 'none') return;
    if (this.format !== 'table') {
      this.out(renderFlows(this.format, flows));
      return;
    }
    const widths = [12, 34, 34, 6, 16, 10, 11, 14, 14, 9, 7, 0];
    const line = (cells: string[]): string =>
      cells
        .map((c, i) => (i === cells.length - 1 ? escapeControl(c) : escapeControl(c).padEnd(widths[i]!)))
        .join(' ')
        .trimEnd();
    let text = '';
    if (!this.#headerDone) {
      text += `${line(HEADER)}\n`;
      this.#headerDone = true;
    }
    for (const f of flows) text += `${line(row(f))}\n`;
    this.out(text);
  }
}
