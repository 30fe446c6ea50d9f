// mesh-accel in cluster mode: which pods on this node are in the mesh, learnt from the Kubernetes
// API (list + watch of the node's pods through @kubernetes/client-node), and declared into a
// running instance's maps (MeshMaps.declarePod) as soon as the pod's IP and cgroup are known —
// before anything in the pod's cgroup connects, so its first request is meshed.
//
//   node dist/apps/mesh-accel/k8s-pods.js --node NAME [--kubeconfig FILE] [--instance mesh]
//        [--bpffs /sys/fs/bpf/kbpf] [--cgroup-root /sys/fs/cgroup/kubepods.slice]...
//
// A pod is in a mesh when it carries that mesh's sidecar (meshOfPod):
//   istio    annotation sidecar.istio.io/status, or a container named istio-proxy
//   linkerd  annotation linkerd.io/proxy-version, or a container named linkerd-proxy
//   kuma     annotation kuma.io/sidecar-injected: "true", or a container named kuma-sidecar
// Its settings come from the mesh's own per-pod annotations (podSpecOf; see ANNOTATIONS).
//
// The pod's cgroup (what the kernel sees when the pod's processes connect) is found the way
// kubelet lays cgroups out, by the pod's uid (kubeletCgroupResolver):
//   cgroupfs driver  <root>/[besteffort|burstable/]pod<uid>
//   systemd driver   <root>/kubepods[-<qos>].slice/kubepods[-<qos>]-pod<uid with _ for ->.slice
// The kubelet creates that directory when it starts the pod sandbox, after the API server shows
// the pod on the node; the watcher keeps such pods pending and looks again every retryMs.
import { type Dirent, existsSync, readdirSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, join } from 'node:path';
import type { ObjectMeta } from '../../src/k8s/api.js';
import { connect, errorText, type Kube } from '../../src/k8s/kube.js';
import { Store } from '../../src/k8s/runtime/store.js';
import { apiListWatch, Watcher } from '../../src/k8s/runtime/watcher.js';
import { podWatcherArgs, runAsScript, stopOnSignals, untilReconciled } from '../shared/watcher-process.js';
import { MAX_CIDRS, MAX_PORTS, MeshMaps, type MeshMode, type PodSpec } from './mesh.js';

export const ANNOTATIONS = {
  istioStatus: 'sidecar.istio.io/status',
  istioIncludeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  istioExcludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  istioIncludeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  istioExcludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  istioIncludeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  istioExcludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  istioProxyConfig: 'proxy.istio.io/config',
  linkerdVersion: 'linkerd.io/proxy-version',
  linkerdSkipOutboundPorts: 'config.linkerd.io/skip-outbound-ports',
  linkerdSkipInboundPorts: 'config.linkerd.io/skip-inbound-ports',
  linkerdSkipSubnets: 'config.linkerd.io/skip-subnets',
  linkerdProxyUid: 'config.linkerd.io/proxy-uid',
  kumaInjected: 'kuma.io/sidecar-injected',
  kumaExcludeOutboundPorts: 'traffic.kuma.io/exclude-outbound-ports',
  kumaExcludeInboundPorts: 'traffic.kuma.io/exclude-inbound-ports',
  kumaExcludeOutboundIPs: 'traffic.kuma.io/exclude-outbound-ips',
  /** mesh-accel's own opt-out: "false" keeps a meshed pod on the mesh's iptables path */
  optOut: 'mesh-accel.kbpf.io/enabled',
  /** explicit cgroup (only honoured with annotationCgroups, see MeshPodWatcherOptions) */
  cgroup: 'mesh-accel.kbpf.io/cgroup',
} as const;

/** The parts of a Pod this file reads (the client's V1Pod or a watch event's plain JSON). */
export interface PodObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
    resourceVersion?: string;
  };
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers?: { name: string }[];
    initContainers?: { name: string }[];
  };
  status?: { phase?: string; podIP?: string; podIPs?: { ip: string }[] };
}

function containers(pod: PodObject): string[] {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
}

/** The mesh whose sidecar the pod carries, or null. */
export function meshOfPod(pod: PodObject): MeshMode | null {
  const a = pod.metadata?.annotations ?? {};
  const c = containers(pod);
  if (a[ANNOTATIONS.istioStatus] !== undefined || c.includes('istio-proxy')) return 'istio';
  if (a[ANNOTATIONS.linkerdVersion] !== undefined || c.includes('linkerd-proxy')) return 'linkerd';
  if (a[ANNOTATIONS.kumaInjected] === 'true' || c.includes('kuma-sidecar')) return 'kuma';
  return null;
}

