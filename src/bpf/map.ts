// BPF maps: lookup / update / delete / iterate / batch, with keys and values converted to and
// from plain JS values through the map's BTF (raw bytes when a map has no BTF).

import { constants } from 'node:os';
import { Invalid } from '../errors.js';
import { type Btf, type Codec, codecFor } from './btf/index.js';
import { loadKernelBtfById } from './btf-kernel.js';
import { mapType } from './constants.js';
import { BpfError, check } from './errors.js';
import type { Pointer } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import { libc } from './ffi/libc.js';
import { type MapInfo, mapInfo } from './info.js';

const { ENOENT } = constants.errno;

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

const PERCPU_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const NO_KEY_TYPES = new Set(['queue', 'stack', 'bloom_filter']);

let possibleCpus = 0;
export function numPossibleCpus(): number {
  if (!possibleCpus) possibleCpus = check(libbpf.numPossibleCpus(), 'count possible CPUs', '');
  return possibleCpus;
}

/** Bytes as-is, or a number/bigint for 1..8-byte keys without BTF. */
function rawCodec(size: number): Codec {
  return {
    size,
    decode(buf: Uint8Array, offset = 0) {
      return Buffer.from(buf.subarray(offset, offset + size));
    },
    encode(value: unknown, out = new Uint8Array(size), offset = 0) {
      if (value instanceof Uint8Array) {
        if (value.length !== size) throw new Error(`expected ${size} bytes, got ${value.length}`);
        out.set(value, offset);
      } else if ((typeof value === 'number' || typeof value === 'bigint') && size <= 8) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
        out.set(b.subarray(0, size), offset);
      } else {
        throw new Error(`expected a Uint8Array of ${size} bytes`);
      }
      return out;
    },
  };
}

export interface MapSpec {
  type: string;
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
}

export class BpfMap {
  #ptr: Pointer | null;
  #fd: number;
  readonly #ownsFd: boolean;
  #objectClosed = false;
  #btf: Btf | null | undefined;
  #keyCodec?: Codec;
  #valueCodec?: Codec;
  readonly #btfIds: { key: number; value: number };
  readonly #btfSource: (() => Btf | null) | null;

  private constructor(
    readonly name: string,
    readonly type: string,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    readonly flags: number,
    readonly origin: string,
    init: {
      ptr?: Pointer;
      fd?: number;
      ownsFd?: boolean;
      btfIds: { key: number; value: number };
      btf: () => Btf | null;
    },
  ) {
    this.#ptr = init.ptr ?? null;
    this.#fd = init.fd ?? -1;
    this.#ownsFd = init.ownsFd ?? false;
    this.#btfIds = init.btfIds;
    this.#btfSource = init.btf;
  }

  /** @internal one of an object's maps */
  static ofObject(objectName: string, ptr: Pointer, btf: Btf | null, name: string): BpfMap {
    return new BpfMap(
      name,
      mapType.name(libbpf.mapType(ptr)),
      libbpf.mapKeySize(ptr),
      libbpf.mapValueSize(ptr),
      libbpf.mapMaxEntries(ptr),
      libbpf.mapFlags(ptr),
      `object "${objectName}"`,
      { ptr, btfIds: { key: libbpf.mapBtfKeyTypeId(ptr), value: libbpf.mapBtfValueTypeId(ptr) }, btf: () => btf },
    );
  }

