// service-lb north-south: the declarations of NodePort and external-IP services and what they
// become in one node's maps (nodeport.bpf.c). Every node's instance is given the same
// declaration and its own node name; each writes:
//
//   np_settings   this node's address and the SNAT port range
//   np_frontends  NODE_IP:nodePort for the address of every node (a DSR packet arrives in IPIP
//                 with the node address it was sent to), and EXTERNAL_IP:port, per protocol
//   np_backends   the service's backends: all of them (externalTrafficPolicy Cluster: every node
//                 holds the same list in the same order, so each picks the same backend for a flow),
//                 or only this node's (Local)
//
// A change is applied so that no packet sees a half-written backend list: the new list is
// written under a service id no frontend points to, then each frontend is switched to it in one
// map update, then the old list is deleted.
import { readFileSync } from 'node:fs';
import type { BpfMap } from 'kbpf/bpf';
import { parse } from 'yaml';
import { InvalidError } from '../../src/errors.js';
import { ipNet, ipString } from '../mesh-accel/mesh.js';
import { type MapOpener, MapSet, objectMaps, pinnedMaps } from '../shared/instance-maps.js';

export type Protocol = 'TCP' | 'UDP';
export type TrafficPolicy = 'Cluster' | 'Local';
/** How a backend on another node is reached: DSR (IPIP, the reply goes straight to the client) or SNAT. */
export type NodePortMode = 'dsr' | 'snat';

export interface NodePortBackend {
  ip: string;
  port: number;
  /** the node it runs on (a name in `nodes`) */
  node: string;
}

export interface NodePortService {
  name: string;
  protocol?: Protocol;
  /** the service port: what external IPs are reached on */
  port: number;
  nodePort?: number;
  externalIPs?: string[];
  externalTrafficPolicy?: TrafficPolicy;
  mode?: NodePortMode;
  backends: NodePortBackend[];
}

export interface NodePortDeclaration {
  /** node name -> its address on the network clients reach */
  nodes: Record<string, string>;
  /** SNAT source ports, "FIRST-LAST" (default 40000-49999) */
  snatPorts?: string;
  services: NodePortService[];
}

const NP_LOCAL = 1;
const NP_SNAT = 2;
const PROTO: Record<Protocol, number> = { TCP: 6, UDP: 17 };
export const NODEPORT_COUNTERS = [
  'local_dnat',
  'dsr_encap',
  'dsr_decap',
  'snat_out',
  'snat_reply',
  'reply_revnat',
  'no_backend',
  'failed',
] as const;
export const NODEPORT_MAPS = ['np_frontends', 'np_backends', 'np_settings', 'np_stats'] as const;

/** A port in network order, as the u16 the BPF side compares with. */
export function portNet(port: number): number {
  return ((port & 0xff) << 8) | (port >>> 8);
}

function fail(where: string, why: string): never {
  throw new InvalidError(`${where}: ${why}`);
}

function checkPort(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(where, 'must be a port (1-65535)');
  return v;
}

function checkIp(v: unknown, where: string): string {
  if (typeof v !== 'string') fail(where, 'must be an IPv4 address');
  try {
    ipNet(v);
  } catch {
    fail(where, `${JSON.stringify(v)} is not an IPv4 address`);
  }
  return v;
}

