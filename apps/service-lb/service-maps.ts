// service-lb, the maps of one running instance: services applied (atomically per service entry),
// removed, listed; counters; the per-socket translations (svc_origin, flow-monitor's contract);
// connections to removed backends ended through the package's socket iterators.
import { readdirSync } from 'node:fs';
import { BpfMap, inNetns, Link, readIter } from 'kbpf/bpf';
import { instanceMapPin, instancePin } from '../../src/agent/pins.js';
import { InvalidError, NotFoundError } from '../../src/errors.js';
import {
  type BackendSlot,
  type Entry,
  entriesOf,
  keyString,
  type NodeLocality,
  POLICIES,
  portNet,
  type ServiceKey,
  type ServiceSpec,
  wordsAddr,
} from './services.js';

/** struct svc_origin (service_lb.bpf.c), decoded: one socket's translation, by cookie */
export interface SvcOrigin {
  vip: number[];
  backend: number[];
  vip_port: number;
  backend_port: number;
  family: number;
  policy: number;
  /** the locality level chosen; 255: sent to the service's waypoint */
  level: number;
  affinity_hit: number;
  service_id: number;
}

export const MAP_NAMES = [
  'services',
  'backends',
  'svc_rr',
  'backend_conns',
  'affinity',
  'svc_origin',
  'svc_rev',
  'doomed',
  'svc_stats',
] as const;
type MapName = (typeof MAP_NAMES)[number];

export const STATS = [
  'translated',
  'no_backend',
  'affinity_hit',
  'datagram',
  'reverse',
  'peername',
  'conn_open',
  'conn_close',
  'destroyed',
  'released',
  'waypoint',
  'waypoint_self',
  'tlv',
] as const;
export type ServiceStats = Record<(typeof STATS)[number], bigint>;

export const MAX_SERVICE_ID = 65535;

interface ServiceValue {
  id: number;
  base: number;
  count: number;
  policy: number;
  locality: number;
  strict_level: number;
  flags: number;
  level_end: number[];
  affinity_timeout_s: number;
  waypoint: number[];
  waypoint_port: number;
  pad2: number;
}

/** service flags (service_lb.bpf.c) */
const SVC_F_WAYPOINT = 1;
/** svc_origin.level of a connection sent to its service's waypoint */
export const LEVEL_WAYPOINT = 255;

/** One socket's translation, as svc_origin holds it (see README.md). */
export interface Origin {
  cookie: bigint;
  vip: string;
  vipPort: number;
  backend: string;
  backendPort: number;
  family: 4 | 6;
  policy: string;
  level: number;
  affinityHit: boolean;
  serviceId: number;
}

export interface ListedService {
  service: string;
  id: number;
  policy: string;
  backends: { addr: string; port: number; level: number; weight: number }[];
  waypoint?: string;
}

export interface ApplyResult {
  /** service entries written (one per VIP, port, protocol) */
  entries: number;
  /** sockets ended because their backend left the service */
  destroyed: number;
}

export interface ApplyOptions {
  /** end connections to backends that left a service (default true) */
  endRemoved?: boolean;
  /** the network namespaces (names under /run/netns or paths) whose sockets are looked at; default: this one and every named one */
  netns?: string[];
}

function sameBackend(a: { addr: number[]; port: number }, b: { addr: number[]; port: number }): boolean {
  return a.port === b.port && a.addr.every((w, i) => w === b.addr[i]);
}

/** The maps of one running service-lb instance. */
export class ServiceMaps {
  readonly #maps = new Map<MapName, BpfMap>();
  readonly #iterLink: (prog: string) => string | undefined;
  #capacity = 0;

