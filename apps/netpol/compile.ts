// Policies -> one generation of the data path's LPM trie (netpol.bpf.c), as a pure function.
//
// Per pod and direction, the policies selecting it make a rule set (a list of rules, each a set
// of peers times a set of ports). A packet is allowed when some rule holds both its peer and its
// port. The trie answers that in two longest-prefix lookups:
//   port  (set, protocol, port prefix) -> a peer set: the union of the peers of every rule whose
//         ports hold that port. Port ranges (endPort) become aligned prefix blocks; rules without
//         ports are the set-wide entry (every protocol: /40), rules with a protocol and no port
//         the protocol's entry (/48), so the longest match is always the union of all that apply.
//   peer  (peer set, IPv4 prefix) -> allowed or excepted: every CIDR and except of the union is
//         an entry, valued by whether some rule's CIDR holds it and none of that CIDR's excepts
//         does; pods chosen by selectors are /32 entries.
// Rule sets and peer sets are shared by every pod / class with the same content.
import type { PodIdentity } from '../shared/pods.js';
import {
  matches,
  type NetworkPolicy,
  type NetworkPolicyEgressRule,
  type NetworkPolicyIngressRule,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
  namespaceLabels,
  type PolicyInput,
  PROTOCOLS,
  parseCidr,
  policyName,
  policyTypes,
} from './policy.js';

export const KEY_SIZE = 16;
export const VALUE_SIZE = 24;
export const MAX_ENTRIES = 1 << 18;
export const KIND_POD = 1;
export const KIND_PORT = 2;
export const KIND_PEER = 3;
export const INGRESS_ISOLATED = 1;
export const EGRESS_ISOLATED = 2;
export const ANY_PEER = 1;

interface Prefix {
  addr: number;
  len: number;
}

/** A CIDR with its excepts (a pod's address is a /32 without any). */
interface PeerBlock extends Prefix {
  except: Prefix[];
}

interface PortRange {
  proto: number;
  lo: number;
  hi: number;
}

interface Rule {
  /** no from / to: every peer */
  anyPeer: boolean;
  peers: PeerBlock[];
  /** no ports: every protocol and port */
  anyPort: boolean;
  ports: PortRange[];
}

export interface LocalPod extends PodIdentity {
  /** the id of the pod's cgroup (what bpf_skb_cgroup_id answers for its sockets) */
  cgroupId: bigint;
}

export interface Generation {
  gen: number;
  entries: [Buffer, Buffer][];
  /** per local pod (namespace/name): the policies selecting it, per direction */
  selected: Map<string, { ingress: string[]; egress: string[] }>;
  ruleSets: number;
  peerSets: number;
}

function contains(outer: Prefix, inner: Prefix): boolean {
  if (inner.len < outer.len) return false;
  return outer.len === 0 || inner.addr >>> (32 - outer.len) === outer.addr >>> (32 - outer.len);
}

