// matchFlow: `hubble observe` filter semantics over Flow records. Every field given must match
// (AND), the values of one field are alternatives (OR), `not` negates the whole filter.
//
//   pod / from_pod / to_pod   `[namespace/]name-prefix`; no namespace means `default` (as Hubble)
//   namespace                 either end's namespace
//   from_ip / to_ip           an address or a CIDR
//   port                      either end's port
//   service                   `[namespace/]name` of the destination service, or the VIP (`ip` or `ip:port`)
//   protocol                  tcp, udp, icmp (v4 and v6)
//   tcp_flags                 the flow has any of these flags
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { InvalidError } from '../../src/errors.js';
import type { Endpoint, Flow, FlowFilter } from './flow.js';

function podMatches(pattern: string, e: Endpoint): boolean {
  if (!e.pod_name) return false;
  const slash = pattern.indexOf('/');
  const ns = slash >= 0 ? pattern.slice(0, slash) : 'default';
  const name = slash >= 0 ? pattern.slice(slash + 1) : pattern;
  return (e.namespace ?? 'default') === ns && e.pod_name.startsWith(name);
}

const cidrCache = new Map<string, (ip: string) => boolean>();

/** An address or CIDR as a predicate over addresses (throws InvalidError for anything else). */
export function ipMatcher(spec: string): (ip: string) => boolean {
  const hit = cidrCache.get(spec);
  if (hit) return hit;
  let m: (ip: string) => boolean;
  const slash = spec.indexOf('/');
  if (slash < 0) {
    if (!isIPv4(spec) && !isIPv6(spec)) throw new InvalidError(`"${spec}" is not an IP address or CIDR`);
    m = (ip) => ip === spec;
  } else {
    const addr = spec.slice(0, slash);
    const bits = Number(spec.slice(slash + 1));
    const v = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : null;
    if (!v || !Number.isInteger(bits) || bits < 0 || bits > (v === 'ipv4' ? 32 : 128))
      throw new InvalidError(`"${spec}" is not an IP address or CIDR`);
    const bl = new BlockList();
    bl.addSubnet(addr, bits, v);
    m = (ip) => (isIPv4(ip) ? v === 'ipv4' && bl.check(ip, 'ipv4') : v === 'ipv6' && bl.check(ip, 'ipv6'));
  }
  cidrCache.set(spec, m);
  return m;
}

function ports(f: Flow): number[] {
  const l = f.l4.TCP ?? f.l4.UDP;
  return l ? [l.source_port, l.destination_port] : [];
}

function protocolOf(f: Flow): 'tcp' | 'udp' | 'icmp' | undefined {
  if (f.l4.TCP) return 'tcp';
  if (f.l4.UDP) return 'udp';
  if (f.l4.ICMPv4 || f.l4.ICMPv6) return 'icmp';
  return undefined;
}

function serviceMatches(spec: string, f: Flow): boolean {
  const names: string[] = [];
  if (f.destination_service)
    names.push(`${f.destination_service.namespace ?? 'default'}/${f.destination_service.name}`);
  if (f.service?.name) names.push(f.service.name.includes('/') ? f.service.name : `default/${f.service.name}`);
  const want = spec.includes('/') ? spec : `default/${spec}`;
  if (names.includes(want)) return true;
  if (!f.service) return false;
  return spec === f.service.vip || spec === `${f.service.vip}:${f.service.vip_port}`;
}

function some<T>(list: T[] | undefined, pred: (x: T) => boolean): boolean {
  return list === undefined || list.length === 0 || list.some(pred);
}

function matchAll(q: FlowFilter, f: Flow): boolean {
  return (
    some(q.pod, (p) => podMatches(p, f.source) || podMatches(p, f.destination)) &&
    some(q.from_pod, (p) => podMatches(p, f.source)) &&
    some(q.to_pod, (p) => podMatches(p, f.destination)) &&
    some(q.namespace, (n) => f.source.namespace === n || f.destination.namespace === n) &&
    some(q.from_ip, (s) => ipMatcher(s)(f.IP.source)) &&
    some(q.to_ip, (s) => ipMatcher(s)(f.IP.destination)) &&
    some(q.port, (p) => ports(f).includes(p)) &&
    some(q.service, (s) => serviceMatches(s, f)) &&
    some(q.verdict, (v) => f.verdict === v) &&
    some(q.protocol, (p) => protocolOf(f) === p) &&
    some(q.tcp_flags, (fl) => f.l4.TCP?.flags?.[fl] === true)
  );
}

export function matchFlow(filter: FlowFilter, flow: Flow): boolean {
  const m = matchAll(filter, flow);
  return filter.not ? !m : m;
}

/** Checks a filter's values (addresses and CIDRs) once, before any flow is matched. */
export function checkFilter(filter: FlowFilter): FlowFilter {
  for (const s of [...(filter.from_ip ?? []), ...(filter.to_ip ?? [])]) ipMatcher(s);
  return filter;
}