/** Checks a declaration (from YAML or code); every problem names its place. */
export function checkDeclaration(raw: unknown, where = 'declaration'): NodePortDeclaration {
  if (!raw || typeof raw !== 'object') fail(where, 'must be a mapping with nodes and services');
  const d = raw as Record<string, unknown>;
  const nodes: Record<string, string> = {};
  for (const [name, ip] of Object.entries((d.nodes ?? {}) as Record<string, unknown>))
    nodes[name] = checkIp(ip, `${where}: nodes.${name}`);
  if (Object.keys(nodes).length === 0) fail(where, 'nodes: name at least one node and its address');
  if (d.snatPorts !== undefined) snatRange(d.snatPorts as string, `${where}: snatPorts`);
  if (!Array.isArray(d.services)) fail(where, 'services must be a list');
  const services = d.services.map((s, i): NodePortService => {
    const at = `${where}: services[${i}]`;
    const o = s as Record<string, unknown>;
    if (typeof o?.name !== 'string' || !o.name) fail(at, 'needs a name');
    const protocol = (o.protocol ?? 'TCP') as Protocol;
    if (!(protocol in PROTO)) fail(`${at}.protocol`, 'must be TCP or UDP');
    const policy = (o.externalTrafficPolicy ?? 'Cluster') as TrafficPolicy;
    if (policy !== 'Cluster' && policy !== 'Local') fail(`${at}.externalTrafficPolicy`, 'must be Cluster or Local');
    const mode = (o.mode ?? 'dsr') as NodePortMode;
    if (mode !== 'dsr' && mode !== 'snat') fail(`${at}.mode`, 'must be dsr or snat');
    const externalIPs = ((o.externalIPs ?? []) as unknown[]).map((ip, j) => checkIp(ip, `${at}.externalIPs[${j}]`));
    if (o.nodePort === undefined && externalIPs.length === 0) fail(at, 'needs a nodePort or externalIPs');
    if (!Array.isArray(o.backends)) fail(`${at}.backends`, 'must be a list');
    const backends = o.backends.map((b, j) => {
      const bt = `${at}.backends[${j}]`;
      const x = b as Record<string, unknown>;
      if (typeof x?.node !== 'string' || !(x.node in nodes)) fail(`${bt}.node`, 'must name one of nodes');
      return { ip: checkIp(x.ip, `${bt}.ip`), port: checkPort(x.port, `${bt}.port`), node: x.node };
    });
    return {
      name: o.name,
      protocol,
      port: checkPort(o.port, `${at}.port`),
      ...(o.nodePort !== undefined ? { nodePort: checkPort(o.nodePort, `${at}.nodePort`) } : {}),
      externalIPs,
      externalTrafficPolicy: policy,
      mode,
      backends,
    };
  });
  return { nodes, ...(d.snatPorts !== undefined ? { snatPorts: d.snatPorts as string } : {}), services };
}

export function readDeclaration(file: string): NodePortDeclaration {
  return checkDeclaration(parse(readFileSync(file, 'utf8')), file);
}

function snatRange(v: string, where: string): { first: number; count: number } {
  const m = /^(\d+)-(\d+)$/.exec(v);
  const first = m ? Number(m[1]) : 0;
  const last = m ? Number(m[2]) : 0;
  if (!m || first < 1024 || last > 65535 || last < first) fail(where, 'must be FIRST-LAST within 1024-65535');
  return { first, count: last - first + 1 };
}

interface FrontendKey {
  addr: number;
  port: number;
  proto: number;
}

interface ServiceValue {
  id: number;
  count: number;
  flags: number;
}

const frontendId = (k: FrontendKey) => `${k.addr}:${k.port}:${k.proto}`;

/** The maps of one node's nodeport programs. */
export class NodePortMaps {
  readonly #set: MapSet<(typeof NODEPORT_MAPS)[number]>;

  private constructor(open: MapOpener, owned: boolean) {
    this.#set = new MapSet(NODEPORT_MAPS, open, owned);
  }

  /** From a loaded object (the object keeps owning its maps). */
  static ofObject(obj: { map(name: string): BpfMap }): NodePortMaps {
    return new NodePortMaps(objectMaps(obj), false);
  }

  /** From the pins of an instance of the agent that owns `bpffsDir` (which may be another process). */
  static ofInstance(bpffsDir: string, instance: string): NodePortMaps {
    return new NodePortMaps(pinnedMaps(bpffsDir, instance, 'service-lb'), true);
  }

  private m(name: (typeof NODEPORT_MAPS)[number]): BpfMap {
    return this.#set.get(name);
  }

