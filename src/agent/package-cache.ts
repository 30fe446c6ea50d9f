// The packages the agent runs, read from its store with their object files (ELF bytes), kept
// in a small LRU by manifest digest. A node runs many instances of few packages, so a handful
// of entries serve them all; an instance never needs its package's bytes once it runs (its
// status keeps the spec, its event pump the codecs), so eviction costs only a re-read on the
// next run, upgrade or start of that package.
//
// A reference is resolved through the store's index once; while the index file stays the same
// (the store replaces it, by rename, on every change), the reference keeps its digest and a
// cached package is served without reading the store again.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Codec } from 'kbpf/bpf';
import { InvalidError } from '../errors.js';
import type { LayoutStore } from '../package/layout-store.js';
import type { PackageSpec } from '../package/package-spec.js';
import { parseReference, referenceName } from '../package/reference.js';

/** A package as the agent runs it: what the store resolved, its spec and its objects' bytes. */
export interface FetchedPackage {
  reference: string;
  digest: string;
  spec: PackageSpec;
  /** ELF bytes by object file name */
  objects: Map<string, Uint8Array>;
  /** the other build of an object (spec.alternatives), by the object's file name */
  alternatives?: Map<string, { file: string; cpu: string; bytes: Uint8Array }>;
  /** event record codecs by map name, derived once per package from the objects' BTF */
  eventCodecs?: Map<string, Codec | null>;
  /** the event processor's module bytes (spec.processor), and the module compiled once */
  processor?: Uint8Array;
  processorModule?: WebAssembly.Module;
}

export const PACKAGE_CACHE_ENTRIES = 8;

/** The name part of a reference (registry host and port kept): `127.0.0.1:5000/x/y:1.0` -> `127.0.0.1:5000/x/y`. */
export function repositoryOf(ref: string): string {
  return referenceName(parseReference(ref));
}

export class PackageCache {
  readonly #entries = new Map<string, FetchedPackage>();
  /** reference → digest, as of the index file with this stamp */
  readonly #refs = new Map<string, string>();
  #refsStamp = '';

  constructor(
    readonly store: LayoutStore,
    readonly capacity = PACKAGE_CACHE_ENTRIES,
  ) {}

  /**
   * The package a reference names. A bare digest (`sha256:…`, as revisions record it) is looked
   * up in the cache first, then in the store under `fallbackRef`'s repository.
   */
  async fetch(ref: string, fallbackRef?: string): Promise<FetchedPackage> {
    if (ref.startsWith('sha256:')) {
      const hit = this.get(ref);
      if (hit) return hit;
      if (fallbackRef) return this.fetch(`${repositoryOf(fallbackRef)}@${ref}`);
    }
    const stamp = this.indexStamp();
    if (stamp !== this.#refsStamp) {
      this.#refs.clear();
      this.#refsStamp = stamp;
    }
    const known = this.#refs.get(ref);
    const cached = known && this.get(known);
    if (cached) return cached;
    let resolved: Awaited<ReturnType<LayoutStore['resolve']>>;
    resolved = await this.store.resolve(ref);
    if (stamp) this.#refs.set(ref, resolved.digest);
    const hit = this.get(resolved.digest);
    if (hit) return hit;
    const spec = resolved.config as unknown as PackageSpec;
    if (!Array.isArray(spec.objects) || !Array.isArray(spec.programs))
      throw new InvalidError(`package ${ref} is not a kbpf package (no objects or programs)`);
    const objects = new Map<string, Uint8Array>();
    for (const file of spec.objects) objects.set(file, (await this.store.getLayer(resolved, file)).bytes);
    const pkg: FetchedPackage = { reference: resolved.reference, digest: resolved.digest, spec, objects };
    if (spec.alternatives?.length) {
      pkg.alternatives = new Map();
      for (const a of spec.alternatives)
        pkg.alternatives.set(a.object, { ...a, bytes: (await this.store.getLayer(resolved, a.file)).bytes });
    }
    if (spec.processor) pkg.processor = (await this.store.getLayer(resolved, spec.processor.module)).bytes;
    this.#entries.set(pkg.digest, pkg);
    while (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!);
    return pkg;
  }

  /** A cached package, made the most recently used. */
  get(digest: string): FetchedPackage | undefined {
    const hit = this.#entries.get(digest);
    if (hit) {
      this.#entries.delete(digest);
      this.#entries.set(digest, hit);
    }
    return hit;
  }

  forget(digest: string): void {
    this.#entries.delete(digest);
  }

  /** Identifies the store's index file as it is now ('' when it cannot be read). */
  private indexStamp(): string {
    try {
      const st = statSync(join(this.store.root, 'index.json'), { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return '';
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}
