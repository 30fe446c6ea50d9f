// Which pod an address or a cgroup belongs to, for naming flow endpoints: from pod declarations
// standalone (apps/shared/pods.ts), from Pod objects in a cluster (podIdentityOf). A pod removed
// is forgotten at once; `onRemove` listeners (the metrics) drop what they keep of it.
import { statSync } from 'node:fs';
import { type PodIdentity, workloadOf } from '../shared/pods.js';
import type { Endpoint } from './flow.js';

export class Identities {
  readonly #byIp = new Map<string, PodIdentity>();
  readonly #byCgroup = new Map<string, PodIdentity>();
  readonly #pods = new Map<string, PodIdentity>();
  readonly #onRemove = new Set<(pod: PodIdentity) => void>();

  constructor(pods: readonly PodIdentity[] = []) {
    for (const p of pods) this.set(p);
  }

  /** Adds or replaces a pod (by namespace/name). */
  set(pod: PodIdentity): void {
    const key = `${pod.namespace}/${pod.name}`;
    const old = this.#pods.get(key);
    if (old) this.unindex(old);
    this.#pods.set(key, pod);
    if (pod.ip) this.#byIp.set(pod.ip, pod);
    if (pod.ip6) this.#byIp.set(pod.ip6, pod);
    const id = cgroupIdOf(pod.cgroup);
    if (id !== undefined) this.#byCgroup.set(id, pod);
  }

  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const pod = this.#pods.get(key);
    if (!pod) return;
    this.#pods.delete(key);
    this.unindex(pod);
    for (const f of this.#onRemove) f(pod);
  }

  /** Makes the set exactly `pods` (removed ones are reported to onRemove). */
  replaceAll(pods: readonly PodIdentity[]): void {
    const keep = new Set(pods.map((p) => `${p.namespace}/${p.name}`));
    for (const [key, p] of [...this.#pods]) if (!keep.has(key)) this.remove(p.namespace, p.name);
    for (const p of pods) this.set(p);
  }

  onRemove(f: (pod: PodIdentity) => void): () => void {
    this.#onRemove.add(f);
    return () => this.#onRemove.delete(f);
  }

  list(): PodIdentity[] {
    return [...this.#pods.values()];
  }

  /** The pod of a local socket's cgroup (its id as the kernel reports it), else of the address. */
  lookup(ip: string, cgroupId?: string): PodIdentity | undefined {
    return (cgroupId !== undefined ? this.ofCgroup(cgroupId) : undefined) ?? this.#byIp.get(ip);
  }

  /** The pod whose cgroup has this id. */
  ofCgroup(cgroupId: string): PodIdentity | undefined {
    return this.#byCgroup.get(cgroupId);
  }

  private unindex(pod: PodIdentity): void {
    if (pod.ip && this.#byIp.get(pod.ip) === pod) this.#byIp.delete(pod.ip);
    if (pod.ip6 && this.#byIp.get(pod.ip6) === pod) this.#byIp.delete(pod.ip6);
    for (const [id, p] of this.#byCgroup) if (p === pod) this.#byCgroup.delete(id);
  }
}

/** A cgroup v2 directory's id is its inode number (what bpf_skb_cgroup_id returns). */
function cgroupIdOf(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return String(statSync(path).ino);
  } catch {
    return undefined;
  }
}

export function endpointOf(pod: PodIdentity | undefined): Endpoint {
  if (!pod) return {};
  return {
    namespace: pod.namespace,
    pod_name: pod.name,
    labels: Object.entries(pod.labels).map(([k, v]) => `${k}=${v}`),
    workload: workloadOf(pod),
  };
}
