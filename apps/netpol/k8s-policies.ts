import * as k8s from '@kubernetes/client-node';
import type { ObjectMeta } from '../../src/k8s/api.js';
import { connect, errorText, type Kube } from '../../src/k8s/kube.js';
import { Store } from '../../src/k8s/runtime/store.js';
import { apiListWatch, Watcher } from '../../src/k8s/runtime/watcher.js';
import { type CgroupResolver, kubeletCgroupResolver, type PodObject } from '../mesh-accel/k8s-pods.js';
import { cgroupId } from '../mesh-accel/mesh.js';
import { podIdentityOf } from '../shared/pods.js';
import { podWatcherArgs, runAsScript, stopOnSignals, untilReconciled } from '../shared/watcher-process.js';
import type { LocalPod } from './compile.js';
import { type Applied, NetpolMaps } from './netpol.js';
import {
  type ContainerPort,
  checkPolicy,
  type NetpolPod,
  type NetworkPolicy,
  type PolicyInput,
  PROTOCOLS,
  type Protocol,
  policyName,
} from './policy.js';

type Obj<T> = T & { metadata: ObjectMeta };
type PodObj = Obj<
  PodObject & {
    metadata: { labels?: Record<string, string> };
    spec?: { containers?: { name: string; ports?: { name?: string; containerPort?: number; protocol?: string }[] }[] };
  }
>;
type NamespaceObj = Obj<{ metadata: { labels?: Record<string, string> } }>;

export interface NetpolWatcherOptions {
  kube: Kube;
  nodeName: string;
  maps: NetpolMaps;
  /** how a local pod's cgroup is found (default: kubelet's layout under the usual kubepods roots) */
  resolveCgroup?: CgroupResolver;
  /** how often pending pods are looked at again (default 100 ms) */
  retryMs?: number;
  log?: (msg: string) => void;
}

const DEFAULT_ROOTS = [
  '/sys/fs/cgroup/kubepods.slice',
  '/sys/fs/cgroup/kubepods',
  '/sys/fs/cgroup/unified/kubepods.slice',
  '/sys/fs/cgroup/unified/kubepods',
];

/** @kubernetes/client-node's objects (a list's items) call an ingress rule's `from` `_from`. */
function withFrom(raw: unknown): unknown {
  const p = raw as { spec?: { ingress?: Record<string, unknown>[] } };
  if (!p?.spec?.ingress?.some((r) => r && '_from' in r)) return raw;
  const ingress = p.spec.ingress.map(({ _from, ...r }) => (_from !== undefined ? { ...r, from: _from } : r));
  return { ...p, spec: { ...p.spec, ingress } };
}

/** A Pod's container ports (what its policies' named ports resolve to), the valid ones. */
export function containerPorts(pod: PodObj): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const c of pod.spec?.containers ?? [])
    for (const p of c.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP') as Protocol;
      if (typeof p.containerPort !== 'number' || !(protocol in PROTOCOLS)) continue;
      out.push({ containerPort: p.containerPort, protocol, ...(p.name ? { name: p.name } : {}) });
    }
  return out;
}

/** A policy as netpol enforces it: checked, or (when it cannot be) selecting its pods with no rule. */
export function enforceable(object: unknown): { policy: NetworkPolicy; problem?: string } {
  const raw = withFrom(object);
  try {
    return { policy: checkPolicy(raw, 'NetworkPolicy') };
  } catch (e) {
    const p = raw as NetworkPolicy;
    const types = p.spec?.policyTypes?.length
      ? p.spec.policyTypes
      : ['Ingress' as const, ...((p.spec?.egress?.length ?? 0) > 0 ? ['Egress' as const] : [])];
    return {
      policy: {
        metadata: { name: p.metadata?.name ?? '', namespace: p.metadata?.namespace ?? 'default' },
        spec: { podSelector: p.spec?.podSelector ?? {}, policyTypes: types, ingress: [], egress: [] },
      },
      problem: (e as Error).message,
    };
  }
}

/** Keeps an instance's policy generation equal to what the API server says. */
export class NetpolWatcher {
  /** local pods (namespace/name) waiting for their cgroup */
  readonly pending = new Map<string, string>();
  /** policies (namespace/name) that cannot be enforced as written, with why */
  readonly invalid = new Map<string, string>();
  /** the last generation applied */
  applied?: Applied;
  readonly #policies = new Store<Obj<NetworkPolicy>>();
  readonly #pods = new Store<PodObj>();
  readonly #namespaces = new Store<NamespaceObj>();
  readonly #watchers: Watcher<{ metadata: ObjectMeta }>[];
  readonly #resolve: CgroupResolver;
  readonly #cgroups = new Map<string, { uid: string; path: string; id: bigint }>();
  #scheduled = false;
  #timer?: NodeJS.Timeout;
  #stopped = false;
  #started = false;
  #listeners = new Set<() => void>();

