// The local copy of one watched collection, fed by a Watcher's events, read by reconcilers.
//
// Watch events come in the order the server made the changes, so the newest event for an object
// wins; resourceVersions are opaque and never compared. The one thing a store adds to "apply each
// event" is `observe`: a reconciler records what it just wrote, so that its next pass does not
// act on the version before its own write while the watch has yet to deliver it (a rollout would
// otherwise count a node it just moved as still ready). Until the watch delivers the written
// version, events for that object are older than it and are skipped; a version the watch has
// already delivered is not observed again (the store has it, or newer).
import type { ObjectMeta } from '../api.js';
import type { WatchEvent } from './watcher.js';

/** A change to one object: before (absent: added) and after (absent: deleted). */
export interface Change<T> {
  before?: T;
  after?: T;
}

export interface StoreOptions<T> {
  /** secondary indexes: name → the index value of an object (undefined: not indexed) */
  indexes?: Record<string, (o: T) => string | undefined>;
  /** how long an observed write waits for its watch event before the watch wins again (default 30 s) */
  writeTtlMs?: number;
  now?: () => number;
}

/** `namespace/name`, or `name` for a cluster-scoped object. */
export function objectKey(o: { metadata: ObjectMeta }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

/** versions remembered per object, to tell whether the watch already delivered an observed write */
const SEEN = 8;
/** deleted objects whose versions are remembered (see observe) */
const TOMBSTONES = 1024;

export class Store<T extends { metadata: ObjectMeta }> {
  readonly #objects = new Map<string, T>();
  /** per key, the versions the watch delivered lately (newest last) */
  readonly #seen = new Map<string, string[]>();
  /** versions of objects the watch deleted (insertion order: oldest first) */
  readonly #tombstones = new Map<string, string[]>();
  /** writes observed and not delivered by the watch yet: key → version written, when */
  readonly #written = new Map<string, { resourceVersion: string; at: number }>();
  readonly #indexes = new Map<string, { of: (o: T) => string | undefined; keys: Map<string, Set<string>> }>();
  readonly #writeTtlMs: number;
  readonly #now: () => number;

  constructor(opts: StoreOptions<T> = {}) {
    for (const [name, of] of Object.entries(opts.indexes ?? {})) this.#indexes.set(name, { of, keys: new Map() });
    this.#writeTtlMs = opts.writeTtlMs ?? 30_000;
    this.#now = opts.now ?? Date.now;
  }

  get(key: string): T | undefined {
    return this.#objects.get(key);
  }

  has(key: string): boolean {
    return this.#objects.has(key);
  }

  get size(): number {
    return this.#objects.size;
  }

  keys(): IterableIterator<string> {
    return this.#objects.keys();
  }

  values(): IterableIterator<T> {
    return this.#objects.values();
  }

  entries(): IterableIterator<[string, T]> {
    return this.#objects.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.#objects.entries();
  }

  /** The objects whose index `index` has `value`. */
  byIndex(index: string, value: string): T[] {
    const ix = this.#indexes.get(index);
    if (!ix) throw new Error(`store: no index named ${index}`);
    return [...(ix.keys.get(value) ?? [])].map((k) => this.#objects.get(k)!);
  }

  /** Applies one watch event; answers what changed (for mappers: both versions of each object). */
  apply(e: WatchEvent<T>): Change<T>[] {
    switch (e.type) {
      case 'restarted': {
        const changes = new Map<string, Change<T>>();
        for (const [k, before] of this.#objects) changes.set(k, { before });
        for (const k of [...this.#objects.keys()]) this.remove(k);
        this.#seen.clear();
        this.#tombstones.clear();
        this.#written.clear();
        for (const o of e.objects) {
          const k = objectKey(o);
          this.put(k, o);
          this.remember(k, o.metadata.resourceVersion);
          changes.set(k, { ...changes.get(k), after: o });
        }
        return [...changes.values()];
      }
      case 'applied': {
        const k = objectKey(e.object);
        const rv = e.object.metadata.resourceVersion;
        this.#tombstones.delete(k); // (re)created
        this.remember(k, rv);
        const written = this.#written.get(k);
        if (written) {
          if (written.resourceVersion !== rv && this.#now() - written.at < this.#writeTtlMs) return []; // older than our write
          this.#written.delete(k);
        }
        const before = this.#objects.get(k);
        this.put(k, e.object);
        return [{ ...(before ? { before } : {}), after: e.object }];
      }
      case 'deleted': {
        const k = objectKey(e.object);
        const before = this.#objects.get(k) ?? e.object;
        this.#written.delete(k);
        this.remove(k);
        this.bury(k, e.object.metadata.resourceVersion);
        return [{ before }];
      }
    }
  }

  /**
   * Records an object as a reconciler just wrote it (the server's answer to a create or update),
   * unless the watch already delivered that version. False when it did (nothing changes).
   */
  observe(o: T): boolean {
    const k = objectKey(o);
    const rv = o.metadata.resourceVersion;
    if (rv !== undefined && (this.#seen.get(k)?.includes(rv) || this.#tombstones.get(k)?.includes(rv))) return false;
    this.put(k, o);
    if (rv !== undefined) this.#written.set(k, { resourceVersion: rv, at: this.#now() });
    return true;
  }

  private put(k: string, o: T): void {
    const prev = this.#objects.get(k);
    this.#objects.set(k, o);
    for (const ix of this.#indexes.values()) {
      const was = prev ? ix.of(prev) : undefined;
      const is = ix.of(o);
      if (was === is) continue;
      if (was !== undefined) unindex(ix.keys, was, k);
      if (is !== undefined) {
        const set = ix.keys.get(is);
        if (set) set.add(k);
        else ix.keys.set(is, new Set([k]));
      }
    }
  }

  private remove(k: string): void {
    const prev = this.#objects.get(k);
    if (!prev) return;
    this.#objects.delete(k);
    for (const ix of this.#indexes.values()) {
      const was = ix.of(prev);
      if (was !== undefined) unindex(ix.keys, was, k);
    }
  }

  private remember(k: string, rv: string | undefined): void {
    if (rv === undefined) return;
    const seen = this.#seen.get(k) ?? [];
    seen.push(rv);
    if (seen.length > SEEN) seen.shift();
    this.#seen.set(k, seen);
  }

  private bury(k: string, rv: string | undefined): void {
    const seen = this.#seen.get(k) ?? [];
    this.#seen.delete(k);
    if (rv !== undefined) seen.push(rv);
    this.#tombstones.delete(k);
    this.#tombstones.set(k, seen.slice(-SEEN));
    if (this.#tombstones.size > TOMBSTONES) this.#tombstones.delete(this.#tombstones.keys().next().value!);
  }
}

function unindex(keys: Map<string, Set<string>>, value: string, k: string): void {
  const set = keys.get(value);
  set?.delete(k);
  if (set?.size === 0) keys.delete(value);
}
