// service-lb, the model: services (VIP, ports, protocol, backends with node / zone / weight /
// priority, policy, locality, affinity) read from YAML, and their translation into the package's
// maps.
//
// One map entry per (VIP, port, protocol). Its backends are a range of slots in `backends`,
// sorted by locality level. A changed backend set is written into a fresh range first and the
// service entry is then replaced in one map update (the kernel swaps the hash element), so no
// connection ever sees a half-written set; the old range is reused only by a later apply.
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parse } from 'yaml';
import { InvalidError } from '../../src/errors.js';
import { ip6String, ip6Words, ipNet } from '../mesh-accel/mesh.js';
import { type PodIdentity, parsePodIdentities } from '../shared/pods.js';

export type Policy = 'random' | 'round-robin' | 'weighted' | 'least-conn';
export type Locality = 'any' | 'strict' | 'failover';
export type Protocol = 'TCP' | 'UDP';

export const POLICIES: Policy[] = ['random', 'round-robin', 'weighted', 'least-conn'];
const LOCALITIES: Locality[] = ['any', 'strict', 'failover'];
/** failover priority levels (Kmesh has seven) */
export const LEVELS = 7;
export const MAX_BACKENDS = 256;
/** locality levels when no priority is given: 0 this node, 1 this zone, 2 this region, 3 elsewhere */
export const STRICT_SCOPES = { node: 0, zone: 1, region: 2 } as const;

/** Where this node is: a backend's locality level is counted from here. */
export interface NodeLocality {
  name?: string;
  zone?: string;
  region?: string;
}

export interface BackendSpec {
  ip: string;
  /** the backend's port; default: the service port's targetPort */
  port?: number;
  node?: string;
  zone?: string;
  region?: string;
  /** weighted policy (default 1; 0 = never chosen by it) */
  weight?: number;
  /** failover level 0..6 (lower first); default: from its locality */
  priority?: number;
}

export interface ServicePort {
  port: number;
  /** the backends' port (default: port) */
  targetPort?: number;
  protocol?: Protocol;
}

export interface ServiceSpec {
  name: string;
  namespace?: string;
  /** the service addresses (IPv4 and / or IPv6) */
  vips: string[];
  ports: ServicePort[];
  backends: BackendSpec[];
  policy?: Policy;
  locality?: Locality;
  /** strict: how near a backend must be (default zone) */
  strictScope?: keyof typeof STRICT_SCOPES;
  /** session affinity by client, this many seconds after its last connection (0: none) */
  affinityTimeoutS?: number;
  /**
   * TCP connections to the VIPs of its family go to this waypoint instead of a backend (the other
   * family's VIPs are balanced as usual); the first message carries the original destination as
   * Kmesh's TLV. The waypoint's own connections to the service (made in the network namespace
   * where it listens) are balanced.
   */
  waypoint?: { ip: string; port: number };
}

/** `10.1.0.9:15019`, `[fd00::9]:15019` or `{ address, port }` */
export function parseWaypoint(v: unknown, at: string): { ip: string; port: number } {
  if (typeof v === 'string') {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v.trim());
    if (!m) throw new InvalidError(`${at}: expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT), got ${v}`);
    return { ip: ip(m[1] ?? m[2], at), port: num(Number(m[3]), `${at} port`, 1, 65535) };
  }
  const o = (v ?? {}) as Record<string, unknown>;
  return { ip: ip(o.address ?? o.ip, `${at}.address`), port: num(o.port, `${at}.port`, 1, 65535) };
}

// ---- YAML ---------------------------------------------------------------------------------------