  /** Makes the maps say what `decl` says for node `node`, switching each service's frontends atomically. */
  apply(decl: NodePortDeclaration, node: string): void {
    const d = checkDeclaration(decl);
    const self = d.nodes[node];
    if (!self) throw new InvalidError(`node ${node} is not one of the declaration's nodes (${Object.keys(d.nodes)})`);
    const snat = snatRange(d.snatPorts ?? '40000-49999', 'snatPorts');
    this.m('np_settings').update(0, { node: ipNet(self), snat_first: snat.first, snat_count: snat.count });

    const frontends = this.m('np_frontends');
    const backends = this.m('np_backends');
    const old = new Map<string, { key: FrontendKey; value: ServiceValue }>();
    for (const [key, value] of frontends.lookupBatch())
      old.set(frontendId(key as FrontendKey), { key: key as FrontendKey, value: value as ServiceValue });
    const used = new Set([...old.values()].map((o) => o.value.id));
    let next = 1;
    const freshId = () => {
      while (used.has(next)) next++;
      used.add(next);
      return next;
    };

    const wanted = new Map<string, { key: FrontendKey; value: ServiceValue }>();
    for (const s of d.services) {
      const list = s.externalTrafficPolicy === 'Local' ? s.backends.filter((b) => b.node === node) : s.backends;
      const id = freshId();
      list.forEach((b, index) => {
        backends.update(
          { service: id, index },
          { addr: ipNet(b.ip), node: ipNet(d.nodes[b.node]!), port: portNet(b.port) },
        );
      });
      const value = {
        id,
        count: list.length,
        flags: (s.externalTrafficPolicy === 'Local' ? NP_LOCAL : 0) | (s.mode === 'snat' ? NP_SNAT : 0),
      };
      const proto = PROTO[s.protocol ?? 'TCP'];
      const keys: FrontendKey[] = [
        ...(s.nodePort !== undefined
          ? Object.values(d.nodes).map((ip) => ({ addr: ipNet(ip), port: portNet(s.nodePort!), proto }))
          : []),
        ...(s.externalIPs ?? []).map((ip) => ({ addr: ipNet(ip), port: portNet(s.port), proto })),
      ];
      for (const key of keys) {
        const k = frontendId(key);
        if (wanted.has(k))
          throw new InvalidError(
            `service ${s.name}: ${ipString(key.addr)}:${s.nodePort ?? s.port}/${s.protocol ?? 'TCP'} is taken by another service`,
          );
        wanted.set(k, { key, value });
      }
    }
    for (const { key, value } of wanted.values()) frontends.update(key, value);
    for (const [k, { key }] of old) if (!wanted.has(k)) frontends.delete(key);
    for (const { value } of old.values())
      for (let i = 0; i < value.count; i++) backends.delete({ service: value.id, index: i });
  }

  /** The frontends as "ADDR:PORT/PROTO -> N backends". */
  frontends(): { address: string; port: number; protocol: string; backends: number; flags: string[] }[] {
    return this.m('np_frontends')
      .lookupBatch()
      .map(([k, v]) => {
        const key = k as FrontendKey;
        const value = v as ServiceValue;
        return {
          address: ipString(key.addr),
          port: portNet(key.port),
          protocol: key.proto === 6 ? 'TCP' : 'UDP',
          backends: value.count,
          flags: [...(value.flags & NP_LOCAL ? ['Local'] : []), value.flags & NP_SNAT ? 'snat' : 'dsr'],
        };
      });
  }

  /** The counters, summed over CPUs. */
  stats(): Record<(typeof NODEPORT_COUNTERS)[number], bigint> {
    const m = this.m('np_stats');
    const out = {} as Record<(typeof NODEPORT_COUNTERS)[number], bigint>;
    NODEPORT_COUNTERS.forEach((name, i) => {
      const v = m.lookup(i) as bigint[] | bigint;
      out[name] = Array.isArray(v) ? v.reduce((a, b) => a + BigInt(b), 0n) : BigInt(v ?? 0);
    });
    return out;
  }

  close(): void {
    this.#set.close();
  }
}
