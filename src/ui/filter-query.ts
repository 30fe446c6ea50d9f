// The flow filter in a URL: the query parameters are the flags of `kbpf flows` without their
// dashes in front (`?pod=default/web&verdict=DROPPED&tcp-flags=SYN&not=1`). A parameter may repeat,
// or list its values with commas; both mean "any of these" (FlowFilter's lists). The web view's
// page builds its requests with filterToQuery and the server reads them with filterFromQuery, so
// the two cannot disagree. No Node.js imports: the page's bundle includes this module.
import type { FlowFilter, TcpFlag, Verdict } from '../../apps/flow-monitor/flow.js';
import { InvalidError } from '../errors.js';

export const VERDICTS: readonly Verdict[] = ['FORWARDED', 'DROPPED', 'REDIRECTED'];
export const PROTOCOLS: readonly ('tcp' | 'udp' | 'icmp')[] = ['tcp', 'udp', 'icmp'];
export const TCP_FLAGS: readonly TcpFlag[] = ['SYN', 'ACK', 'FIN', 'RST', 'PSH', 'URG', 'ECE', 'CWR'];

type ListKey = Exclude<keyof FlowFilter, 'not'>;

/** Each list field of the filter and its parameter (the CLI flag's name). */
export const FILTER_PARAMS: readonly { key: ListKey; param: string }[] = [
  { key: 'pod', param: 'pod' },
  { key: 'namespace', param: 'namespace' },
  { key: 'from_ip', param: 'from-ip' },
  { key: 'to_ip', param: 'to-ip' },
  { key: 'from_pod', param: 'from-pod' },
  { key: 'to_pod', param: 'to-pod' },
  { key: 'port', param: 'port' },
  { key: 'service', param: 'service' },
  { key: 'verdict', param: 'verdict' },
  { key: 'protocol', param: 'protocol' },
  { key: 'tcp_flags', param: 'tcp-flags' },
];

function values(q: URLSearchParams, param: string): string[] {
  return q
    .getAll(param)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function oneOf<T extends string>(param: string, allowed: readonly T[], v: string, normalise: (s: string) => string): T {
  const n = normalise(v) as T;
  if (!allowed.includes(n)) throw new InvalidError(`${param}: "${v}" is not one of ${allowed.join(', ')}`);
  return n;
}

function port(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new InvalidError(`port: "${v}" is not a port (0-65535)`);
  return Number(v);
}

/** The filter a query asks for; InvalidError naming the parameter when a value is not one it takes. */
export function filterFromQuery(q: URLSearchParams): FlowFilter {
  const f: FlowFilter = {};
  for (const { key, param } of FILTER_PARAMS) {
    const vs = values(q, param);
    if (vs.length === 0) continue;
    switch (key) {
      case 'port':
        f.port = vs.map(port);
        break;
      case 'verdict':
        f.verdict = vs.map((v) => oneOf(param, VERDICTS, v, (s) => s.toUpperCase()));
        break;
      case 'protocol':
        f.protocol = vs.map((v) => oneOf(param, PROTOCOLS, v, (s) => s.toLowerCase()));
        break;
      case 'tcp_flags':
        f.tcp_flags = vs.map((v) => oneOf(param, TCP_FLAGS, v, (s) => s.toUpperCase()));
        break;
      default:
        f[key] = vs;
    }
  }
  const not = q.get('not');
  if (not !== null) {
    if (!['', '1', 'true', '0', 'false'].includes(not))
      throw new InvalidError(`not: "${not}" is not 1/true or 0/false`);
    if (not === '' || not === '1' || not === 'true') f.not = true;
  }
  return f;
}

/** The query parameters of a filter (lists comma-joined), for the page's requests and its address bar. */
export function filterToQuery(f: FlowFilter): URLSearchParams {
  const q = new URLSearchParams();
  for (const { key, param } of FILTER_PARAMS) {
    const vs = f[key];
    if (vs && vs.length > 0) q.set(param, vs.join(','));
  }
  if (f.not) q.set('not', '1');
  return q;
}