function num(v: unknown, at: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new InvalidError(`${at}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function str(v: unknown, at: string): string {
  if (typeof v !== 'string' || v === '') throw new InvalidError(`${at}: expected a string`);
  return v;
}

function ip(v: unknown, at: string): string {
  const s = str(v, at);
  if (!isIPv4(s) && !isIPv6(s)) throw new InvalidError(`${at}: not an IP address: ${s}`);
  return s;
}

function opt<T>(o: Record<string, unknown>, k: string, f: (v: unknown, at: string) => T, at: string): T | undefined {
  return o[k] === undefined || o[k] === null ? undefined : f(o[k], `${at}.${k}`);
}

function oneOf<T extends string>(list: readonly T[]): (v: unknown, at: string) => T {
  return (v, at) => {
    if (!list.includes(v as T)) throw new InvalidError(`${at}: expected one of ${list.join(', ')}, got ${String(v)}`);
    return v as T;
  };
}

function backendOf(o: Record<string, unknown>, at: string, pods: PodIdentity[]): BackendSpec {
  let pod: PodIdentity | undefined;
  if (o.pod !== undefined) {
    const ref = str(o.pod, `${at}.pod`);
    const [ns, name] = ref.includes('/') ? ref.split('/', 2) : [undefined, ref];
    pod = pods.find((p) => p.name === name && (ns === undefined || p.namespace === ns));
    if (!pod) throw new InvalidError(`${at}.pod: no pod ${ref} in the file's pods:`);
  }
  const addr = o.ip !== undefined ? ip(o.ip, `${at}.ip`) : (pod?.ip ?? pod?.ip6);
  if (!addr) throw new InvalidError(`${at}: needs ip (or pod)`);
  return {
    ip: addr,
    port: opt(o, 'port', (v, a) => num(v, a, 1, 65535), at),
    node: opt(o, 'node', str, at) ?? pod?.node,
    zone: opt(o, 'zone', str, at) ?? pod?.zone,
    region: opt(o, 'region', str, at),
    weight: opt(o, 'weight', (v, a) => num(v, a, 0, 1_000_000), at),
    priority: opt(o, 'priority', (v, a) => num(v, a, 0, LEVELS - 1), at),
  };
}

/** Services from a parsed YAML document (`services:` list; unknown fields are ignored). */
export function parseServices(doc: unknown, where: string): { services: ServiceSpec[]; node: NodeLocality } {
  const d = (doc ?? {}) as Record<string, unknown>;
  if (!Array.isArray(d.services)) throw new InvalidError(`${where}: expected a top-level "services:" list`);
  const pods = d.pods === undefined ? [] : parsePodIdentities(d, where);
  const n = (d.node ?? {}) as Record<string, unknown>;
  const node: NodeLocality = {
    name: opt(n, 'name', str, `${where}: node`),
    zone: opt(n, 'zone', str, `${where}: node`),
    region: opt(n, 'region', str, `${where}: node`),
  };
  const services = d.services.map((x, i): ServiceSpec => {
    const o = (x ?? {}) as Record<string, unknown>;
    const at = `${where}: services[${i}]`;
    const vips = Array.isArray(o.vips) ? o.vips.map((v, j) => ip(v, `${at}.vips[${j}]`)) : [ip(o.vip, `${at}.vip`)];
    const portsIn = Array.isArray(o.ports) ? o.ports : o.port !== undefined ? [{ port: o.port }] : [];
    if (portsIn.length === 0) throw new InvalidError(`${at}: needs ports (or port)`);
    const ports = portsIn.map((p, j) => {
      const po = (typeof p === 'number' ? { port: p } : (p ?? {})) as Record<string, unknown>;
      const pat = `${at}.ports[${j}]`;
      return {
        port: num(po.port, `${pat}.port`, 1, 65535),
        targetPort: opt(po, 'targetPort', (v, a) => num(v, a, 1, 65535), pat),
        protocol: opt(po, 'protocol', oneOf(['TCP', 'UDP'] as const), pat) ?? 'TCP',
      };
    });
    const backends = (Array.isArray(o.backends) ? o.backends : []).map((b, j) =>
      backendOf((b ?? {}) as Record<string, unknown>, `${at}.backends[${j}]`, pods),
    );
    const aff = o.affinity as Record<string, unknown> | string | undefined;
    const affinityTimeoutS =
      aff === undefined || aff === null || aff === 'None'
        ? 0
        : aff === 'ClientIP'
          ? 10800 // Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
          : num((aff as Record<string, unknown>).timeoutSeconds ?? 10800, `${at}.affinity.timeoutSeconds`, 1, 86400);
    const waypoint = opt(o, 'waypoint', parseWaypoint, at);
    return {
      name: str(o.name, `${at}.name`),
      namespace: opt(o, 'namespace', str, at) ?? 'default',
      vips,
      ports,
      backends,
      policy: opt(o, 'policy', oneOf(POLICIES), at) ?? 'random',
      locality: opt(o, 'locality', oneOf(LOCALITIES), at) ?? 'any',
      strictScope: opt(o, 'strictScope', oneOf(['node', 'zone', 'region'] as const), at) ?? 'zone',
      affinityTimeoutS,
      ...(waypoint ? { waypoint } : {}),
    };
  });
  return { services, node };
}

