// How the page writes a flow's numbers and endpoints. Plain functions, no DOM.
import type { Endpoint, Flow, TcpFlag } from '../../../apps/flow-monitor/flow.js';

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export function formatRtt(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

export function formatRate(perS: number): string {
  if (perS === 0) return '0';
  if (perS >= 100) return String(Math.round(perS));
  return perS >= 10 ? perS.toFixed(1) : perS.toFixed(2);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
}

/** HH:MM:SS.mmm in local time. */
export function formatTime(rfc3339: string): string {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** `namespace/pod`, or the address when the endpoint has no pod identity. */
export function endpointName(ep: Endpoint, ip: string): string {
  if (ep.pod_name) return ep.namespace ? `${ep.namespace}/${ep.pod_name}` : ep.pod_name;
  return ip;
}

export { protocolOf as protocolName } from '../service-map.js';

export function ports(f: Flow): { source?: number; destination?: number } {
  const l4 = f.l4.TCP ?? f.l4.UDP;
  return l4 ? { source: l4.source_port, destination: l4.destination_port } : {};
}

export function tcpFlags(f: Flow): TcpFlag[] {
  const flags = f.l4.TCP?.flags ?? {};
  return (Object.keys(flags) as TcpFlag[]).filter((k) => flags[k]);
}

/** The service a flow went to: the socket-LB translation's name or address, else destination_service. */
export function serviceName(f: Flow): string | undefined {
  if (f.service) return f.service.name ?? `${f.service.vip}:${f.service.vip_port}`;
  const ds = f.destination_service;
  return ds ? (ds.namespace ? `${ds.namespace}/${ds.name}` : ds.name) : undefined;
}

/** Why it was dropped: the kernel's or the policy's reason, and the policy. */
export function dropReason(f: Flow): string | undefined {
  if (f.verdict !== 'DROPPED') return undefined;
  const parts = [f.drop_reason_desc, f.policy_name && `policy ${f.policy_name}`].filter(Boolean);
  return parts.length ? parts.join(' · ') : undefined;
}