/** "80,8080", "4567-4569" (linkerd ranges), " 53 " -> ports; at most MAX_PORTS. */
export function parsePorts(v: string, what: string): number[] {
  const out: number[] = [];
  for (const part of v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`${what}: not a port or port range: ${JSON.stringify(part)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || hi < lo) throw new Error(`${what}: bad port range ${part}`);
    if (out.length + (hi - lo + 1) > MAX_PORTS)
      throw new Error(
        `${what}: mesh-accel supports at most ${MAX_PORTS} ports per list (got ${part} in ${JSON.stringify(v)})`,
      );
    for (let p = lo; p <= hi; p++) out.push(p);
  }
  return out;
}

/** "10.0.0.0/8, 192.168.1.1, fd00::/8" -> CIDRs (at most MAX_CIDRS of each family). */
export function parseCidrs(v: string, what: string): string[] {
  const out = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const [fam, n] of [
    ['IPv4', out.filter((c) => !c.includes(':')).length],
    ['IPv6', out.filter((c) => c.includes(':')).length],
  ] as const) {
    if (n > MAX_CIDRS)
      throw new Error(`${what}: mesh-accel supports at most ${MAX_CIDRS} ${fam} ranges per list (got ${n})`);
  }
  return out;
}

function podIPs(pod: PodObject): string[] {
  return [...(pod.status?.podIPs ?? []).map((x) => x.ip), pod.status?.podIP].filter((x): x is string => !!x);
}

/** The pod's IPv4 address (status.podIPs, then status.podIP). */
export function podIPv4(pod: PodObject): string | undefined {
  return podIPs(pod).find((ip) => isIPv4(ip));
}

/** The pod's IPv6 address on a dual-stack cluster (status.podIPs). */
export function podIPv6(pod: PodObject): string | undefined {
  return podIPs(pod).find((ip) => isIPv6(ip));
}

/**
 * The pod's mesh-accel settings from the mesh's own annotations (without ip / cgroup).
 * Throws with the annotation's name when a value cannot be represented.
 */
export function podSettingsOf(pod: PodObject, mode: MeshMode): Omit<PodSpec, 'ip' | 'cgroup'> {
  const a = pod.metadata?.annotations ?? {};
  const spec: Omit<PodSpec, 'ip' | 'cgroup'> = { mode };
  const ports = (k: string) => (a[k] !== undefined ? parsePorts(a[k]!, k) : undefined);
  const cidrs = (k: string) => (a[k] !== undefined ? parseCidrs(a[k]!, k) : undefined);
  if (mode === 'istio') {
    const incIp = a[ANNOTATIONS.istioIncludeOutboundIPRanges];
    if (incIp !== undefined && incIp.trim() === '')
      spec.settings = { ...spec.settings, outboundPort: 0 }; // "" = no outbound capture
    else if (incIp !== undefined && incIp.trim() !== '*')
      spec.includeOutboundCidrs = cidrs(ANNOTATIONS.istioIncludeOutboundIPRanges);
    spec.excludeOutboundCidrs = cidrs(ANNOTATIONS.istioExcludeOutboundIPRanges);
    spec.excludeOutboundPorts = ports(ANNOTATIONS.istioExcludeOutboundPorts);
    spec.includeOutboundPorts = ports(ANNOTATIONS.istioIncludeOutboundPorts);
    spec.excludeInboundPorts = ports(ANNOTATIONS.istioExcludeInboundPorts);
    const incIn = a[ANNOTATIONS.istioIncludeInboundPorts];
    if (incIn !== undefined && incIn.trim() === '')
      spec.settings = { ...spec.settings, inboundPort: 0 }; // "" = no inbound capture
    else if (incIn !== undefined && incIn.trim() !== '*')
      spec.includeInboundPorts = ports(ANNOTATIONS.istioIncludeInboundPorts);
    // istio's DNS proxy only listens when the proxy config asks for it
    spec.captureDns = /ISTIO_META_DNS_CAPTURE["']?\s*:\s*["']?true/.test(a[ANNOTATIONS.istioProxyConfig] ?? '');
  } else if (mode === 'linkerd') {
    spec.excludeOutboundPorts = ports(ANNOTATIONS.linkerdSkipOutboundPorts);
    spec.excludeInboundPorts = ports(ANNOTATIONS.linkerdSkipInboundPorts);
    spec.excludeOutboundCidrs = cidrs(ANNOTATIONS.linkerdSkipSubnets);
    const uid = a[ANNOTATIONS.linkerdProxyUid];
    if (uid !== undefined) {
      if (!/^\d+$/.test(uid.trim())) throw new Error(`${ANNOTATIONS.linkerdProxyUid}: not a uid: ${uid}`);
      spec.settings = { ...spec.settings, sidecarUid: Number(uid) };
    }
  } else if (mode === 'kuma') {
    spec.excludeOutboundPorts = ports(ANNOTATIONS.kumaExcludeOutboundPorts);
    spec.excludeInboundPorts = ports(ANNOTATIONS.kumaExcludeInboundPorts);
    spec.excludeOutboundCidrs = cidrs(ANNOTATIONS.kumaExcludeOutboundIPs);
  }
  for (const k of Object.keys(spec) as (keyof typeof spec)[]) if (spec[k] === undefined) delete spec[k];
  return spec;
}

export type CgroupResolver = (pod: PodObject) => string | undefined;

/**
 * kubelet's cgroup layout: the directory of a pod is named after its uid, under the kubepods
 * root and (for burstable / best-effort pods) a QoS level. Looks two levels deep under each root.
 */
export function kubeletCgroupResolver(roots: string[]): CgroupResolver {
  return (pod) => {
    const uid = pod.metadata?.uid;
    if (!uid) return undefined;
    const names = new Set([`pod${uid}`, `pod${uid.replace(/-/g, '_')}`]);
    const match = (n: string) => names.has(n) || [...names].some((x) => n.endsWith(`-${x}.slice`));
    for (const root of roots) {
      if (!existsSync(root)) continue;
      const level = (dir: string, depth: number): string | undefined => {
        let entries: Dirent[];
        try {
          entries = readdirSync(dir, { withFileTypes: true });
        } catch {
          return undefined;
        }
        for (const e of entries) if (e.isDirectory() && match(e.name)) return join(dir, e.name);
        if (depth === 0) return undefined;
        for (const e of entries) {
          if (!e.isDirectory() || !/^(kubepods|besteffort|burstable|guaranteed)/.test(e.name)) continue;
          const found = level(join(dir, e.name), depth - 1);
          if (found) return found;
        }
        return undefined;
      };
      const found = level(root, 2);
      if (found) return found;
    }
    return undefined;
  };
}

/** The cgroup named by the pod's mesh-accel.kbpf.io/cgroup annotation (relative to root). */
export function annotationCgroupResolver(root: string): CgroupResolver {
  return (pod) => {
    const v = pod.metadata?.annotations?.[ANNOTATIONS.cgroup];
    if (!v) return undefined;
    const p = isAbsolute(v) ? v : join(root, v);
    if (!p.startsWith(root.endsWith('/') ? root : `${root}/`) || p.split('/').includes('..')) return undefined;
    return existsSync(p) ? p : undefined;
  };
}

export interface DeclaredPod {
  key: string;
  uid: string;
  cgroup: string;
  cgroupId: bigint;
  spec: PodSpec;
}

export interface MeshPodWatcherOptions {
  kube: Kube;
  nodeName: string;
  maps: MeshMaps;
  /** how a pod's cgroup is found (default: kubeletCgroupResolver of the usual kubepods roots) */
  resolveCgroup?: CgroupResolver;
  /** how often pods waiting for their IP or cgroup are looked at again (default 100 ms) */
  retryMs?: number;
  log?: (msg: string) => void;
}

const DEFAULT_ROOTS = [
  '/sys/fs/cgroup/kubepods.slice',
  '/sys/fs/cgroup/kubepods',
  '/sys/fs/cgroup/unified/kubepods.slice',
  '/sys/fs/cgroup/unified/kubepods',
];

/** Keeps the instance's pod maps equal to the meshed pods the API server shows on this node. */
export class MeshPodWatcher {
  readonly declared = new Map<string, DeclaredPod>();
  /** pods in a mesh that are not declared yet, with the reason (no IP yet, no cgroup yet, bad annotation) */
  readonly pending = new Map<string, string>();
  readonly #pods = new Store<PodObject & { metadata: ObjectMeta }>();
  readonly #watcher: Watcher<PodObject & { metadata: ObjectMeta }>;
  readonly #resolve: CgroupResolver;
  #timer?: NodeJS.Timeout;
  #stopped = false;
  #listeners = new Set<() => void>();

  constructor(readonly opts: MeshPodWatcherOptions) {
    this.#resolve = opts.resolveCgroup ?? kubeletCgroupResolver(DEFAULT_ROOTS);
    const fieldSelector = `spec.nodeName=${opts.nodeName}`;
    this.#watcher = new Watcher(
      apiListWatch(opts.kube, {
        path: '/api/v1/pods',
        fieldSelector,
        list: async () => {
          const r = await opts.kube.core.listPodForAllNamespaces({ fieldSelector });
          return {
            items: r.items as unknown as (PodObject & { metadata: ObjectMeta })[],
            resourceVersion: r.metadata?.resourceVersion ?? '',
          };
        },
      }),
      (e) => {
        if (this.#pods.apply(e).length > 0) this.reconcile();
      },
      { what: 'pods', ...(opts.log ? { log: opts.log } : {}) },
    );
  }

  /** Resolves after the first list has been applied. */
  async start(): Promise<void> {
    await this.#watcher.start();
    this.reconcile();
  }

  /** Stops watching; the maps keep what is declared (the instance's `rm` clears them). */
  stop(): void {
    this.#stopped = true;
    this.#watcher.stop();
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Calls fn after every reconcile (tests wait on it); answers a function that unsubscribes. */
  onReconcile(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Declares what should be, removes what should no longer be. Synchronous: map updates only. */
  reconcile(): void {
    if (this.#stopped) return;
    const want = new Map<string, DeclaredPod>();
    this.pending.clear();
    for (const [key, pod] of this.#pods) {
      if (pod.spec?.nodeName !== this.opts.nodeName || pod.spec?.hostNetwork) continue;
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      if (pod.metadata?.annotations?.[ANNOTATIONS.optOut] === 'false') continue;
      const mode = meshOfPod(pod);
      if (!mode) continue;
      const prev = this.declared.get(key);
      let settings: Omit<PodSpec, 'ip' | 'cgroup'>;
      try {
        settings = podSettingsOf(pod, mode);
      } catch (e) {
        this.pending.set(key, (e as Error).message);
        if (prev) want.set(key, prev); // keep the last good settings rather than unmeshing it
        continue;
      }
      const ip = podIPv4(pod);
      const ip6 = podIPv6(pod);
      if (!ip && !ip6) {
        this.pending.set(key, 'no pod IP yet');
        continue;
      }
      const cgroup = prev && prev.uid === pod.metadata?.uid ? prev.cgroup : this.#resolve(pod);
      if (!cgroup) {
        this.pending.set(key, 'no cgroup yet');
        continue;
      }
      want.set(key, {
        key,
        uid: pod.metadata?.uid ?? '',
        cgroup,
        cgroupId: prev?.cgroupId ?? 0n,
        spec: { ...settings, ...(ip ? { ip } : {}), ...(ip6 ? { ip6 } : {}), cgroup },
      });
    }
    for (const [key, d] of this.declared) {
      const w = want.get(key);
      if (!w || w.spec.ip !== d.spec.ip || w.spec.ip6 !== d.spec.ip6 || w.cgroup !== d.cgroup) {
        this.opts.maps.removePodIds(d.spec.ip, d.cgroupId, d.spec.ip6);
        this.declared.delete(key);
        this.opts.log?.(`mesh-accel: removed pod ${key} (${d.spec.ip ?? d.spec.ip6})`);
      }
    }
    for (const [key, w] of want) {
      const d = this.declared.get(key);
      if (d && JSON.stringify(d.spec) === JSON.stringify(w.spec)) continue;
      try {
        w.cgroupId = this.opts.maps.declarePod(w.spec);
        this.declared.set(key, w);
        this.opts.log?.(
          `mesh-accel: declared pod ${key} (${[w.spec.ip, w.spec.ip6].filter(Boolean).join(', ')}, ${w.spec.mode}, cgroup ${w.cgroup})`,
        );
      } catch (e) {
        this.pending.set(key, `declare failed: ${errorText(e)}`);
      }
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
  until(pred: (w: MeshPodWatcher) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    return untilReconciled(
      (fn) => this.onReconcile(fn),
      () => pred(this),
      timeoutMs,
      () => `mesh-accel pods: timed out waiting for ${what}; pending: ${JSON.stringify([...this.pending])}`,
    );
  }
}

export async function main(argv: string[]): Promise<void> {
  const { node, kubeconfig, instance, bpffs, cgroupRoots } = podWatcherArgs(argv, 'mesh');
  const maps = MeshMaps.ofInstance(bpffs, instance);
  const w = new MeshPodWatcher({
    kube: connect(kubeconfig),
    nodeName: node,
    maps,
    resolveCgroup: cgroupRoots.length ? kubeletCgroupResolver(cgroupRoots) : undefined,
    log: (m) => process.stderr.write(`${m}\n`),
  });
  await w.start();
  stopOnSignals(w, maps);
}

runAsScript(import.meta.url, 'mesh-accel k8s-pods', main);
