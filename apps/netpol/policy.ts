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
//     - { namespace: shop, name: web-1, labels: { app: web }, ip: 10.1.0.5, cgroup: /sys/fs/cgroup/unified/pods/web-1 }
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
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
  /** a number; named ports are not supported (pods are declared without their container ports) */
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

/** Everything one generation is compiled from. */
export interface PolicyInput {
  policies: NetworkPolicy[];
  pods: PodIdentity[];
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

/** A CIDR's address and length, checked (IPv4 only: netpol enforces IPv4). */
export function parseCidr(c: string, where: string): { addr: number; len: number } {
  const [ip, lenS, extra] = c.split('/');
  const len = Number(lenS);
  if (extra !== undefined || !ip || !isIPv4(ip) || lenS === undefined || !Number.isInteger(len) || len < 0 || len > 32)
    throw new InvalidError(`${where}: not an IPv4 CIDR: ${JSON.stringify(c)} (netpol enforces IPv4 only)`);
  const addr = ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { addr: (addr & mask) >>> 0, len };
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
        const within = x.len >= c.len && (c.len === 0 || x.addr >>> (32 - c.len) === c.addr >>> (32 - c.len));
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
    if (typeof p.port === 'string')
      throw new InvalidError(`${at}.port: named port ${JSON.stringify(p.port)} is not supported (give the number)`);
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
  return { policies, namespaces, pods: d.pods === undefined ? [] : parsePodIdentities(d, where) };
}

export function readPolicyFile(file: string): PolicyInput {
  return parsePolicyFile(parse(readFileSync(file, 'utf8')), file);
}
