// mesh-accel, the user-space half: mesh modes (ports and sidecar uids as config), pod
// declarations turned into the package's map entries, and the data path's counters.
//
// A pod is declared (pods_by_cgroup + pods_by_ip) before its first connection, so the first
// request never fails; the maps are those of a running instance (found through the agent, which
// pins them) or of a BpfObject loaded directly.
import { statSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import type { BpfMap } from 'kbpf/bpf';
import { agentMaps, type MapOpener, MapSet, objectMaps, pinnedMaps } from '../shared/instance-maps.js';

export type MeshMode = 'istio' | 'linkerd' | 'kuma' | 'osm';

export interface ModeSettings {
  outboundPort: number;
  inboundPort: number;
  sidecarUid: number;
  /** 0: this mesh has no DNS proxy */
  dnsPort: number;
  /** linkerd's proxy binds 127.0.0.1:outbound; it is rewritten to 0.0.0.0 */
  bindRewrite: boolean;
}

export const MODES: Record<MeshMode, ModeSettings> = {
  istio: { outboundPort: 15001, inboundPort: 15006, sidecarUid: 1337, dnsPort: 15053, bindRewrite: false },
  linkerd: { outboundPort: 4140, inboundPort: 4143, sidecarUid: 2102, dnsPort: 0, bindRewrite: true },
  kuma: { outboundPort: 15001, inboundPort: 15006, sidecarUid: 5678, dnsPort: 15053, bindRewrite: false },
  osm: { outboundPort: 15001, inboundPort: 15003, sidecarUid: 1500, dnsPort: 15053, bindRewrite: false },
};

export const MAX_PORTS = 8;
export const MAX_CIDRS = 4;
const F_BIND_REWRITE = 1;

export interface PodSpec {
  /** the pod's IPv4 address (absent on an IPv6-only pod: then ip6 is required) */
  ip?: string;
  /** the pod's IPv6 address (dual-stack or IPv6-only pods): its IPv6 app traffic is captured (connect6) */
  ip6?: string;
  /** the pod's cgroup v2 directory (its id is what the kernel sees) */
  cgroup: string;
  mode?: MeshMode;
  /** overrides of the mode's ports / uid */
  settings?: Partial<ModeSettings>;
  /** DNS capture on (default: on where the mode has a DNS port) */
  captureDns?: boolean;
  /** outbound ports that bypass the sidecar (istio: excludeOutboundPorts) */
  excludeOutboundPorts?: number[];
  /** only these outbound ports go to the sidecar (istio: includeOutboundPorts); empty = all */
  includeOutboundPorts?: number[];
  /** inbound ports a peer's sidecar reaches directly (istio: excludeInboundPorts) */
  excludeInboundPorts?: number[];
  /** only these inbound ports go through the pod's inbound sidecar (istio: includeInboundPorts); empty = all */
  includeInboundPorts?: number[];
  /** destinations that bypass the sidecar (istio: excludeOutboundIPRanges), e.g. 10.0.0.0/8 or fd00::/8 */
  excludeOutboundCidrs?: string[];
  /**
   * only these destinations go to the sidecar (istio: includeOutboundIPRanges); empty = all.
   * IPv4 and IPv6 ranges may be mixed; a list with ranges of one family only captures nothing
   * of the other (as istio's iptables / ip6tables rules).
   */
  includeOutboundCidrs?: string[];
}

/** Dotted quad -> the u32 whose little-endian bytes are the address in network order. */
export function ipNet(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
}

export function ipString(n: number): string {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

/** IPv6 address -> four u32 whose little-endian bytes are the address in network order (as the BPF side reads it). */
export function ip6Words(ip: string): number[] {
  if (!isIPv6(ip)) throw new Error(`not an IPv6 address: ${ip}`);
  let s = ip.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ipNet(v4[1]!);
    s =
      s.slice(0, -v4[1]!.length) +
      `${(((n & 0xff) << 8) | ((n >>> 8) & 0xff)).toString(16)}:${((((n >>> 16) & 0xff) << 8) | (n >>> 24)).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const g = groups.map((x) => parseInt(x, 16));
  const words: number[] = [];
  for (let i = 0; i < 4; i++) {
    const a = g[2 * i]!,
      b = g[2 * i + 1]!;
    // bytes a>>8, a&0xff, b>>8, b&0xff in memory order, read as a little-endian u32
    words.push(((a >>> 8) | ((a & 0xff) << 8) | ((b >>> 8) << 16) | ((b & 0xff) << 24)) >>> 0);
  }
  return words;
}

export function ip6String(words: number[]): string {
  const g: string[] = [];
  for (const w of words)
    g.push(
      (((w & 0xff) << 8) | ((w >>> 8) & 0xff)).toString(16),
      ((((w >>> 16) & 0xff) << 8) | (w >>> 24)).toString(16),
    );
  // the longest run of zero groups becomes ::
  let best = -1,
    bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

function cidr6Net(c: string): { addr: number[]; mask: number[] } {
  const [ip, lenS] = c.split('/');
  const len = lenS === undefined ? 128 : Number(lenS);
  if (!Number.isInteger(len) || len < 0 || len > 128) throw new Error(`bad CIDR: ${c}`);
  if (len === 0) throw new Error(`CIDR ${c}: /0 is not supported (use include/exclude of the whole mesh instead)`);
  const bytes = Array.from({ length: 16 }, (_, i) =>
    len >= 8 * (i + 1) ? 0xff : len <= 8 * i ? 0 : (0xff << (8 - (len - 8 * i))) & 0xff,
  );
  const mask = [0, 1, 2, 3].map(
    (w) => (bytes[4 * w]! | (bytes[4 * w + 1]! << 8) | (bytes[4 * w + 2]! << 16) | (bytes[4 * w + 3]! << 24)) >>> 0,
  );
  const addr = ip6Words(ip!).map((w, i) => (w & mask[i]!) >>> 0);
  return { addr, mask };
}

function cidrNet(c: string): { addr: number; mask: number } {
  const [ip, lenS] = c.split('/');
  const len = lenS === undefined ? 32 : Number(lenS);
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new Error(`bad CIDR: ${c}`);
  if (len === 0) throw new Error(`CIDR ${c}: /0 is not supported (use include/exclude of the whole mesh instead)`);
  const m = len === 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
  const maskNet = ipNet([m >>> 24, (m >>> 16) & 0xff, (m >>> 8) & 0xff, m & 0xff].join('.'));
  return { addr: (ipNet(ip!) & maskNet) >>> 0, mask: maskNet };
}

function list<T>(xs: T[] | undefined, max: number, what: string): T[] {
  const l = xs ?? [];
  if (l.length > max) throw new Error(`at most ${max} ${what} per pod (got ${l.length})`);
  return l;
}

function ports(xs: number[] | undefined, what: string): number[] {
  const l = list(xs, MAX_PORTS, what);
  for (const p of l) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${what}: bad port ${p}`);
  return l;
}

function cidrs(
  xs: string[] | undefined,
  what: string,
): { v4: { addr: number; mask: number }[]; v6: { addr: number[]; mask: number[] }[] } {
  const all = xs ?? [];
  const v6 = all.filter((c) => c.includes(':'));
  const v4 = all.filter((c) => !c.includes(':'));
  return {
    v4: list(v4, MAX_CIDRS, `IPv4 ${what}`).map(cidrNet),
    v6: list(v6, MAX_CIDRS, `IPv6 ${what}`).map(cidr6Net),
  };
}

/** A pod's settings as the BPF struct pod_settings (BTF-typed map value). */
export function podSettings(pod: PodSpec): Record<string, unknown> {
  const mode = { ...MODES[pod.mode ?? 'istio'], ...pod.settings };
  const dns = pod.captureDns ?? mode.dnsPort > 0;
  if (pod.ip6 !== undefined && isIPv4(pod.ip6)) throw new Error(`not an IPv6 address: ${pod.ip6}`);
  if (!pod.ip && !pod.ip6)
    throw new Error(`pod ${pod.cgroup}: needs an IPv4 address (ip), an IPv6 address (ip6) or both`);
  const ex = cidrs(pod.excludeOutboundCidrs, 'excludeOutboundCidrs');
  const inc = cidrs(pod.includeOutboundCidrs, 'includeOutboundCidrs');
  return {
    ip: pod.ip ? ipNet(pod.ip) : 0, // 0: IPv6-only, no IPv4 capture
    sidecar_uid: mode.sidecarUid,
    outbound_port: mode.outboundPort,
    inbound_port: mode.inboundPort,
    dns_port: dns ? mode.dnsPort : 0,
    flags: mode.bindRewrite ? F_BIND_REWRITE : 0,
    exclude_out_ports: ports(pod.excludeOutboundPorts, 'excludeOutboundPorts'),
    include_out_ports: ports(pod.includeOutboundPorts, 'includeOutboundPorts'),
    exclude_in_ports: ports(pod.excludeInboundPorts, 'excludeInboundPorts'),
    include_in_ports: ports(pod.includeInboundPorts, 'includeInboundPorts'),
    exclude_out_cidrs: ex.v4,
    include_out_cidrs: inc.v4,
    ip6: pod.ip6 ? ip6Words(pod.ip6) : [0, 0, 0, 0],
    exclude_out_cidrs6: ex.v6,
    include_out_cidrs6: inc.v6,
  };
}

/** The cgroup id the kernel reports for a cgroup v2 directory (its inode number). */
export function cgroupId(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

export const STATS = [
  'connect_out',
  'connect_peer',
  'connect_excluded',
  'sock_added',
  'msg_redirect',
  'msg_redirect_peer',
  'msg_pass',
  'msg_bytes',
  'origdst',
  'dns_redirect',
  'dns_restore',
  'bind_rewrite',
  'peername',
  'origdst_miss',
] as const;
export type MeshStats = Record<(typeof STATS)[number], bigint>;

export interface MeshMapSource {
  map(name: string): BpfMap;
}

const MESH_MAPS = ['pods_by_cgroup', 'pods_by_ip', 'pods_by_ip6', 'mesh_stats', 'orig_by_tuple', 'mesh_socks'] as const;

/** The maps of one running mesh-accel instance (or a loaded object). */
export class MeshMaps {
  readonly #set: MapSet<(typeof MESH_MAPS)[number]>;

  private constructor(open: MapOpener, owned: boolean) {
    this.#set = new MapSet(MESH_MAPS, open, owned);
  }

  /** From a loaded object (the object keeps owning its maps). */
  static ofObject(obj: MeshMapSource): MeshMaps {
    return new MeshMaps(objectMaps(obj), false);
  }

  /** From a running instance of the agent in this process. */
  static ofAgent(agent: { instanceMap(instance: string, map: string): BpfMap }, instance: string): MeshMaps {
    return new MeshMaps(agentMaps(agent, instance), true);
  }

  /** From the pins of an instance of the agent that owns `bpffsDir` (which may be another process). */
  static ofInstance(bpffsDir: string, instance: string): MeshMaps {
    return new MeshMaps(pinnedMaps(bpffsDir, instance, 'mesh-accel'), true);
  }

  private m(name: (typeof MESH_MAPS)[number]): BpfMap {
    return this.#set.get(name);
  }

  /** Puts a pod into the mesh (before its first connection); answers the cgroup id it is keyed by. */
  declarePod(pod: PodSpec): bigint {
    const value = podSettings(pod);
    const id = cgroupId(pod.cgroup);
    if (pod.ip) this.m('pods_by_ip').update(ipNet(pod.ip), value);
    if (pod.ip6) this.m('pods_by_ip6').update({ a: ip6Words(pod.ip6) }, value);
    this.m('pods_by_cgroup').update(id, value);
    return id;
  }

  /** Takes a pod out of the mesh (its new connections go straight out again). */
  removePod(pod: Pick<PodSpec, 'ip' | 'ip6' | 'cgroup'>): void {
    this.removePodIds(pod.ip, cgroupId(pod.cgroup), pod.ip6);
  }

  /** The same by cgroup id, for a pod whose cgroup directory may already be gone. */
  removePodIds(ip: string | undefined, cgroup: bigint, ip6?: string): void {
    this.m('pods_by_cgroup').delete(cgroup);
    if (ip) this.m('pods_by_ip').delete(ipNet(ip));
    if (ip6) this.m('pods_by_ip6').delete({ a: ip6Words(ip6) });
  }

  /** Whether a cgroup id is declared. */
  hasCgroup(cgroup: bigint): boolean {
    return this.m('pods_by_cgroup').lookup(cgroup) !== undefined;
  }

  pods(): { ip: string; settings: Record<string, unknown> }[] {
    return this.m('pods_by_ip')
      .lookupBatch()
      .map(([k, v]) => ({ ip: ipString(Number(k)), settings: v as Record<string, unknown> }));
  }

  /** The IPv6 addresses declared (pods_by_ip6). */
  pods6(): { ip6: string; settings: Record<string, unknown> }[] {
    return this.m('pods_by_ip6')
      .lookupBatch()
      .map(([k, v]) => ({ ip6: ip6String((k as { a: number[] }).a), settings: v as Record<string, unknown> }));
  }

  /** Counters summed over CPUs (one per-CPU value holding every counter). */
  stats(): MeshStats {
    const per = (this.m('mesh_stats').lookup(0) ?? []) as { c: (bigint | number)[] }[];
    const out = {} as MeshStats;
    STATS.forEach((name, i) => {
      out[name] = per.reduce<bigint>((a, v) => a + BigInt(v.c[i] ?? 0), 0n);
    });
    return out;
  }

  close(): void {
    this.#set.close();
  }
}
