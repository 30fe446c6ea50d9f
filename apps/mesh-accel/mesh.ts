// mesh-accel, the user-space half: mesh modes (ports and sidecar uids as config), pod
// declarations turned into the package's map entries, and the data path's counters.
//
// A pod is declared (pods_by_cgroup + pods_by_ip) before its first connection, so the first
// request never fails; the maps are those of a running instance (pinned by the agent under
// <bpffs>/<instance>/rev-N/maps/) or of a BpfObject loaded directly.
import { statSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../src/bpf/map.js';

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
  /** the pod's IPv4 address */
  ip: string;
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
  /** destinations that bypass the sidecar (istio: excludeOutboundIPRanges), e.g. 10.0.0.0/8 */
  excludeOutboundCidrs?: string[];
  /** only these destinations go to the sidecar (istio: includeOutboundIPRanges); empty = all */
  includeOutboundCidrs?: string[];
}

/** Dotted quad -> the u32 whose little-endian bytes are the address in network order. */
export function ipNet(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
}

export function ipString(n: number): string {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

function cidrNet(c: string): { addr: number; mask: number } {
  const [ip, lenS] = c.split('/');
  const len = lenS === undefined ? 32 : Number(lenS);
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new Error(`bad CIDR: ${c}`);
  if (len === 0) throw new Error(`CIDR ${c}: /0 is not supported (use include/exclude of the whole mesh instead)`);
  const m = len === 32 ? 0xffffffff : ((0xffffffff << (32 - len)) >>> 0);
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

/** A pod's settings as the BPF struct pod_settings (BTF-typed map value). */
export function podSettings(pod: PodSpec): Record<string, unknown> {
  const mode = { ...MODES[pod.mode ?? 'istio'], ...pod.settings };
  const dns = pod.captureDns ?? mode.dnsPort > 0;
  return {
    ip: ipNet(pod.ip),
    sidecar_uid: mode.sidecarUid,
    outbound_port: mode.outboundPort,
    inbound_port: mode.inboundPort,
    dns_port: dns ? mode.dnsPort : 0,
    flags: mode.bindRewrite ? F_BIND_REWRITE : 0,
    exclude_out_ports: ports(pod.excludeOutboundPorts, 'excludeOutboundPorts'),
    include_out_ports: ports(pod.includeOutboundPorts, 'includeOutboundPorts'),
    exclude_in_ports: ports(pod.excludeInboundPorts, 'excludeInboundPorts'),
    include_in_ports: ports(pod.includeInboundPorts, 'includeInboundPorts'),
    exclude_out_cidrs: list(pod.excludeOutboundCidrs, MAX_CIDRS, 'excludeOutboundCidrs').map(cidrNet),
    include_out_cidrs: list(pod.includeOutboundCidrs, MAX_CIDRS, 'includeOutboundCidrs').map(cidrNet),
  };
}

/** The cgroup id the kernel reports for a cgroup v2 directory (its inode number). */
export function cgroupId(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

export const STATS = [
  'connect_out', 'connect_peer', 'connect_excluded', 'sock_added', 'msg_redirect', 'msg_redirect_peer',
  'msg_pass', 'msg_bytes', 'origdst', 'dns_redirect', 'dns_restore', 'bind_rewrite', 'peername', 'origdst_miss',
] as const;
export type MeshStats = Record<(typeof STATS)[number], bigint>;

export interface MeshMapSource {
  map(name: string): BpfMap;
}

/** The maps of one running mesh-accel instance (or a loaded object). */
export class MeshMaps {
  readonly #owned: BpfMap[] = [];
  readonly #maps = new Map<string, BpfMap>();

  private constructor(get: (name: string) => BpfMap, owned: boolean) {
    for (const n of ['pods_by_cgroup', 'pods_by_ip', 'mesh_stats', 'orig_by_tuple', 'mesh_socks']) {
      const m = get(n);
      this.#maps.set(n, m);
      if (owned) this.#owned.push(m);
    }
  }

  /** From a loaded BpfObject (the object keeps owning its maps). */
  static ofObject(obj: MeshMapSource): MeshMaps {
    return new MeshMaps((n) => obj.map(n), false);
  }

  /** From the pins of an agent instance: <bpffsDir>/<instance>/rev-<current>/maps/. */
  static ofInstance(bpffsDir: string, instance: string): MeshMaps {
    const dir = join(bpffsDir, instance);
    const revs = existsSync(dir) ? readdirSync(dir).filter((d) => /^rev-\d+$/.test(d)).map((d) => Number(d.slice(4))).sort((a, b) => b - a) : [];
    const rev = revs.find((r) => existsSync(join(dir, `rev-${r}`, 'maps', 'pods_by_ip')));
    if (rev === undefined) throw new Error(`no pinned mesh-accel maps under ${dir} (is the instance running?)`);
    return MeshMaps.ofPinDir(join(dir, `rev-${rev}`, 'maps'));
  }

  static ofPinDir(mapsDir: string): MeshMaps {
    return new MeshMaps((n) => BpfMap.fromPin(join(mapsDir, n)), true);
  }

  private m(name: string): BpfMap {
    return this.#maps.get(name)!;
  }

  /** Puts a pod into the mesh (before its first connection); answers the cgroup id it is keyed by. */
  declarePod(pod: PodSpec): bigint {
    const value = podSettings(pod);
    const id = cgroupId(pod.cgroup);
    this.m('pods_by_ip').update(ipNet(pod.ip), value);
    this.m('pods_by_cgroup').update(id, value);
    return id;
  }

  /** Takes a pod out of the mesh (its new connections go straight out again). */
  removePod(pod: Pick<PodSpec, 'ip' | 'cgroup'>): void {
    this.removePodIds(pod.ip, cgroupId(pod.cgroup));
  }

  /** The same by cgroup id, for a pod whose cgroup directory may already be gone. */
  removePodIds(ip: string, cgroup: bigint): void {
    this.m('pods_by_cgroup').delete(cgroup);
    this.m('pods_by_ip').delete(ipNet(ip));
  }

  /** Whether a cgroup id is declared. */
  hasCgroup(cgroup: bigint): boolean {
    return this.m('pods_by_cgroup').lookup(cgroup) !== undefined;
  }

  pods(): { ip: string; settings: Record<string, unknown> }[] {
    return this.m('pods_by_ip').lookupBatch().map(([k, v]) => ({ ip: ipString(Number(k)), settings: v as Record<string, unknown> }));
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
    for (const m of this.#owned) m.close();
    this.#owned.length = 0;
  }
}