  /** Wraps an fd of an existing map (takes ownership). */
  static fromFd(fd: number, origin = 'fd'): BpfMap {
    let info: MapInfo;
    try {
      info = mapInfo(fd);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return new BpfMap(info.name, info.type, info.keySize, info.valueSize, info.maxEntries, info.flags, origin, {
      fd,
      ownsFd: true,
      btfIds: { key: info.btfKeyTypeId, value: info.btfValueTypeId },
      btf: () => (info.btfId ? loadKernelBtfById(info.btfId) : null),
    });
  }

  /** Re-opens a pinned map. close() it when done. */
  static fromPin(path: string): BpfMap {
    const fd = libbpf.objGet(path);
    if (fd < 0) throw new BpfError('open pinned map', path, -fd);
    return BpfMap.fromFd(fd, `pin ${path}`);
  }

  /** Creates a new map (without BTF: keys and values are raw bytes or integers). */
  static create(spec: MapSpec): BpfMap {
    const opts = Buffer.alloc(64);
    opts.writeBigUInt64LE(56n, 0); // sz of struct bpf_map_create_opts (libbpf 1.1)
    // sz, btf_fd, btf_key_type_id, btf_value_type_id, btf_vmlinux_value_type_id, inner_map_fd, map_flags (28), map_extra
    opts.writeUInt32LE(spec.flags ?? 0, 28);
    const fd = libbpf.mapCreate(
      mapType.value(spec.type),
      spec.name ?? null,
      spec.keySize,
      spec.valueSize,
      spec.maxEntries,
      opts,
    );
    if (fd < 0) throw new BpfError('create map', `"${spec.name ?? ''}" (${spec.type})`, -fd);
    return BpfMap.fromFd(fd, 'created');
  }

  get description(): string {
    return `map "${this.name}" of ${this.origin}`;
  }

  /** @internal its object was closed: libbpf's map is gone with it */
  objectClosed(): void {
    this.#ptr = null;
    this.#objectClosed = true;
  }

  get fd(): number {
    if (this.#objectClosed) throw new BpfError('use', this.description, Invalid, { hint: 'its object is closed' });
    const fd = this.#ptr ? libbpf.mapFd(this.#ptr) : this.#fd;
    if (fd < 0)
      throw new BpfError('use', this.description, Invalid, {
        hint: 'the map is not created yet (load its object first)',
      });
    return fd;
  }

  /** libbpf's map handle, for objects that reuse it. */
  get handle(): Pointer | null {
    return this.#ptr;
  }

  info(): MapInfo {
    return mapInfo(this.fd);
  }

  get id(): number {
    return this.info().id;
  }

  get btf(): Btf | null {
    if (this.#btf === undefined) this.#btf = this.#btfSource ? this.#btfSource() : null;
    return this.#btf;
  }

  get keyTypeId(): number {
    return this.#btfIds.key;
  }

  get valueTypeId(): number {
    return this.#btfIds.value;
  }

  get isPerCpu(): boolean {
    return PERCPU_TYPES.has(this.type);
  }

  /** Codec of the key (BTF-typed where the map has BTF). */
  get keyCodec(): Codec {
    if (!this.#keyCodec) this.#keyCodec = this.codec(this.#btfIds.key, this.keySize);
    return this.#keyCodec;
  }

  get valueCodec(): Codec {
    if (!this.#valueCodec) this.#valueCodec = this.codec(this.#btfIds.value, this.valueSize);
    return this.#valueCodec;
  }

  private codec(typeId: number, size: number): Codec {
    const btf = typeId ? this.btf : null;
    return btf ? codecFor(btf, typeId) : rawCodec(size);
  }

  /** Size of one value as the syscall sees it (per-CPU maps: one 8-aligned slot per CPU). */
  private get valueBufferSize(): number {
    return this.isPerCpu ? Math.ceil(this.valueSize / 8) * 8 * numPossibleCpus() : this.valueSize;
  }

  encodeKey(key: unknown): Uint8Array {
    if (this.keySize === 0) return new Uint8Array(0);
    try {
      return this.keyCodec.encode(key);
    } catch (e) {
      throw new BpfError('encode key for', this.description, Invalid, { hint: (e as Error).message, cause: e });
    }
  }

  encodeValue(value: unknown): Uint8Array {
    try {
      if (!this.isPerCpu) return this.valueCodec.encode(value);
      const n = numPossibleCpus();
      const slot = Math.ceil(this.valueSize / 8) * 8;
      const out = new Uint8Array(slot * n);
      const values = Array.isArray(value) ? value : new Array(n).fill(value);
      if (values.length !== n)
        throw new Error(`a per-CPU value needs ${n} elements (one per possible CPU), got ${values.length}`);
      values.forEach((v, i) => {
        this.valueCodec.encode(v, out, i * slot);
      });
      return out;
    } catch (e) {
      if (e instanceof BpfError) throw e;
      throw new BpfError('encode value for', this.description, Invalid, { hint: (e as Error).message, cause: e });
    }
  }

  decodeValue(buf: Uint8Array): unknown {
    if (!this.isPerCpu) return this.valueCodec.decode(buf, 0);
    const slot = Math.ceil(this.valueSize / 8) * 8;
    return Array.from({ length: numPossibleCpus() }, (_, i) => this.valueCodec.decode(buf, i * slot));
  }

  /** The value for key, or undefined if there is none. Per-CPU maps give one value per CPU. */
  lookup(key?: unknown): unknown {
    const raw = this.lookupRaw(this.keyBytes(key));
    return raw === undefined ? undefined : this.decodeValue(raw);
  }

  lookupRaw(key: Uint8Array | null): Buffer | undefined {
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = libbpf.mapLookupElem(this.fd, key, value);
    if (ret === -ENOENT) return undefined;
    check(ret, 'look up in', this.description);
    return value;
  }

  /** Sets the value of `key` from bytes laid out as the map's value (a struct the caller encoded). */
  updateRaw(key: Uint8Array, value: Uint8Array, flag: UpdateFlag = 'any'): void {
    check(libbpf.mapUpdateElem(this.fd, key, value, UPDATE_FLAGS[flag]), 'update', this.description);
  }

  update(key: unknown, value: unknown, flag: UpdateFlag = 'any'): void {
    const k = this.keyBytes(key);
    check(libbpf.mapUpdateElem(this.fd, k, this.encodeValue(value), UPDATE_FLAGS[flag]), 'update', this.description);
  }

  /** For maps without keys (queue, stack, bloom filter). */
  push(value: unknown): void {
    check(libbpf.mapUpdateElem(this.fd, null, this.encodeValue(value), 0), 'push to', this.description);
  }

  /** Pops from a queue/stack; undefined when empty. */
  pop(): unknown {
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = libbpf.mapLookupAndDeleteElem(this.fd, null, value);
    if (ret === -ENOENT) return undefined;
    check(ret, 'pop from', this.description);
    return this.decodeValue(value);
  }

  /** Deletes key; false if it was not there. */
  delete(key: unknown): boolean {
    const ret = libbpf.mapDeleteElem(this.fd, this.encodeKey(key));
    if (ret === -ENOENT) return false;
    check(ret, 'delete from', this.description);
    return true;
  }

  private keyBytes(key: unknown): Uint8Array | null {
    if (NO_KEY_TYPES.has(this.type) || this.keySize === 0) return null;
    return this.encodeKey(key);
  }

  /** Raw keys, in the kernel's iteration order. */
  *rawKeys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const ret = libbpf.mapGetNextKey(this.fd, prev, next);
      if (ret === -ENOENT) return;
      check(ret, 'iterate', this.description);
      yield next;
      prev = next;
    }
  }

  *keys(): Generator<unknown> {
    for (const k of this.rawKeys()) yield this.keyCodec.decode(k, 0);
  }

  /** [key, value] pairs; entries removed while iterating are skipped. */
  *entries(): Generator<[unknown, unknown]> {
    for (const k of this.rawKeys()) {
      const v = this.lookupRaw(k);
      if (v !== undefined) yield [this.keyCodec.decode(k, 0), this.decodeValue(v)];
    }
  }

  /** Reads everything with BPF_MAP_LOOKUP_BATCH (falls back to iteration where unsupported). */
  lookupBatch(batchSize = 256): [unknown, unknown][] {
    const out: [unknown, unknown][] = [];
    const keys = Buffer.alloc(this.keySize * batchSize);
    const values = Buffer.alloc(this.valueBufferSize * batchSize);
    const batchToken = Buffer.alloc(Math.max(this.keySize, 8));
    const opts = batchOpts();
    let inBatch: Buffer | null = null;
    for (;;) {
      const count = [batchSize];
      const ret = libbpf.mapLookupBatch(this.fd, inBatch, batchToken, keys, values, count, opts);
      if (ret < 0 && ret !== -ENOENT) {
        if (
          out.length === 0 &&
          (ret === -constants.errno.EINVAL || ret === -constants.errno.EOPNOTSUPP || ret === -524)
        )
          return [...this.entries()];
        check(ret, 'batch look up in', this.description);
      }
      for (let i = 0; i < count[0]!; i++) {
        const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize);
        const v = values.subarray(i * this.valueBufferSize, (i + 1) * this.valueBufferSize);
        out.push([this.keyCodec.decode(k, 0), this.decodeValue(v)]);
      }
      if (ret === -ENOENT) return out;
      inBatch = Buffer.from(batchToken);
    }
  }

  /**
   * Writes many entries with one BPF_MAP_UPDATE_BATCH call. The kernel's batch update takes no
   * noexist/exist flag (only BPF_F_LOCK), so with one of those it updates entry by entry and
   * throws at the first entry the flag refuses (the entries before it are written).
   */
  updateBatch(entries: Iterable<[unknown, unknown]>, flag: UpdateFlag = 'any'): number {
    const list = [...entries];
    if (list.length === 0) return 0;
    if (flag !== 'any') {
      for (const [k, v] of list) this.update(k, v, flag);
      return list.length;
    }
    const keys = Buffer.alloc(this.keySize * list.length);
    const values = Buffer.alloc(this.valueBufferSize * list.length);
    list.forEach(([k, v], i) => {
      keys.set(this.encodeKey(k), i * this.keySize);
      values.set(this.encodeValue(v), i * this.valueBufferSize);
    });
    const count = [list.length];
    const opts = batchOpts();
    check(libbpf.mapUpdateBatch(this.fd, keys, values, count, opts), 'batch update', this.description);
    return count[0]!;
  }

  /** Deletes many keys with one BPF_MAP_DELETE_BATCH call; returns how many were deleted. */
  deleteBatch(keyList: Iterable<unknown>): number {
    const list = [...keyList];
    if (list.length === 0) return 0;
    const keys = Buffer.alloc(this.keySize * list.length);
    list.forEach((k, i) => {
      keys.set(this.encodeKey(k), i * this.keySize);
    });
    const count = [list.length];
    const ret = libbpf.mapDeleteBatch(this.fd, keys, count, batchOpts());
    if (ret < 0 && ret !== -ENOENT) check(ret, 'batch delete from', this.description);
    return count[0]!;
  }

  /** Removes every entry (hash-like maps). */
  clear(): void {
    const keys = [...this.rawKeys()];
    for (const k of keys) libbpf.mapDeleteElem(this.fd, k);
  }

  pin(path: string): void {
    check(libbpf.objPin(this.fd, path), 'pin', `${this.description} at ${path}`);
  }

  freeze(): void {
    check(libbpf.mapFreeze(this.fd), 'freeze', this.description);
  }

  /** Closes a map opened by fd/pin/create; object maps close with their object. */
  close(): void {
    if (this.#ownsFd && this.#fd >= 0) {
      libc.close(this.#fd);
      this.#fd = -1;
    }
  }
}

/** struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; } */
function batchOpts(elemFlags = 0): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}
