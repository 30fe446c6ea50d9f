import * as k8s from '@kubernetes/client-node';
import { bpffsDir } from '../../src/agent/paths.js';
import type { ObjectMeta } from '../../src/k8s/api.js';
import { connect, errorText, type Kube } from '../../src/k8s/kube.js';
import { Store } from '../../src/k8s/runtime/store.js';
import { apiListWatch, Watcher } from '../../src/k8s/runtime/watcher.js';
import { runAsScript, stopOnSignals, untilReconciled } from '../shared/watcher-process.js';
import { ServiceMaps } from './service-maps.js';
import {
  type BackendSpec,
  type NodeLocality,
  POLICIES,
  type Policy,
  parseWaypoint,
  type ServiceSpec,
} from './services.js';

export const POLICY_ANNOTATION = 'service-lb.kbpf.io/policy';
/** `ADDRESS:PORT` (IPv6: `[ADDRESS]:PORT`): the Service's TCP connections go to this waypoint (services.ts) */
export const WAYPOINT_ANNOTATION = 'service-lb.kbpf.io/waypoint';

interface ServicePortObject {
  name?: string;
  port?: number;
  targetPort?: number | string;
  protocol?: string;
}

export interface ServiceObject {
  metadata: ObjectMeta & { annotations?: Record<string, string> };
  spec?: {
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePortObject[];
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    trafficDistribution?: string;
    internalTrafficPolicy?: string;
  };
}

export interface EndpointSliceObject {
  metadata: ObjectMeta & { labels?: Record<string, string> };
  addressType?: string;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    zone?: string;
  }[];
  ports?: { name?: string; port?: number; protocol?: string }[];
}

/**
 * The services one Service object stands for, given the EndpointSlices of its namespace. A
 * waypoint annotation that does not parse is reported through `warn` and left out.
 */
export function servicesOf(
  svc: ServiceObject,
  slices: EndpointSliceObject[],
  warn: (msg: string) => void = () => {},
): ServiceSpec[] {
  const ns = svc.metadata.namespace ?? 'default';
  const name = svc.metadata.name ?? '';
  const vips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter(
    (ip) => ip && ip !== 'None',
  );
  if (vips.length === 0) return [];
  const mine = slices.filter(
    (s) => (s.metadata.namespace ?? 'default') === ns && s.metadata.labels?.['kubernetes.io/service-name'] === name,
  );
  const policyAnn = svc.metadata.annotations?.[POLICY_ANNOTATION];
  const policy: Policy = POLICIES.includes(policyAnn as Policy) ? (policyAnn as Policy) : 'random';
  const local = svc.spec?.internalTrafficPolicy === 'Local';
  const close = svc.spec?.trafficDistribution === 'PreferClose';
  const affinity =
    svc.spec?.sessionAffinity === 'ClientIP' ? (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : 0;
  let waypoint: ServiceSpec['waypoint'];
  const wpAnn = svc.metadata.annotations?.[WAYPOINT_ANNOTATION];
  if (wpAnn !== undefined) {
    try {
      waypoint = parseWaypoint(wpAnn, `Service ${ns}/${name}: annotation ${WAYPOINT_ANNOTATION}`);
    } catch (e) {
      warn(`service-lb: ${errorText(e)}; balanced without a waypoint`);
    }
  }
  const out: ServiceSpec[] = [];
  for (const p of svc.spec?.ports ?? []) {
    if (!p.port) continue;
    const protocol = p.protocol === 'UDP' ? 'UDP' : p.protocol === undefined || p.protocol === 'TCP' ? 'TCP' : null;
    if (!protocol) continue; // SCTP: not balanced here
    const backends: BackendSpec[] = [];
    for (const s of mine) {
      const sp = (s.ports ?? []).find((x) => (x.name ?? '') === (p.name ?? ''));
      const port = sp?.port ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port);
      for (const e of s.endpoints ?? []) {
        if (e.conditions?.ready === false) continue;
        const ip = e.addresses?.[0];
        if (!ip) continue;
        backends.push({ ip, port, node: e.nodeName, zone: e.zone });
      }
    }
    out.push({
      name: `${name}:${p.name || p.port}`,
      namespace: ns,
      vips,
      ports: [{ port: p.port, protocol }],
      backends,
      policy,
      locality: local ? 'strict' : close ? 'failover' : 'any',
      strictScope: 'node',
      affinityTimeoutS: affinity,
      ...(waypoint ? { waypoint } : {}),
    });
  }
  return out;
}

export interface ServiceWatcherOptions {
  kube: Kube;
  maps: ServiceMaps;
  /** this node (locality levels count from here) */
  node?: NodeLocality;
  log?: (msg: string) => void;
}

type Obj<T> = T & { metadata: ObjectMeta };

