// netpol's input: Kubernetes NetworkPolicy objects (networking.k8s.io/v1, the fields netpol
// enforces), the pods they select and the namespaces' labels, checked as the API server would.
// The same shapes come from a YAML file standalone and from the API server in a cluster.
//
//   policies:
//     - metadata: { name: web-ingress, namespace: shop }
//       spec:
//         podSelector: { matchLabels: { app: web } }
//         policyTypes: [Ingress]
//         ingress:
//           - from: [{ podSelector: { matchLabels: { app: client } } }]
//             ports: [{ protocol: TCP, port: 80 }]
//   namespaces:
//     - { name: shop, labels: { team: a } }
//   pods:
//     - { namespace: shop, name: web-1, labels: { app: web }, ip: 10.1.0.5, ip6: fd00::5,
//         cgroup: /sys/fs/cgroup/unified/pods/web-1, ports: [{ name: http, containerPort: 8080 }] }
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parse } from 'yaml';
import { InvalidError } from '../../src/errors.js';
import { type PodIdentity, parsePodIdentities } from '../shared/pods.js';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NetworkPolicyPort {
  protocol?: Protocol;
  /** a number, or the name of a container port of the pods (resolved as Kubernetes does) */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicy {
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: Array<'Ingress' | 'Egress'>;
    ingress?: NetworkPolicyIngressRule[];
    egress?: NetworkPolicyEgressRule[];
  };
}

export interface NamespaceIdentity {
  name: string;
  labels: Record<string, string>;
}

/** A container port of a pod (what a named port in a policy resolves to). */
export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: Protocol;
}

/** A pod as netpol sees it: its identity and its containers' ports. */
export interface NetpolPod extends PodIdentity {
  ports?: ContainerPort[];
}

/** Everything one generation is compiled from. */
export interface PolicyInput {
  policies: NetworkPolicy[];
  pods: NetpolPod[];
  namespaces: NamespaceIdentity[];
}

export const PROTOCOLS: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export function policyName(p: NetworkPolicy): string {
  return `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
}

/** The policy's types as Kubernetes defaults them: Ingress always, Egress when it has egress rules. */
export function policyTypes(p: NetworkPolicy): { ingress: boolean; egress: boolean } {
  const t = p.spec.policyTypes;
  if (t && t.length > 0) return { ingress: t.includes('Ingress'), egress: t.includes('Egress') };
  return { ingress: true, egress: (p.spec.egress?.length ?? 0) > 0 };
}

/** Label selector semantics: every matchLabels pair and every expression must hold; {} selects all. */
export function matches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Kubernetes labels every namespace with its name; declared labels add to that. */
export function namespaceLabels(input: Pick<PolicyInput, 'namespaces'>, ns: string): Record<string, string> {
  const declared = input.namespaces.find((n) => n.name === ns)?.labels ?? {};
  return { 'kubernetes.io/metadata.name': ns, ...declared };
}

/** An IPv4 or IPv6 prefix: the address as a number of 32 or 128 bits (host bits zero), its length. */
export interface Cidr {
  v6: boolean;
  addr: bigint;
  len: number;
}

function ipBits(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (v4) {
    const n = ipBits(v4[1]!);
    text = `${ip.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const words = (part: string | undefined) => (part ? part.split(':') : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.reduce((a, w) => (a << 16n) | BigInt(Number.parseInt(w, 16)), 0n);
}

/** An address as a host prefix (/32, /128). */
export function parseIp(ip: string): Cidr {
  if (isIPv4(ip)) return { v6: false, addr: ipBits(ip), len: 32 };
  if (isIPv6(ip)) return { v6: true, addr: ipBits(ip), len: 128 };
  throw new InvalidError(`not an IP address: ${JSON.stringify(ip)}`);
}

/** A CIDR (IPv4 or IPv6), checked; its host bits cleared as the API server's masking does. */
export function parseCidr(c: string, where: string): Cidr {
  const [ip, lenS, extra] = c.split('/');
  const len = Number(lenS);
  const v6 = !!ip && isIPv6(ip);
  const max = v6 ? 128 : 32;
  if (
    extra !== undefined ||
    !ip ||
    !(v6 || isIPv4(ip)) ||
    lenS === undefined ||
    !/^\d+$/.test(lenS) ||
    !Number.isInteger(len) ||
    len < 0 ||
    len > max
  )
    throw new InvalidError(`${where}: not an IPv4 or IPv6 CIDR: ${JSON.stringify(c)}`);
  const shift = BigInt(max - len);
  return { v6, addr: (ipBits(ip) >> shift) << shift, len };
}

/** Kubernetes' IANA_SVC_NAME: what a named port may be. */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function isPortName(n: string): boolean {
  return n.length <= 15 && PORT_NAME.test(n) && !n.includes('--');
}

function checkSelector(sel: unknown, where: string): void {
  if (sel === undefined || sel === null) return;
  if (typeof sel !== 'object' || Array.isArray(sel)) throw new InvalidError(`${where}: must be a label selector`);
  const s = sel as LabelSelector;
  for (const [k, v] of Object.entries(s.matchLabels ?? {}))
    if (typeof v !== 'string') throw new InvalidError(`${where}.matchLabels.${k}: must be a string`);
  for (const [i, e] of (s.matchExpressions ?? []).entries()) {
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e?.operator))
      throw new InvalidError(`${where}.matchExpressions[${i}]: unknown operator ${JSON.stringify(e?.operator)}`);
    if ((e.operator === 'In' || e.operator === 'NotIn') && !(e.values?.length ?? 0))
      throw new InvalidError(`${where}.matchExpressions[${i}]: ${e.operator} needs values`);
  }
}