  private constructor(get: (name: MapName) => BpfMap, iterLink: (prog: string) => string | undefined) {
    this.#iterLink = iterLink;
    try {
      for (const n of MAP_NAMES) this.#maps.set(n, get(n));
      this.#capacity = this.m('backends').maxEntries;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** From the pins of an instance of the agent that owns `bpffsDir` (maybe another process). */
  static ofInstance(bpffsDir: string, instance: string): ServiceMaps {
    return new ServiceMaps(
      (n) => {
        const path = instanceMapPin(bpffsDir, instance, n);
        if (!path)
          throw new NotFoundError(`no pinned service-lb map ${n} of instance ${instance} (is the instance running?)`);
        return BpfMap.fromPin(path);
      },
      (prog) => instancePin(bpffsDir, instance, 'links', prog),
    );
  }

  private m(name: MapName): BpfMap {
    return this.#maps.get(name)!;
  }

  private current(): Map<string, { key: ServiceKey; value: ServiceValue }> {
    const out = new Map<string, { key: ServiceKey; value: ServiceValue }>();
    for (const [k, v] of this.m('services').lookupBatch(1024)) {
      const key = k as ServiceKey;
      out.set(keyString(key), { key, value: v as ServiceValue });
    }
    return out;
  }

  private slots(v: ServiceValue): BackendSlot[] {
    const b = this.m('backends');
    return Array.from({ length: v.count }, (_, i) => b.lookup(v.base + i) as BackendSlot);
  }

  /**
   * Writes services: each (VIP, port, protocol) entry's new backend set goes into a fresh slot
   * range, then its service entry is replaced in one update. Services not named are left alone.
   */
  apply(services: ServiceSpec[], node: NodeLocality = {}, opts: ApplyOptions = {}): ApplyResult {
    const entries = services.flatMap((s) => entriesOf(s, node));
    const cur = this.current();
    const ids = new Set([...cur.values()].map((c) => c.value.id));
    let nextId = 1;
    const used = [...cur.values()].map((c) => [c.value.base, c.value.base + c.value.count] as [number, number]);
    let bump = used.reduce((m, [, e]) => Math.max(m, e), 0);
    const alloc = (n: number): number => {
      if (bump + n <= this.#capacity) {
        const b = bump;
        bump += n;
        return b;
      }
      // first fit in the gaps between live ranges (ranges freed by this apply stay taken until it ends)
      used.sort((a, b) => a[0] - b[0]);
      let at = 0;
      for (const [s, e] of used) {
        if (s - at >= n) break;
        at = Math.max(at, e);
      }
      if (at + n > this.#capacity)
        throw new InvalidError(`service-lb: no room for ${n} more backend slots (${this.#capacity} in all)`);
      return at;
    };
    const slotWrites: [number, BackendSlot][] = [];
    const svcWrites: [ServiceKey, ServiceValue][] = [];
    const doomed: { backend: { addr: number[]; port: number; pad: number }; service_id: number }[] = [];
    for (const e of entries) {
      const old = cur.get(keyString(e.key));
      let id = old?.value.id;
      if (id === undefined) {
        while (ids.has(nextId)) nextId++;
        if (nextId > MAX_SERVICE_ID) throw new InvalidError(`service-lb: more than ${MAX_SERVICE_ID} service entries`);
        id = nextId;
        ids.add(id);
      }
      const base = e.slots.length ? alloc(e.slots.length) : 0;
      used.push([base, base + e.slots.length]);
      e.slots.forEach((s, i) => {
        slotWrites.push([base + i, s]);
      });
      svcWrites.push([e.key, this.value(e, id, base)]);
      if (old)
        for (const s of this.slots(old.value))
          if (!e.slots.some((n) => sameBackend(n, s)))
            doomed.push({ backend: { addr: s.addr, port: s.port, pad: 0 }, service_id: id });
    }
    // the sets first, then the entries that point at them
    this.m('backends').updateBatch(slotWrites);
    this.m('services').updateBatch(svcWrites);
    const destroyed = opts.endRemoved === false ? 0 : this.endConnections(doomed, opts.netns);
    return { entries: entries.length, destroyed };
  }

  private value(e: Entry, id: number, base: number): ServiceValue {
    return {
      id,
      base,
      count: e.slots.length,
      policy: e.policy,
      locality: e.locality,
      strict_level: e.strictLevel,
      flags: e.waypoint ? SVC_F_WAYPOINT : 0,
      level_end: e.levelEnd,
      affinity_timeout_s: e.affinityTimeoutS,
      waypoint: e.waypoint?.addr ?? [0, 0, 0, 0],
      waypoint_port: e.waypoint?.port ?? 0,
      pad2: 0,
    };
  }

  /** Removes services (every VIP, port, protocol of each); their translated connections are ended. */
  remove(services: ServiceSpec[], opts: ApplyOptions = {}): ApplyResult {
    const cur = this.current();
    const doomed: { backend: { addr: number[]; port: number; pad: number }; service_id: number }[] = [];
    let n = 0;
    for (const e of services.flatMap((s) => entriesOf(s))) {
      const old = cur.get(keyString(e.key));
      if (!old) continue;
      this.m('services').delete(old.key);
      n++;
      for (const s of this.slots(old.value))
        doomed.push({ backend: { addr: s.addr, port: s.port, pad: 0 }, service_id: old.value.id });
      this.m('svc_rr').update(old.value.id, 0);
    }
    const destroyed = opts.endRemoved === false ? 0 : this.endConnections(doomed, opts.netns);
    return { entries: n, destroyed };
  }

  /**
   * Ends the translated sockets whose backend left their service: the doomed backends go into
   * `doomed`, the package's iterators (iter/tcp, iter/udp: bpf_sock_destroy) run in each network
   * namespace, and `doomed` is emptied again. Answers how many sockets were ended.
   */
  endConnections(
    doomed: { backend: { addr: number[]; port: number; pad: number }; service_id: number }[],
    netns?: string[],
  ): number {
    if (doomed.length === 0) return 0;
    const before = this.stats().destroyed;
    const d = this.m('doomed');
    d.updateBatch(doomed.map((k) => [k, 1]));
    const links: Link[] = [];
    try {
      for (const prog of ['svc_destroy_tcp', 'svc_destroy_udp']) {
        const pin = this.#iterLink(prog);
        if (pin) links.push(Link.fromPin(pin));
      }
      const spaces = netns ?? [
        '/proc/self/ns/net',
        ...(() => {
          try {
            return readdirSync('/run/netns');
          } catch {
            return [];
          }
        })(),
      ];
      for (const ns of spaces) {
        const runAll = (): void => {
          for (const l of links) readIter(l);
        };
        if (ns === '/proc/self/ns/net') runAll();
        else {
          try {
            inNetns(ns, runAll);
          } catch {
            /* a namespace that went away meanwhile */
          }
        }
      }
    } finally {
      for (const l of links) l.close();
      d.deleteBatch(doomed);
    }
    return Number(this.stats().destroyed - before);
  }

  list(): ListedService[] {
    return [...this.current().values()].map(({ key, value }) => ({
      service: keyString(key),
      id: value.id,
      policy: POLICIES[value.policy] ?? String(value.policy),
      backends: this.slots(value).map((s) => ({
        addr: wordsAddr(s.addr),
        port: portNet(s.port),
        level: s.level,
        weight: s.weight,
      })),
      ...(value.flags & SVC_F_WAYPOINT
        ? {
            waypoint: `${((a) => (a.includes(':') ? `[${a}]` : a))(wordsAddr(value.waypoint))}:${portNet(value.waypoint_port)}`,
          }
        : {}),
    }));
  }

  /** The translations of live (and recently closed) sockets, by socket cookie. */
  origins(): Origin[] {
    return this.m('svc_origin')
      .lookupBatch(1024)
      .map(([k, v]) => {
        const o = v as SvcOrigin;
        const v4 = o.family === 2;
        const addr = (w: number[]) => (v4 ? wordsAddr([0, 0, 0xffff0000, w[0]!]) : wordsAddr(w));
        return {
          cookie: BigInt(k as bigint | number),
          vip: addr(o.vip),
          vipPort: portNet(o.vip_port),
          backend: addr(o.backend),
          backendPort: portNet(o.backend_port),
          family: v4 ? 4 : 6,
          policy: POLICIES[o.policy] ?? String(o.policy),
          level: o.level,
          affinityHit: o.affinity_hit !== 0,
          serviceId: o.service_id,
        } satisfies Origin;
      });
  }

  /** Active (established) translated connections per backend, as sockops counts them. */
  connections(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, v] of this.m('backend_conns').lookupBatch(1024)) {
      const key = k as { addr: number[]; port: number };
      out.set(`${wordsAddr(key.addr)}:${portNet(key.port)}`, Number(v));
    }
    return out;
  }

  /** Sockets holding reverse translations now (unconnected UDP). */
  reverseCount(): number {
    return this.m('svc_rev').lookupBatch(1024).length;
  }

  stats(): ServiceStats {
    const per = (this.m('svc_stats').lookup(0) ?? []) as { c: (bigint | number)[] }[];
    const out = {} as ServiceStats;
    STATS.forEach((name, i) => {
      out[name] = per.reduce<bigint>((a, v) => a + BigInt(v.c[i] ?? 0), 0n);
    });
    return out;
  }

  close(): void {
    for (const m of this.#maps.values()) m.close();
    this.#maps.clear();
  }
}
