// Policies -> one generation of the data path's LPM trie (netpol.bpf.c), as a pure function.
//
// Per pod and direction, the policies selecting it make a rule set (a list of rules, each a set
// of peers times a set of ports). A packet is allowed when some rule holds both its peer and its
// port. The trie answers that in two longest-prefix lookups:
//   port  (set, protocol, port prefix) -> a peer set: the union of the peers of every rule whose
//         ports hold that port. Port ranges (endPort) become aligned prefix blocks; rules without
//         ports are the set-wide entry (every protocol: /40), rules with a protocol and no port
//         the protocol's entry (/48), so the longest match is always the union of all that apply.
//   peer  (peer set, IPv4 prefix) and peer6 (peer set, IPv6 prefix) -> allowed or excepted: every
//         CIDR and except of the union is an entry of its family, valued by whether some rule's
//         CIDR holds it and none of that CIDR's excepts does; pods chosen by selectors are /32 and
//         /128 entries (their IPv4 and IPv6 addresses).
// Rule sets and peer sets are shared by every pod / class with the same content.
// Named ports are resolved as Kubernetes does: an ingress rule's against the pod it protects, an
// egress rule's against each peer pod (a rule per port number, with the pods that name it so).
import {
  type Cidr,
  matches,
  type NetpolPod,
  type NetworkPolicy,
  type NetworkPolicyEgressRule,
  type NetworkPolicyIngressRule,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
  namespaceLabels,
  type PolicyInput,
  PROTOCOLS,
  parseCidr,
  parseIp,
  policyName,
  policyTypes,
} from './policy.js';

export const KEY_SIZE = 28;
export const VALUE_SIZE = 24;
export const MAX_ENTRIES = 1 << 18;
export const KIND_POD = 1;
export const KIND_PORT = 2;
export const KIND_PEER = 3;
export const KIND_PEER6 = 4;
export const INGRESS_ISOLATED = 1;
export const EGRESS_ISOLATED = 2;
export const ANY_PEER = 1;

type Prefix = Cidr;

/** A CIDR with its excepts (a pod's address is a /32 or /128 without any). */
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