function checkPeers(peers: NetworkPolicyPeer[] | undefined, where: string): void {
  for (const [i, p] of (peers ?? []).entries()) {
    const at = `${where}[${i}]`;
    if (p.ipBlock) {
      if (p.podSelector || p.namespaceSelector)
        throw new InvalidError(`${at}: ipBlock cannot be combined with a pod or namespace selector`);
      const c = parseCidr(p.ipBlock.cidr, `${at}.ipBlock.cidr`);
      for (const [j, e] of (p.ipBlock.except ?? []).entries()) {
        const x = parseCidr(e, `${at}.ipBlock.except[${j}]`);
        const shift = BigInt((c.v6 ? 128 : 32) - c.len);
        const within = x.v6 === c.v6 && x.len >= c.len && x.addr >> shift === c.addr >> shift;
        if (!within) throw new InvalidError(`${at}.ipBlock.except[${j}]: ${e} is not within ${p.ipBlock.cidr}`);
      }
    } else if (!p.podSelector && !p.namespaceSelector) {
      throw new InvalidError(`${at}: needs podSelector, namespaceSelector or ipBlock`);
    }
    checkSelector(p.podSelector, `${at}.podSelector`);
    checkSelector(p.namespaceSelector, `${at}.namespaceSelector`);
  }
}

function checkPorts(ports: NetworkPolicyPort[] | undefined, where: string): void {
  for (const [i, p] of (ports ?? []).entries()) {
    const at = `${where}[${i}]`;
    if (p.protocol !== undefined && !(p.protocol in PROTOCOLS))
      throw new InvalidError(`${at}.protocol: ${JSON.stringify(p.protocol)} (TCP, UDP or SCTP)`);
    if (typeof p.port === 'string') {
      if (!isPortName(p.port))
        throw new InvalidError(`${at}.port: ${JSON.stringify(p.port)} is neither a port number nor a port name`);
      if (p.endPort !== undefined) throw new InvalidError(`${at}.endPort: not with a named port (${p.port})`);
      continue;
    }
    if (p.port !== undefined && !(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535))
      throw new InvalidError(`${at}.port: ${p.port} is not a port`);
    if (p.endPort !== undefined) {
      if (p.port === undefined) throw new InvalidError(`${at}.endPort: needs port`);
      if (!(Number.isInteger(p.endPort) && p.endPort >= p.port && p.endPort <= 65535))
        throw new InvalidError(`${at}.endPort: ${p.endPort} must be a port >= port (${p.port})`);
    }
  }
}