/** Keeps the instance's services equal to the cluster's Services and their ready endpoints. */
export class ServiceWatcher {
  readonly #services = new Store<Obj<ServiceObject>>();
  readonly #slices = new Store<Obj<EndpointSliceObject>>();
  readonly #serviceWatcher: Watcher<Obj<ServiceObject>>;
  readonly #sliceWatcher: Watcher<Obj<EndpointSliceObject>>;
  /** what is applied, by `namespace/name:port`, as JSON */
  readonly applied = new Map<string, { spec: ServiceSpec; json: string }>();
  #started = false;
  #listeners = new Set<() => void>();

  constructor(readonly opts: ServiceWatcherOptions) {
    const discovery = opts.kube.kc.makeApiClient(k8s.DiscoveryV1Api);
    this.#serviceWatcher = new Watcher(
      apiListWatch(opts.kube, {
        path: '/api/v1/services',
        list: async () => {
          const r = await opts.kube.core.listServiceForAllNamespaces();
          return {
            items: r.items as unknown as Obj<ServiceObject>[],
            resourceVersion: r.metadata?.resourceVersion ?? '',
          };
        },
      }),
      (e) => {
        if (this.#services.apply(e).length > 0) this.reconcile();
      },
      { what: 'services', ...(opts.log ? { log: opts.log } : {}) },
    );
    this.#sliceWatcher = new Watcher(
      apiListWatch(opts.kube, {
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        list: async () => {
          const r = await discovery.listEndpointSliceForAllNamespaces();
          return {
            items: r.items as unknown as Obj<EndpointSliceObject>[],
            resourceVersion: r.metadata?.resourceVersion ?? '',
          };
        },
      }),
      (e) => {
        if (this.#slices.apply(e).length > 0) this.reconcile();
      },
      { what: 'endpointslices', ...(opts.log ? { log: opts.log } : {}) },
    );
  }

  /** Resolves once both first lists are applied. */
  async start(): Promise<void> {
    await Promise.all([this.#sliceWatcher.start(), this.#serviceWatcher.start()]);
    this.#started = true;
    this.reconcile();
  }

  stop(): void {
    this.#started = false;
    this.#sliceWatcher.stop();
    this.#serviceWatcher.stop();
  }

  onReconcile(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Applies what changed, removes what is gone. Synchronous: map updates only. */
  reconcile(): void {
    if (!this.#started) return;
    const slices = [...this.#slices].map(([, s]) => s);
    const want = new Map<string, ServiceSpec>();
    for (const [, svc] of this.#services)
      for (const s of servicesOf(svc, slices, this.opts.log)) want.set(`${s.namespace}/${s.name}`, s);
    const gone = [...this.applied].filter(([k]) => !want.has(k));
    if (gone.length) {
      try {
        this.opts.maps.remove(gone.map(([, a]) => a.spec));
        for (const [k] of gone) this.applied.delete(k);
        this.opts.log?.(`service-lb: removed ${gone.map(([k]) => k).join(', ')}`);
      } catch (e) {
        this.opts.log?.(`service-lb: remove failed: ${errorText(e)}`);
      }
    }
    const changed = [...want].filter(([k, s]) => this.applied.get(k)?.json !== JSON.stringify(s));
    if (changed.length) {
      try {
        // a service whose addresses changed: the old entries go first
        const moved = changed.flatMap(([k]) => {
          const a = this.applied.get(k);
          return a && JSON.stringify(a.spec.vips) !== JSON.stringify(want.get(k)!.vips) ? [a.spec] : [];
        });
        if (moved.length) this.opts.maps.remove(moved);
        this.opts.maps.apply(
          changed.map(([, s]) => s),
          this.opts.node,
        );
        for (const [k, s] of changed) this.applied.set(k, { spec: s, json: JSON.stringify(s) });
        this.opts.log?.(`service-lb: applied ${changed.map(([k]) => k).join(', ')}`);
      } catch (e) {
        this.opts.log?.(`service-lb: apply failed: ${errorText(e)}`);
      }
    }
    for (const fn of this.#listeners) fn();
  }

  /** Waits until pred holds after a reconcile (or now). */
  until(pred: (w: ServiceWatcher) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    return untilReconciled(
      (fn) => this.onReconcile(fn),
      () => pred(this),
      timeoutMs,
      () => `service-lb services: timed out waiting for ${what}`,
    );
  }
}

export async function main(argv: string[]): Promise<void> {
  let kubeconfig: string | undefined;
  let instance = 'svclb';
  let bpffs = bpffsDir();
  const node: NodeLocality = { name: process.env.NODE_NAME };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--kubeconfig') kubeconfig = argv[++i]!;
    else if (a === '--instance') instance = argv[++i]!;
    else if (a === '--bpffs') bpffs = argv[++i]!;
    else if (a === '--node') node.name = argv[++i]!;
    else if (a === '--zone') node.zone = argv[++i]!;
    else if (a === '--region') node.region = argv[++i]!;
    else throw new Error(`unknown argument ${a}`);
  }
  const maps = ServiceMaps.ofInstance(bpffs, instance);
  const w = new ServiceWatcher({ kube: connect(kubeconfig), maps, node, log: (m) => process.stderr.write(`${m}\n`) });
  await w.start();
  stopOnSignals(w, maps);
}

runAsScript(import.meta.url, 'service-lb k8s-services', main);