export interface LocalPod extends NetpolPod {
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

function bits(p: Prefix): number {
  return p.v6 ? 128 : 32;
}

function contains(outer: Prefix, inner: Prefix): boolean {
  if (outer.v6 !== inner.v6 || inner.len < outer.len) return false;
  const shift = BigInt(bits(outer) - outer.len);
  return inner.addr >> shift === outer.addr >> shift;
}

/** A pod's addresses as host prefixes (/32, /128). */
function podPrefixes(pod: NetpolPod): PeerBlock[] {
  const out: PeerBlock[] = [];
  if (pod.ip) out.push({ ...parseIp(pod.ip), except: [] });
  if (pod.ip6) out.push({ ...parseIp(pod.ip6), except: [] });
  return out;
}

/** Whether the peer (one of a rule's from / to) holds the pod, seen from a policy's namespace. */
function peerHolds(input: PolicyInput, peer: NetworkPolicyPeer, policyNs: string, pod: NetpolPod): boolean {
  if (peer.ipBlock) {
    const c = parseCidr(peer.ipBlock.cidr, 'ipBlock.cidr');
    const except = (peer.ipBlock.except ?? []).map((e) => parseCidr(e, 'ipBlock.except'));
    return podPrefixes(pod).some((p) => contains(c, p) && !except.some((e) => contains(e, p)));
  }
  const inNs = peer.namespaceSelector
    ? matches(peer.namespaceSelector, namespaceLabels(input, pod.namespace))
    : pod.namespace === policyNs;
  return inNs && matches(peer.podSelector, pod.labels);
}

function compilePeers(input: PolicyInput, peers: NetworkPolicyPeer[] | undefined, ns: string): Rule['peers'] | null {
  if (!peers || peers.length === 0) return null; // every peer
  const out: PeerBlock[] = [];
  for (const p of peers) {
    if (p.ipBlock) {
      const c = parseCidr(p.ipBlock.cidr, 'ipBlock.cidr');
      out.push({ ...c, except: (p.ipBlock.except ?? []).map((e) => parseCidr(e, 'ipBlock.except')) });
    } else for (const pod of input.pods) if (peerHolds(input, p, ns, pod)) out.push(...podPrefixes(pod));
  }
  return out;
}

/** The number a pod gives a port's name (its containers' ports), if it names it. */
export function namedPort(pod: NetpolPod, name: string, proto: number): number | undefined {
  return pod.ports?.find((c) => c.name === name && PROTOCOLS[c.protocol ?? 'TCP'] === proto)?.containerPort;
}

function portRange(p: NetworkPolicyPort, number?: number): PortRange {
  const proto = PROTOCOLS[p.protocol ?? 'TCP'];
  if (p.port === undefined) return { proto, lo: 0, hi: 65535 };
  const lo = number ?? Number(p.port);
  return { proto, lo, hi: p.endPort ?? lo };
}

/**
 * One rule of a policy as rules of the data path. Named ports: an ingress rule's are the protected
 * pod's numbers (a name it lacks allows nothing); an egress rule's become one rule per number the
 * peer pods give the name, each with the pods that give it that number.
 */
function compileRule(
  input: PolicyInput,
  ns: string,
  peerList: NetworkPolicyPeer[] | undefined,
  ports: NetworkPolicyPort[] | undefined,
  dir: 'ingress' | 'egress',
  pod: NetpolPod,
): Rule[] {
  const peers = compilePeers(input, peerList, ns);
  const peerRule = (p: PortRange[]): Rule => ({
    anyPeer: peers === null,
    peers: peers ?? [],
    anyPort: false,
    ports: p,
  });
  if (!ports || ports.length === 0) return [{ ...peerRule([]), anyPort: true }];
  const numbered = ports.filter((p) => typeof p.port !== 'string');
  const named = ports.filter((p): p is NetworkPolicyPort & { port: string } => typeof p.port === 'string');
  const rules: Rule[] = [];
  if (dir === 'ingress') {
    const resolved = named.flatMap((p) => {
      const n = namedPort(pod, p.port, PROTOCOLS[p.protocol ?? 'TCP']);
      return n === undefined ? [] : [portRange(p, n)];
    });
    rules.push(peerRule([...numbered.map((p) => portRange(p)), ...resolved]));
    return rules;
  }
  if (numbered.length) rules.push(peerRule(numbered.map((p) => portRange(p))));
  for (const p of named) {
    const proto = PROTOCOLS[p.protocol ?? 'TCP'];
    const byNumber = new Map<number, PeerBlock[]>();
    for (const peer of input.pods) {
      const n = namedPort(peer, p.port, proto);
      if (n === undefined) continue;
      if (peerList?.length && !peerList.some((x) => peerHolds(input, x, ns, peer))) continue;
      byNumber.set(n, [...(byNumber.get(n) ?? []), ...podPrefixes(peer)]);
    }
    for (const [n, blocks] of byNumber)
      rules.push({ anyPeer: false, peers: blocks, anyPort: false, ports: [portRange(p, n)] });
  }
  return rules;
}

function rulesOf(input: PolicyInput, policies: NetworkPolicy[], dir: 'ingress' | 'egress', pod: NetpolPod): Rule[] {
  const rules: Rule[] = [];
  for (const pol of policies) {
    const ns = pol.metadata.namespace ?? 'default';
    const list = dir === 'ingress' ? (pol.spec.ingress ?? []) : (pol.spec.egress ?? []);
    for (const r of list) {
      const peers = dir === 'ingress' ? (r as NetworkPolicyIngressRule).from : (r as NetworkPolicyEgressRule).to;
      rules.push(...compileRule(input, ns, peers, r.ports, dir, pod));
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
    d[0] = p.v6 ? KIND_PEER6 : KIND_PEER;
    d.writeUInt32LE(cset, 1);
    if (p.v6) {
      d.writeBigUInt64BE(p.addr >> 64n, 5);
      d.writeBigUInt64BE(p.addr & 0xffffffffffffffffn, 13);
    } else d.writeUInt32BE(Number(p.addr), 5);
  });
}

/** The keys the data path looks a packet up with: its port class, then its peer (an address). */
export function lookupKeys(
  set: number,
  proto: number,
  port: number,
  peer: string,
): { port: Buffer; peer: (cset: number) => Buffer } {
  const a = parseIp(peer);
  return { port: portKey(set, proto, port, 16), peer: (cset) => peerKey(cset, a) };
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
    const text = (p: Prefix) => `${p.v6 ? 6 : 4}:${p.addr.toString(16)}/${p.len}`;
    const sig = JSON.stringify(union.map((b) => [text(b), ...b.except.map(text)]).sort());
    let id = this.#csets.get(sig);
    if (id !== undefined) return id;
    id = this.#csets.size + 1;
    this.#csets.set(sig, id);
    const prefixes = new Map<string, Prefix>();
    for (const b of union) for (const p of [b, ...b.except]) prefixes.set(text(p), p);
    for (const p of prefixes.values()) this.entries.push([peerKey(id, p), value(allowedIn(p, union) ? 1 : 0)]);
    return id;
  }

  private classValue(rules: Rule[]): Buffer {
    if (rules.some((r) => r.anyPeer)) return value(0, ANY_PEER);
    return value(this.peerSet(rules), 0);
  }

  /** The id of a rule set (its port classes made once). */
  ruleSet(rules: Rule[]): number {
    const sig = JSON.stringify(rules, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v));
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
    const inSet = ingress.length ? b.ruleSet(rulesOf(input, ingress, 'ingress', pod)) : 0;
    const outSet = egress.length ? b.ruleSet(rulesOf(input, egress, 'egress', pod)) : 0;
    const idOf = (p: NetworkPolicy | undefined) => (p ? (ids.get(policyName(p)) ?? 0) : 0);
    b.entries.push([podKey(pod.cgroupId), value(inSet, outSet, flags, idOf(ingress[0]), idOf(egress[0]), gen)]);
  }
  return { gen, entries: b.entries, selected, ruleSets: b.ruleSets, peerSets: b.peerSets };
}