/** Checks one policy (throws InvalidError naming the field); answers it with defaults filled in. */
export function checkPolicy(raw: unknown, where: string): NetworkPolicy {
  const p = raw as NetworkPolicy;
  const name = p?.metadata?.name;
  if (typeof name !== 'string' || name === '') throw new InvalidError(`${where}: needs metadata.name`);
  const at = `${where} (${p.metadata.namespace ?? 'default'}/${name})`;
  if (!p.spec || typeof p.spec !== 'object') throw new InvalidError(`${at}: needs spec`);
  checkSelector(p.spec.podSelector, `${at}: spec.podSelector`);
  for (const t of p.spec.policyTypes ?? [])
    if (t !== 'Ingress' && t !== 'Egress') throw new InvalidError(`${at}: spec.policyTypes: unknown type ${t}`);
  for (const [i, r] of (p.spec.ingress ?? []).entries()) {
    checkPeers(r.from, `${at}: spec.ingress[${i}].from`);
    checkPorts(r.ports, `${at}: spec.ingress[${i}].ports`);
  }
  for (const [i, r] of (p.spec.egress ?? []).entries()) {
    checkPeers(r.to, `${at}: spec.egress[${i}].to`);
    checkPorts(r.ports, `${at}: spec.egress[${i}].ports`);
  }
  return {
    metadata: { name, namespace: p.metadata.namespace ?? 'default' },
    spec: { ...p.spec, podSelector: p.spec.podSelector ?? {} },
  };
}

/** A policy file: `policies:` (NetworkPolicy objects), `pods:` (apps/shared/pods.ts), `namespaces:`. */
export function parsePolicyFile(doc: unknown, where: string): PolicyInput {
  const d = (doc ?? {}) as { policies?: unknown; namespaces?: unknown; pods?: unknown };
  if (d.policies !== undefined && !Array.isArray(d.policies))
    throw new InvalidError(`${where}: "policies:" must be a list`);
  if (d.namespaces !== undefined && !Array.isArray(d.namespaces))
    throw new InvalidError(`${where}: "namespaces:" must be a list`);
  const policies = (d.policies ?? []).map((p, i) => checkPolicy(p, `${where}: policies[${i}]`));
  const names = new Set<string>();
  for (const p of policies) {
    if (names.has(policyName(p))) throw new InvalidError(`${where}: policy ${policyName(p)} is given twice`);
    names.add(policyName(p));
  }
  const namespaces = ((d.namespaces ?? []) as { name?: unknown; labels?: unknown }[]).map((n, i) => {
    if (typeof n?.name !== 'string') throw new InvalidError(`${where}: namespaces[${i}]: needs a name`);
    return { name: n.name, labels: (n.labels ?? {}) as Record<string, string> };
  });
  const ids = d.pods === undefined ? [] : parsePodIdentities(d, where);
  const pods = ids.map((id, i) => {
    const ports = checkContainerPorts((d.pods as { ports?: unknown }[])[i]?.ports, `${where}: pods[${i}].ports`);
    return ports ? { ...id, ports } : id;
  });
  return { policies, namespaces, pods };
}

/** A pod's container ports (Pod spec.containers[].ports, or a policy file's `pods[].ports`), checked. */
export function checkContainerPorts(raw: unknown, where: string): ContainerPort[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw new InvalidError(`${where}: must be a list`);
  return raw.map((x, i) => {
    const c = (x ?? {}) as { name?: unknown; containerPort?: unknown; protocol?: unknown };
    const at = `${where}[${i}]`;
    const n = c.containerPort;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
      throw new InvalidError(`${at}.containerPort: ${JSON.stringify(n)} is not a port`);
    if (c.protocol !== undefined && !(typeof c.protocol === 'string' && c.protocol in PROTOCOLS))
      throw new InvalidError(`${at}.protocol: ${JSON.stringify(c.protocol)} (TCP, UDP or SCTP)`);
    if (c.name !== undefined && !(typeof c.name === 'string' && isPortName(c.name)))
      throw new InvalidError(`${at}.name: ${JSON.stringify(c.name)} is not a port name`);
    return {
      containerPort: n,
      ...(c.name !== undefined ? { name: c.name as string } : {}),
      ...(c.protocol !== undefined ? { protocol: c.protocol as Protocol } : {}),
    };
  });
}

export function readPolicyFile(file: string): PolicyInput {
  return parsePolicyFile(parse(readFileSync(file, 'utf8')), file);
}