export function readServices(file: string): { services: ServiceSpec[]; node: NodeLocality } {
  return parseServices(parse(readFileSync(file, 'utf8')), file);
}

// ---- the map entries ----------------------------------------------------------------------------

/** A port as the BPF side stores it: network order, read as a little-endian u16. */
export function portNet(p: number): number {
  return ((p & 0xff) << 8) | (p >>> 8);
}

/** An address as four u32 words in network order; IPv4 as ::ffff:a.b.c.d (so v4-mapped sockets match). */
export function addrWords(a: string): number[] {
  if (isIPv4(a)) return [0, 0, 0xffff0000, ipNet(a)];
  return ip6Words(a);
}

export function wordsAddr(w: number[]): string {
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff0000) {
    const n = w[3]!;
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
  }
  return ip6String(w);
}

export const PROTO = { TCP: 6, UDP: 17 } as const;

/** The key of one (VIP, port, protocol): the `services` map's key. */
export interface ServiceKey {
  addr: number[];
  port: number;
  proto: number;
  pad: number;
}

export function serviceKey(vip: string, port: number, protocol: Protocol): ServiceKey {
  return { addr: addrWords(vip), port: portNet(port), proto: PROTO[protocol], pad: 0 };
}

export function keyString(k: ServiceKey): string {
  const a = wordsAddr(k.addr);
  return `${a.includes(':') ? `[${a}]` : a}:${portNet(k.port)}/${k.proto === 17 ? 'UDP' : 'TCP'}`;
}

export interface BackendSlot {
  addr: number[];
  port: number;
  level: number;
  pad: number;
  weight: number;
  cum: number;
}

/** What one (VIP, port, protocol) becomes: the service entry (without id and base) and its slots. */
export interface Entry {
  key: ServiceKey;
  name: string;
  policy: number;
  locality: number;
  strictLevel: number;
  affinityTimeoutS: number;
  /** the waypoint's address words and port (network order), or undefined */
  waypoint?: { addr: number[]; port: number };
  slots: BackendSlot[];
  levelEnd: number[];
}

/** A backend's level: its priority, else how far it is from this node (0 node, 1 zone, 2 region, 3 elsewhere). */
export function levelOf(b: BackendSpec, node: NodeLocality): number {
  if (b.priority !== undefined) return b.priority;
  if (node.name && b.node === node.name) return 0;
  if (!node.name && !node.zone && !node.region) return 0;
  if (node.zone && b.zone === node.zone) return 1;
  if (node.region && b.region === node.region) return 2;
  return 3;
}

export function entriesOf(svc: ServiceSpec, node: NodeLocality = {}): Entry[] {
  const out: Entry[] = [];
  for (const vip of svc.vips) {
    const v6 = isIPv6(vip);
    for (const p of svc.ports) {
      const proto = p.protocol ?? 'TCP';
      const backends = svc.backends
        .filter((b) => isIPv6(b.ip) === v6)
        .map((b) => ({ b, level: levelOf(b, node) }))
        .sort((x, y) => x.level - y.level);
      if (backends.length > MAX_BACKENDS)
        throw new InvalidError(`service ${svc.name}: at most ${MAX_BACKENDS} backends per address family`);
      let cum = 0;
      const slots = backends.map(({ b, level }) => {
        const weight = b.weight ?? 1;
        cum += weight;
        return {
          addr: addrWords(b.ip),
          port: portNet(b.port ?? p.targetPort ?? p.port),
          level,
          pad: 0,
          weight,
          cum,
        };
      });
      const levelEnd = Array.from({ length: LEVELS }, (_, l) => slots.filter((s) => s.level <= l).length);
      out.push({
        key: serviceKey(vip, p.port, proto),
        name: `${svc.namespace ?? 'default'}/${svc.name}`,
        policy: POLICIES.indexOf(svc.policy ?? 'random'),
        locality: LOCALITIES.indexOf(svc.locality ?? 'any'),
        strictLevel: STRICT_SCOPES[svc.strictScope ?? 'zone'],
        affinityTimeoutS: svc.affinityTimeoutS ?? 0,
        ...(svc.waypoint && isIPv6(svc.waypoint.ip) === v6
          ? { waypoint: { addr: addrWords(svc.waypoint.ip), port: portNet(svc.waypoint.port) } }
          : {}),
        slots,
        levelEnd,
      });
    }
  }
  return out;
}
