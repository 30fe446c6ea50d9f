// Talking to the Kubernetes API through @kubernetes/client-node: the clients, and typed calls on
// the kbpf resources. Watching and caching are in runtime/ (watcher, store, work queue).
import * as k8s from '@kubernetes/client-node';
import {
  type BpfDeployment,
  type BpfNode,
  type BpfNodeInstance,
  type BpfPackage,
  type BpfRevision,
  GROUP,
  type PLURAL,
  VERSION,
} from './api.js';

export interface Kube {
  kc: k8s.KubeConfig;
  custom: k8s.CustomObjectsApi;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
}

/**
 * From a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service
 * account), in its current context or `context`.
 */
export function connect(kubeconfig?: string, context?: string): Kube {
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  if (context) {
    if (!kc.getContextObject(context))
      throw new Error(
        `context "${context}" does not exist in the kubeconfig (it has: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        })`,
      );
    kc.setCurrentContext(context);
  }
  return kubeOf(kc);
}

/** The clients of a loaded KubeConfig. */
export function kubeOf(kc: k8s.KubeConfig): Kube {
  return {
    kc,
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    core: kc.makeApiClient(k8s.CoreV1Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
  };
}

export function statusCode(e: unknown): number | undefined {
  const x = e as { code?: unknown; statusCode?: unknown };
  if (typeof x?.code === 'number') return x.code;
  if (typeof x?.statusCode === 'number') return x.statusCode;
  return undefined;
}

/** The API server's message of a failed call, or the error's own. */
export function errorText(e: unknown): string {
  const x = e as { body?: unknown; message?: string };
  let body = x?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      /* text */
    }
  }
  const msg = (body as { message?: string } | undefined)?.message;
  return msg ?? x?.message ?? String(e);
}

type Plural = (typeof PLURAL)[keyof typeof PLURAL];
interface KindMap {
  bpfdeployments: BpfDeployment;
  bpfnodeinstances: BpfNodeInstance;
  bpfrevisions: BpfRevision;
  bpfpackages: BpfPackage;
  bpfnodes: BpfNode;
}

/** Typed access to the cluster-scoped kbpf.io resources. */
export class KbpfApi {
  constructor(readonly kube: Kube) {}

  async list<P extends Plural>(
    plural: P,
    q: { labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<{ items: KindMap[P][]; resourceVersion: string }> {
    const r = (await this.kube.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...q })) as {
      items: KindMap[P][];
      metadata: { resourceVersion: string };
    };
    return { items: r.items, resourceVersion: r.metadata.resourceVersion };
  }

  async get<P extends Plural>(plural: P, name: string): Promise<KindMap[P] | undefined> {
    try {
      return (await this.kube.custom.getClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural,
        name,
      })) as KindMap[P];
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  async create<P extends Plural>(plural: P, body: KindMap[P]): Promise<KindMap[P]> {
    return (await this.kube.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      body,
    })) as KindMap[P];
  }

  async replace<P extends Plural>(plural: P, body: KindMap[P]): Promise<KindMap[P]> {
    return (await this.kube.custom.replaceClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      name: body.metadata.name,
      body,
    })) as KindMap[P];
  }

  async replaceStatus<P extends Plural>(plural: P, body: KindMap[P]): Promise<KindMap[P]> {
    return (await this.kube.custom.replaceClusterCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural,
      name: body.metadata.name,
      body,
    })) as KindMap[P];
  }

  async delete(plural: Plural, name: string): Promise<void> {
    try {
      await this.kube.custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural,
        name,
        propagationPolicy: 'Background',
      });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
  }

  /**
   * Read-modify-write with optimistic concurrency: `edit` gets the newest object and returns the
   * new one (or undefined for no change); a 409 Conflict reads again and retries. With `from` (a
   * reconciler's cached copy) the first attempt edits that instead of reading it: one request
   * when the cache is current, none when `edit` changes nothing, and a stale cache costs a
   * Conflict and a read.
   */
  async update<P extends Plural>(
    plural: P,
    name: string,
    edit: (o: KindMap[P]) => KindMap[P] | undefined,
    opts: { status?: boolean; from?: KindMap[P] } = {},
  ): Promise<KindMap[P] | undefined> {
    for (let attempt = 0; ; attempt++) {
      const cur = attempt === 0 && opts.from ? opts.from : await this.get(plural, name);
      if (!cur) return undefined;
      const next = edit(structuredClone(cur));
      if (!next) return cur;
      try {
        return opts.status ? await this.replaceStatus(plural, next) : await this.replace(plural, next);
      } catch (e) {
        if (statusCode(e) === 409 && attempt < 10) continue;
        if (statusCode(e) === 404) return undefined;
        throw e;
      }
    }
  }
}
