// Talking to the Kubernetes API through @kubernetes/client-node: typed helpers for the kbpf
// resources, and a reflector (list, then watch from the list's resourceVersion with bookmarks;
// on 410 Gone or a dropped watch, list again) that keeps a local cache of one kind.
import * as k8s from '@kubernetes/client-node';
import {
  type BpfDeployment,
  type BpfNodeInstance,
  type BpfRevision,
  GROUP,
  type ObjectMeta,
  type PLURAL,
  VERSION,
} from './api.js';

export interface Kube {
  kc: k8s.KubeConfig;
  custom: k8s.CustomObjectsApi;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
}

/** From a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account). */
export function connect(kubeconfig?: string): Kube {
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
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
   * new one (or undefined for no change); a 409 Conflict reads again and retries.
   */
  async update<P extends Plural>(
    plural: P,
    name: string,
    edit: (o: KindMap[P]) => KindMap[P] | undefined,
    opts: { status?: boolean } = {},
  ): Promise<KindMap[P] | undefined> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.get(plural, name);
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

export interface ReflectorOptions<T> {
  /** API path of the collection, e.g. /apis/kbpf.io/v1alpha1/bpfnodeinstances */
  path: string;
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
  labelSelector?: string;
  fieldSelector?: string;
  /** called after any change to the cache (coalesce work there) */
  onChange: () => void;
  log?: (msg: string) => void;
}

/**
 * Keeps `cache` equal to the collection on the server: list, then watch from the list's
 * resourceVersion (with bookmarks so the version stays fresh); when the server answers 410 Gone
 * (the version is too old) or the watch ends, it lists again.
 */
export class Reflector<T extends { metadata: ObjectMeta }> {
  readonly cache = new Map<string, T>();
  #rv = '';
  #abort?: AbortController;
  #stopped = false;
  #synced!: Promise<void>;
  #markSynced!: () => void;
  relists = 0;

  constructor(
    readonly kube: Kube,
    readonly opts: ReflectorOptions<T>,
  ) {
    this.#synced = new Promise((r) => (this.#markSynced = r));
  }

  /** Resolves after the first list. */
  start(): Promise<void> {
    void this.loop();
    return this.#synced;
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
  }

  /**
   * Puts an object into the cache unless the cache has a newer version of it (a controller
   * records what it just wrote, before its own watch event arrives). False when older.
   */
  observe(o: T): boolean {
    const k = this.key(o);
    const cur = this.cache.get(k);
    const a = Number(cur?.metadata.resourceVersion);
    const b = Number(o.metadata.resourceVersion);
    if (cur && Number.isFinite(a) && Number.isFinite(b) && b < a) return false;
    this.cache.set(k, o);
    return true;
  }

  private key(o: T): string {
    return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
  }

  private async loop(): Promise<void> {
    let needList = true;
    let backoff = 100;
    while (!this.#stopped) {
      try {
        if (needList) {
          const r = await this.opts.list();
          this.relists++;
          this.cache.clear();
          for (const o of r.items) this.cache.set(this.key(o), o);
          this.#rv = r.resourceVersion;
          needList = false;
          this.#markSynced();
          this.opts.onChange();
        }
        const outcome = await this.watchOnce();
        if (outcome === 'gone') needList = true;
        backoff = 100;
      } catch (e) {
        if (this.#stopped) return;
        this.opts.log?.(`watch ${this.opts.path}: ${errorText(e)}; listing again`);
        needList = true;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  private watchOnce(): Promise<'ended' | 'gone'> {
    return new Promise((resolve, reject) => {
      let gone = false;
      const watch = new k8s.Watch(this.kube.kc);
      const q: Record<string, string | boolean | number> = {
        resourceVersion: this.#rv,
        allowWatchBookmarks: true,
        timeoutSeconds: 300,
      };
      if (this.opts.labelSelector) q.labelSelector = this.opts.labelSelector;
      if (this.opts.fieldSelector) q.fieldSelector = this.opts.fieldSelector;
      watch
        .watch(
          this.opts.path,
          q,
          (type, obj: T & { code?: number }) => {
            if (type === 'ERROR') {
              if (obj.code === 410) gone = true;
              else this.opts.log?.(`watch ${this.opts.path}: ${JSON.stringify(obj)}`);
              this.#abort?.abort();
              return;
            }
            if (obj?.metadata?.resourceVersion) this.#rv = obj.metadata.resourceVersion;
            if (type === 'BOOKMARK') return;
            if (type === 'DELETED') this.cache.delete(this.key(obj));
            else if (!this.observe(obj)) return;
            this.opts.onChange();
          },
          (err: unknown) => {
            const name = (err as Error | null)?.name;
            if (gone || statusCode(err) === 410) resolve('gone');
            // an idle watch timed out on the client side (no event or bookmark for 30 s): resume it
            else if (err && !this.#stopped && name !== 'AbortError' && name !== 'TimeoutError') reject(err);
            else resolve('ended');
          },
        )
        .then((abort) => {
          this.#abort = abort;
          if (this.#stopped) abort.abort();
        }, reject);
    });
  }
}

/** Runs `fn` once at a time; calls while it runs coalesce into one more run. */
export function coalesced(fn: () => Promise<void>, onError: (e: unknown) => void): () => void {
  let running = false;
  let again = false;
  const kick = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    fn()
      .catch(onError)
      .finally(() => {
        running = false;
        if (again) kick();
      });
  };
  return kick;
}
