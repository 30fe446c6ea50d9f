// Watching one collection of the API server: list, then watch from the list's resourceVersion
// (with bookmarks, so the version stays fresh); when the server answers 410 Gone (that version was
// compacted away) or the watch fails, list again. A watcher keeps no objects: it turns what the
// server says into events for a Store. A resourceVersion is opaque — it is only handed back to the
// server to resume from, never compared or parsed.
import * as k8s from '@kubernetes/client-node';
import { UnavailableError } from '../../errors.js';
import type { ObjectMeta } from '../api.js';
import { errorText, type Kube, statusCode } from '../kube.js';

export type WatchEvent<T> =
  /** a (re)list: the whole collection as it is now (what is not in it is gone) */
  { type: 'restarted'; objects: T[] } | { type: 'applied'; object: T } | { type: 'deleted'; object: T };

/** The event types of a watch stream that carry objects. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** How a watch ended: the server closed it (resume from the last version), or 410 Gone (list again). */
export type WatchOutcome = 'ended' | 'gone';

/** What a Watcher needs from the API server (tests give it a fake). */
export interface ListWatch<T> {
  list(): Promise<{ items: T[]; resourceVersion: string }>;
  /**
   * Streams the changes after `resourceVersion` to `on` until the server ends the watch or
   * `signal` aborts ('ended'), the version is too old ('gone'), or the watch fails (rejects).
   */
  watch(
    resourceVersion: string,
    on: (type: WatchEventType, object: T) => void,
    signal: AbortSignal,
  ): Promise<WatchOutcome>;
}

export interface ApiListWatchOptions<T> {
  /** API path of the collection, e.g. /apis/kbpf.io/v1alpha1/bpfnodeinstances */
  path: string;
  /** lists the collection with the same selectors as the watch */
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
  labelSelector?: string;
  fieldSelector?: string;
  /** the server ends a watch after this long, and it is resumed (default 300) */
  timeoutSeconds?: number;
}

/** A collection on the API server, watched through @kubernetes/client-node. */
export function apiListWatch<T>(kube: Kube, opts: ApiListWatchOptions<T>): ListWatch<T> {
  return {
    list: opts.list,
    watch: (resourceVersion, on, signal) =>
      new Promise((resolve, reject) => {
        let gone = false;
        let failure: Error | undefined;
        let abort: AbortController | undefined;
        const stop = (): void => abort?.abort();
        signal.addEventListener('abort', stop, { once: true });
        const q: Record<string, string | boolean | number> = {
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: opts.timeoutSeconds ?? 300,
        };
        if (opts.labelSelector) q.labelSelector = opts.labelSelector;
        if (opts.fieldSelector) q.fieldSelector = opts.fieldSelector;
        new k8s.Watch(kube.kc)
          .watch(
            opts.path,
            q,
            (type: string, obj: T & { code?: number }) => {
              if (type === 'ERROR') {
                if (obj.code === 410) gone = true;
                else failure = new UnavailableError(`watch ${opts.path}: ${JSON.stringify(obj)}`);
                abort?.abort();
                return;
              }
              on(type as WatchEventType, obj);
            },
            (err: unknown) => {
              signal.removeEventListener('abort', stop);
              const name = (err as Error | null)?.name;
              if (gone || statusCode(err) === 410) resolve('gone');
              else if (failure) reject(failure);
              // an idle watch timed out on the client side (no event or bookmark for 30 s): resume it
              else if (err && !signal.aborted && name !== 'AbortError' && name !== 'TimeoutError') reject(err);
              else resolve('ended');
            },
          )
          .then((a) => {
            abort = a;
            if (signal.aborted || gone || failure) a.abort();
          }, reject);
      }),
  };
}

export interface WatcherOptions {
  /** names the collection in log lines */
  what: string;
  log?: (msg: string) => void;
  /** wait before listing again after a failure: doubles from min to max (default 100 ms .. 5 s) */
  backoff?: { minMs?: number; maxMs?: number };
}

/** Lists and watches a collection for as long as it runs, emitting each change (see WatchEvent). */
export class Watcher<T extends { metadata: ObjectMeta }> {
  /** how many times it has listed (the first list included) */
  relists = 0;
  #resourceVersion = '';
  #abort?: AbortController;
  #stopped = false;
  readonly #synced: Promise<void>;
  #markSynced!: () => void;

  constructor(
    readonly source: ListWatch<T>,
    readonly emit: (e: WatchEvent<T>) => void,
    readonly opts: WatcherOptions,
  ) {
    this.#synced = new Promise((r) => {
      this.#markSynced = r;
    });
  }

  /** Starts watching; resolves once the first list has been emitted. */
  start(): Promise<void> {
    void this.loop();
    return this.#synced;
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
  }

  private async loop(): Promise<void> {
    const minMs = this.opts.backoff?.minMs ?? 100;
    const maxMs = this.opts.backoff?.maxMs ?? 5000;
    let needList = true;
    let backoff = minMs;
    while (!this.#stopped) {
      try {
        if (needList) {
          const r = await this.source.list();
          if (this.#stopped) return;
          this.relists++;
          this.#resourceVersion = r.resourceVersion;
          needList = false;
          this.emit({ type: 'restarted', objects: r.items });
          this.#markSynced();
        }
        this.#abort = new AbortController();
        const outcome = await this.source.watch(
          this.#resourceVersion,
          (t, o) => this.onEvent(t, o),
          this.#abort.signal,
        );
        if (outcome === 'gone') needList = true;
        backoff = minMs;
      } catch (e) {
        if (this.#stopped) return;
        this.opts.log?.(`watch ${this.opts.what}: ${errorText(e)}; listing again`);
        needList = true;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, maxMs);
      }
    }
  }

  private onEvent(type: WatchEventType, o: T): void {
    if (this.#stopped) return;
    // every event, bookmarks included, moves the version to resume from
    if (o?.metadata?.resourceVersion) this.#resourceVersion = o.metadata.resourceVersion;
    if (type === 'BOOKMARK') return;
    this.emit(type === 'DELETED' ? { type: 'deleted', object: o } : { type: 'applied', object: o });
  }
}
