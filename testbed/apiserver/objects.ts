// The test API server's objects: a Map from `gv/plural/namespace/name` to the object, indexed by
// resource type too, so that listing one kind (and looking up admission policies on every write)
// costs what that kind holds, not what the whole server holds (the cluster benchmark keeps
// 25,000 instances in it).
export class ObjectIndex<T> implements Iterable<[string, T]> {
  readonly #all = new Map<string, T>();
  readonly #byType = new Map<string, Map<string, T>>();

  /** `gv/plural/` of a key (the part before namespace and name). */
  static typeOf(key: string): string {
    return key.slice(0, key.lastIndexOf('/', key.lastIndexOf('/') - 1) + 1);
  }

  get size(): number {
    return this.#all.size;
  }

  get(key: string): T | undefined {
    return this.#all.get(key);
  }

  has(key: string): boolean {
    return this.#all.has(key);
  }

  set(key: string, o: T): this {
    this.#all.set(key, o);
    const type = ObjectIndex.typeOf(key);
    const m = this.#byType.get(type) ?? new Map<string, T>();
    this.#byType.set(type, m);
    m.set(key, o);
    return this;
  }

  delete(key: string): boolean {
    this.#byType.get(ObjectIndex.typeOf(key))?.delete(key);
    return this.#all.delete(key);
  }

  values(): IterableIterator<T> {
    return this.#all.values();
  }

  entries(): IterableIterator<[string, T]> {
    return this.#all.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.#all.entries();
  }

  /** The objects of one resource type, by its `gv/plural/` prefix. */
  ofType(type: string): IterableIterator<T> {
    return (this.#byType.get(type) ?? new Map<string, T>()).values();
  }
}
