// The filters of `kbpf flows` and the web view, with `hubble observe`'s semantics: every field
// given must match (AND), the values of one field are alternatives (OR), `not` negates the whole.
//   pod, from_pod, to_pod   `namespace/name-prefix`, or `name-prefix` in any namespace
//   namespace               either side's namespace
//   from_ip, to_ip          an address or a CIDR
//   port                    either side's port
//   service                 `namespace/name` or `name` of the destination service (or its socket-LB translation)
//   tcp_flags               any of the flags seen
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Endpoint, Flow, FlowFilter } from './flow.js';

function podMatches(ep: Endpoint, want: string): boolean {
  if (!ep.pod_name) return false;
  const slash = want.indexOf('/');
  if (slash < 0) return ep.pod_name.startsWith(want);
  return (ep.namespace ?? '') === want.slice(0, slash) && ep.pod_name.startsWith(want.slice(slash + 1));
}

function ipMatches(ip: string, want: string): boolean {
  const slash = want.indexOf('/');
  if (slash < 0) return ip === want;
  const net = want.slice(0, slash);
  const bits = Number(want.slice(slash + 1));
  const type = isIPv4(net) ? 'ipv4' : isIPv6(net) ? 'ipv6' : undefined;
  if (!type || !Number.isInteger(bits)) return false;
  const ipType = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
  if (ipType !== type) return false;
  const bl = new BlockList();
  bl.addSubnet(net, bits, type);
  return bl.check(ip, type);
}

function ports(flow: Flow): number[] {
  const l4 = flow.l4.TCP ?? flow.l4.UDP;
  return l4 ? [l4.source_port, l4.destination_port] : [];
}

function protocolOf(flow: Flow): 'tcp' | 'udp' | 'icmp' | undefined {
  if (flow.l4.TCP) return 'tcp';
  if (flow.l4.UDP) return 'udp';
  if (flow.l4.ICMPv4 || flow.l4.ICMPv6) return 'icmp';
  return undefined;
}

function serviceNames(flow: Flow): string[] {
  const out: string[] = [];
  const ds = flow.destination_service;
  if (ds) out.push(ds.namespace ? `${ds.namespace}/${ds.name}` : ds.name);
  if (flow.service?.name) out.push(flow.service.name);
  return out;
}

function serviceMatches(names: string[], want: string): boolean {
  return names.some((n) => n === want || (!want.includes('/') && n.slice(n.indexOf('/') + 1) === want));
}

/** `list` absent or empty: no constraint; otherwise some value must satisfy `test`. */
function any<T>(list: readonly T[] | undefined, test: (v: T) => boolean): boolean {
  return !list || list.length === 0 || list.some(test);
}

export function matchFlow(filter: FlowFilter, flow: Flow): boolean {
  const f = filter;
  const matches =
    any(f.pod, (p) => podMatches(flow.source, p) || podMatches(flow.destination, p)) &&
    any(f.namespace, (n) => flow.source.namespace === n || flow.destination.namespace === n) &&
    any(f.from_ip, (ip) => ipMatches(flow.IP.source, ip)) &&
    any(f.to_ip, (ip) => ipMatches(flow.IP.destination, ip)) &&
    any(f.from_pod, (p) => podMatches(flow.source, p)) &&
    any(f.to_pod, (p) => podMatches(flow.destination, p)) &&
    any(f.port, (p) => ports(flow).includes(p)) &&
    any(f.service, (s) => serviceMatches(serviceNames(flow), s)) &&
    any(f.verdict, (v) => flow.verdict === v) &&
    any(f.protocol, (p) => protocolOf(flow) === p) &&
    any(f.tcp_flags, (fl) => flow.l4.TCP?.flags?.[fl] === true);
  return f.not ? !matches : matches;
}