  constructor(readonly opts: NetpolWatcherOptions) {
    this.#resolve = opts.resolveCgroup ?? kubeletCgroupResolver(DEFAULT_ROOTS);
    const net = opts.kube.kc.makeApiClient(k8s.NetworkingV1Api);
    const watch = <T extends { metadata: ObjectMeta }>(
      what: string,
      path: string,
      store: Store<T>,
      list: () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }>,
    ) =>
      new Watcher<T>(
        apiListWatch(opts.kube, {
          path,
          list: async () => {
            const r = await list();
            return { items: r.items as T[], resourceVersion: r.metadata?.resourceVersion ?? '' };
          },
        }),
        (e) => {
          if (store.apply(e).length > 0) this.schedule();
        },
        { what, ...(opts.log ? { log: opts.log } : {}) },
      ) as unknown as Watcher<{ metadata: ObjectMeta }>;
    this.#watchers = [
      watch('networkpolicies', '/apis/networking.k8s.io/v1/networkpolicies', this.#policies, () =>
        net.listNetworkPolicyForAllNamespaces(),
      ),
      watch('pods', '/api/v1/pods', this.#pods, () => opts.kube.core.listPodForAllNamespaces()),
      watch('namespaces', '/api/v1/namespaces', this.#namespaces, () => opts.kube.core.listNamespace()),
    ];
  }

  /** Resolves once the first lists are applied. */
  async start(): Promise<void> {
    await Promise.all(this.#watchers.map((w) => w.start()));
    this.#started = true;
    this.reconcile();
  }

  /** Stops watching; the instance keeps the last generation (its `rm` removes it). */
  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers) w.stop();
    if (this.#timer) clearTimeout(this.#timer);
  }

  onReconcile(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  private schedule(): void {
    if (!this.#started || this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.reconcile();
    });
  }

  /** The input the API server's objects make now, with this node's pods and their cgroups. */
  input(): { input: PolicyInput; local: LocalPod[] } {
    this.invalid.clear();
    this.pending.clear();
    const policies: NetworkPolicy[] = [];
    for (const p of this.#policies.values()) {
      const { policy, problem } = enforceable(p);
      if (problem) this.invalid.set(policyName(policy), problem);
      policies.push(policy);
    }
    const namespaces = [...this.#namespaces.values()].map((n) => ({
      name: n.metadata.name ?? '',
      labels: n.metadata.labels ?? {},
    }));
    const pods: NetpolPod[] = [];
    const local: LocalPod[] = [];
    for (const pod of this.#pods.values()) {
      if (pod.spec?.hostNetwork || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      const ports = containerPorts(pod);
      const id: NetpolPod = { ...podIdentityOf(pod), ...(ports.length ? { ports } : {}) };
      if (!id.ip && !id.ip6) continue;
      pods.push(id);
      if (pod.spec?.nodeName !== this.opts.nodeName) continue;
      const key = `${id.namespace}/${id.name}`;
      const uid = pod.metadata.uid ?? '';
      let cg = this.#cgroups.get(key);
      if (!cg || cg.uid !== uid) {
        const path = this.#resolve(pod);
        let id: bigint | undefined;
        try {
          id = path ? cgroupId(path) : undefined;
        } catch {
          id = undefined; // gone again between finding and reading it
        }
        if (!path || id === undefined) {
          this.pending.set(key, 'no cgroup yet');
          continue;
        }
        cg = { uid, path, id };
        this.#cgroups.set(key, cg);
      }
      local.push({ ...id, cgroup: cg.path, cgroupId: cg.id });
    }
    return { input: { policies, namespaces, pods }, local };
  }

  /** Applies a new generation (synchronous: compile + map updates). */
  reconcile(): void {
    if (this.#stopped) return;
    const { input, local } = this.input();
    try {
      this.applied = this.opts.maps.apply(input, local);
      this.opts.log?.(
        `netpol: generation ${this.applied.gen}: ${input.policies.length} policies, ${this.applied.pods} pod(s) selected`,
      );
    } catch (e) {
      this.opts.log?.(`netpol: apply failed: ${errorText(e)}`);
    }
    if (this.pending.size && !this.#timer && !this.#stopped) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.reconcile();
      }, this.opts.retryMs ?? 100);
    }
    for (const fn of this.#listeners) fn();
  }

  /** Waits until pred holds after a reconcile (or now). */
  until(pred: (w: NetpolWatcher) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    return untilReconciled(
      (fn) => this.onReconcile(fn),
      () => pred(this),
      timeoutMs,
      () => `netpol: timed out waiting for ${what}; pending: ${JSON.stringify([...this.pending])}`,
    );
  }
}

export async function main(argv: string[]): Promise<void> {
  const { node, kubeconfig, instance, bpffs, cgroupRoots } = podWatcherArgs(argv, 'netpol');
  const maps = NetpolMaps.ofInstance(bpffs, instance);
  const w = new NetpolWatcher({
    kube: connect(kubeconfig),
    nodeName: node,
    maps,
    resolveCgroup: cgroupRoots.length ? kubeletCgroupResolver(cgroupRoots) : undefined,
    log: (m) => process.stderr.write(`${m}\n`),
  });
  await w.start();
  stopOnSignals(w, maps);
}

runAsScript(import.meta.url, 'netpol k8s-policies', main);
