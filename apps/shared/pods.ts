// Pod identities declared standalone (no API server): which address and cgroup belong to which
// namespace/pod with which labels. flow-monitor names flow endpoints with them, netpol selects pods
// with them, service-lb places backends on nodes and zones with them. In a cluster the same
// identities come from Pod objects (podIdentityOf).
//
//   pods:
//     - { namespace: default, name: web-7d4b9, labels: { app: web }, ip: 10.1.0.5, cgroup: /sys/fs/cgroup/unified/pods/web, node: n1 }
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { parse } from 'yaml';
import { InvalidError } from '../../src/errors.js';

export interface PodIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip?: string;
  ip6?: string;
  /** the pod's cgroup v2 directory */
  cgroup?: string;
  node?: string;
  zone?: string;
  /** the owning workload; defaults to the name without a ReplicaSet/pod hash suffix */
  workload?: string;
}

/** `web-7d4b9c6f5-x2x9k` -> `web`, `db-0` -> `db`, `plain` -> `plain` (Hubble's workload guess). */
export function workloadOf(pod: Pick<PodIdentity, 'name' | 'workload'>): string {
  if (pod.workload) return pod.workload;
  const n = pod.name;
  const rs = /^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$/.exec(n);
  if (rs) return rs[1]!;
  const sts = /^(.+)-\d+$/.exec(n);
  if (sts) return sts[1]!;
  return n;
}

export function parsePodIdentities(doc: unknown, where: string): PodIdentity[] {
  const pods = (doc as { pods?: unknown } | null)?.pods;
  if (!Array.isArray(pods)) throw new InvalidError(`${where}: expected a top-level "pods:" list`);
  return pods.map((p, i) => {
    const o = (p ?? {}) as Record<string, unknown>;
    const at = `${where}: pods[${i}]`;
    if (typeof o.name !== 'string' || o.name === '') throw new InvalidError(`${at}: needs a name`);
    const labels = (o.labels ?? {}) as Record<string, unknown>;
    if (typeof labels !== 'object' || Array.isArray(labels)) throw new InvalidError(`${at}: labels must be a map`);
    for (const [k, v] of Object.entries(labels))
      if (typeof v !== 'string') throw new InvalidError(`${at}: label ${k} must be a string`);
    if (o.ip !== undefined && !(typeof o.ip === 'string' && isIPv4(o.ip)))
      throw new InvalidError(`${at}: ip must be an IPv4 address`);
    if (o.ip6 !== undefined && !(typeof o.ip6 === 'string' && isIPv6(o.ip6)))
      throw new InvalidError(`${at}: ip6 must be an IPv6 address`);
    const str = (k: string): string | undefined => {
      const v = o[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw new InvalidError(`${at}: ${k} must be a string`);
      return v;
    };
    return {
      namespace: str('namespace') ?? 'default',
      name: o.name,
      labels: labels as Record<string, string>,
      ip: str('ip'),
      ip6: str('ip6'),
      cgroup: str('cgroup'),
      node: str('node'),
      zone: str('zone'),
      workload: str('workload'),
    };
  });
}

export function readPodIdentities(file: string): PodIdentity[] {
  return parsePodIdentities(parse(readFileSync(file, 'utf8')), file);
}

/** The identity of a Pod object (metadata + status.podIPs + spec.nodeName). */
export function podIdentityOf(pod: {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: { podIP?: string; podIPs?: Array<{ ip?: string }> };
}): PodIdentity {
  const ips = [pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((x) => x.ip)].filter(
    (x): x is string => typeof x === 'string',
  );
  return {
    namespace: pod.metadata?.namespace ?? 'default',
    name: pod.metadata?.name ?? '',
    labels: pod.metadata?.labels ?? {},
    ip: ips.find((x) => isIPv4(x)),
    ip6: ips.find((x) => isIPv6(x)),
    node: pod.spec?.nodeName,
  };
}