function ipNumber(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/** The pods a peer with selectors chooses (their IPv4 addresses), seen from a policy's namespace. */
function selectedPeers(input: PolicyInput, peer: NetworkPolicyPeer, policyNs: string): PeerBlock[] {
  const out: PeerBlock[] = [];
  for (const pod of input.pods) {
    if (!pod.ip) continue;
    const inNs = peer.namespaceSelector
      ? matches(peer.namespaceSelector, namespaceLabels(input, pod.namespace))
      : pod.namespace === policyNs;
    if (inNs && matches(peer.podSelector, pod.labels)) out.push({ addr: ipNumber(pod.ip), len: 32, except: [] });
  }
  return out;
}

function compilePeers(input: PolicyInput, peers: NetworkPolicyPeer[] | undefined, ns: string): Rule['peers'] | null {
  if (!peers || peers.length === 0) return null; // every peer
  const out: PeerBlock[] = [];
  for (const p of peers) {
    if (p.ipBlock) {
      const c = parseCidr(p.ipBlock.cidr, 'ipBlock.cidr');
      out.push({ ...c, except: (p.ipBlock.except ?? []).map((e) => parseCidr(e, 'ipBlock.except')) });
    } else out.push(...selectedPeers(input, p, ns));
  }
  return out;
}

function compilePorts(ports: NetworkPolicyPort[] | undefined): PortRange[] | null {
  if (!ports || ports.length === 0) return null; // every port
  return ports.map((p) => {
    const proto = PROTOCOLS[p.protocol ?? 'TCP'];
    if (p.port === undefined) return { proto, lo: 0, hi: 65535 };
    const lo = Number(p.port);
    return { proto, lo, hi: p.endPort ?? lo };
  });
}

function rulesOf(input: PolicyInput, policies: NetworkPolicy[], dir: 'ingress' | 'egress'): Rule[] {
  const rules: Rule[] = [];
  for (const pol of policies) {
    const ns = pol.metadata.namespace ?? 'default';
    const list = dir === 'ingress' ? (pol.spec.ingress ?? []) : (pol.spec.egress ?? []);
    for (const r of list) {
      const peers = compilePeers(
        input,
        dir === 'ingress' ? (r as NetworkPolicyIngressRule).from : (r as NetworkPolicyEgressRule).to,
        ns,
      );
      const ports = compilePorts(r.ports);
      rules.push({ anyPeer: peers === null, peers: peers ?? [], anyPort: ports === null, ports: ports ?? [] });
    }
  }
  return rules;
}

/** Aligned blocks covering [lo, hi] of the 16-bit port space: [first port, prefix length]. */
export function portBlocks(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  while (lo <= hi) {
    let size = lo === 0 ? 65536 : lo & -lo;
    while (lo + size - 1 > hi) size >>= 1;
    out.push([lo, 16 - Math.log2(size)]);
    lo += size;
  }
  return out;
}

function key(prefixlen: number, fill: (d: Buffer) => void): Buffer {
  const k = Buffer.alloc(KEY_SIZE);
  k.writeUInt32LE(prefixlen, 0);
  fill(k.subarray(4));
  return k;
}

function value(...words: number[]): Buffer {
  const v = Buffer.alloc(VALUE_SIZE);
  words.forEach((w, i) => {
    v.writeUInt32LE(w >>> 0, i * 4);
  });
  return v;
}

export function podKey(cgroupId: bigint): Buffer {
  return key(72, (d) => {
    d[0] = KIND_POD;
    d.writeBigUInt64LE(cgroupId, 1);
  });
}

export function portKey(set: number, proto: number | null, port: number, plen: number): Buffer {
  const bits = proto === null ? 40 : 48 + plen;
  return key(bits, (d) => {
    d[0] = KIND_PORT;
    d.writeUInt32LE(set, 1);
    if (proto !== null) {
      d[5] = proto;
      d.writeUInt16BE(plen === 0 ? 0 : port, 6);
    }
  });
}

export function peerKey(cset: number, p: Prefix): Buffer {
  return key(40 + p.len, (d) => {
    d[0] = KIND_PEER;
    d.writeUInt32LE(cset, 1);
    d.writeUInt32BE(p.addr, 5);
  });
}

/** Whether an address in prefix P (and in no longer prefix of the union) is allowed by the union. */
function allowedIn(p: Prefix, union: PeerBlock[]): boolean {
  return union.some((b) => contains(b, p) && !b.except.some((e) => contains(e, p)));
}

class Builder {
  readonly entries: [Buffer, Buffer][] = [];
  readonly #sets = new Map<string, number>();
  readonly #csets = new Map<string, number>();

  constructor(readonly gen: number) {}

  get ruleSets(): number {
    return this.#sets.size;
  }

  get peerSets(): number {
    return this.#csets.size;
  }

  /** The id of the peer set that is the union of these rules' peers (its entries made once). */
  private peerSet(rules: Rule[]): number {
    const union = rules.flatMap((r) => r.peers);
    const sig = JSON.stringify(union.map((b) => [b.addr, b.len, b.except.map((e) => [e.addr, e.len])]).sort());
    let id = this.#csets.get(sig);
    if (id !== undefined) return id;
    id = this.#csets.size + 1;
    this.#csets.set(sig, id);
    const prefixes = new Map<string, Prefix>();
    for (const b of union) for (const p of [b, ...b.except]) prefixes.set(`${p.addr}/${p.len}`, p);
    for (const p of prefixes.values()) this.entries.push([peerKey(id, p), value(allowedIn(p, union) ? 1 : 0)]);
    return id;
  }

  private classValue(rules: Rule[]): Buffer {
    if (rules.some((r) => r.anyPeer)) return value(0, ANY_PEER);
    return value(this.peerSet(rules), 0);
  }

  /** The id of a rule set (its port classes made once). */
  ruleSet(rules: Rule[]): number {
    const sig = JSON.stringify(rules);
    let id = this.#sets.get(sig);
    if (id !== undefined) return id;
    id = this.#sets.size + 1;
    this.#sets.set(sig, id);
    const anyPort = rules.filter((r) => r.anyPort);
    if (anyPort.length) this.entries.push([portKey(id, null, 0, 0), this.classValue(anyPort)]);
    for (const proto of Object.values(PROTOCOLS)) {
      const whole = rules.filter(
        (r) => r.anyPort || r.ports.some((p) => p.proto === proto && p.lo === 0 && p.hi === 65535),
      );
      if (whole.length > anyPort.length) this.entries.push([portKey(id, proto, 0, 0), this.classValue(whole)]);
      const ranged = rules.filter((r) => !whole.includes(r) && r.ports.some((p) => p.proto === proto));
      if (!ranged.length) continue;
      const bounds = new Set<number>([0, 65536]);
      for (const r of ranged) for (const p of r.ports) if (p.proto === proto) bounds.add(p.lo).add(p.hi + 1);
      const sorted = [...bounds].sort((a, b) => a - b);
      for (let i = 0; i + 1 < sorted.length; i++) {
        const lo = sorted[i]!;
        const hi = sorted[i + 1]! - 1;
        const here = ranged.filter((r) => r.ports.some((p) => p.proto === proto && p.lo <= lo && p.hi >= hi));
        if (!here.length) continue;
        const v = this.classValue([...whole, ...here]);
        for (const [port, plen] of portBlocks(lo, hi)) this.entries.push([portKey(id, proto, port, plen), v]);
      }
    }
    return id;
  }
}

/**
 * Compiles the input into one generation. `pods` are the pods on this node with their cgroup
 * ids; `ids` gives each policy (namespace/name) its id (the one drops are reported with).
 */
export function compile(input: PolicyInput, pods: LocalPod[], ids: Map<string, number>, gen: number): Generation {
  const b = new Builder(gen);
  const selected = new Map<string, { ingress: string[]; egress: string[] }>();
  const sorted = [...input.policies].sort((x, y) => policyName(x).localeCompare(policyName(y)));
  for (const pod of pods) {
    const of = (dir: 'ingress' | 'egress') =>
      sorted.filter(
        (p) =>
          (p.metadata.namespace ?? 'default') === pod.namespace &&
          policyTypes(p)[dir] &&
          matches(p.spec.podSelector, pod.labels),
      );
    const ingress = of('ingress');
    const egress = of('egress');
    if (!ingress.length && !egress.length) continue; // unrestricted both ways
    selected.set(`${pod.namespace}/${pod.name}`, { ingress: ingress.map(policyName), egress: egress.map(policyName) });
    const flags = (ingress.length ? INGRESS_ISOLATED : 0) | (egress.length ? EGRESS_ISOLATED : 0);
    const inSet = ingress.length ? b.ruleSet(rulesOf(input, ingress, 'ingress')) : 0;
    const outSet = egress.length ? b.ruleSet(rulesOf(input, egress, 'egress')) : 0;
    const idOf = (p: NetworkPolicy | undefined) => (p ? (ids.get(policyName(p)) ?? 0) : 0);
    b.entries.push([podKey(pod.cgroupId), value(inSet, outSet, flags, idOf(ingress[0]), idOf(egress[0]), gen)]);
  }
  return { gen, entries: b.entries, selected, ruleSets: b.ruleSets, peerSets: b.peerSets };
}
