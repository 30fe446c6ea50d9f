// Reading a BPF_MAP_TYPE_RINGBUF map in JavaScript.
//
// The ring is mapped into this process the way libbpf maps it: the consumer page read-write
// (we publish consumer_pos there), the producer page and the data area read-only, with the data
// area mapped twice in a row (2 * size) so a record that wraps around the end is contiguous.
// Records are then walked in JavaScript — no FFI call per record, nor per batch: positions are
// loaded from the mapped pages, each record's 8-byte header { u32 len (bit 31 BUSY, bit 30
// DISCARD); u32 pg_off } is read with an atomic load, busy records stop the walk, discarded
// ones are skipped, and consumer_pos is published with an atomic store after a batch (and every
// eighth of the ring within long batches, so the producer gets room back early).
//
// Lost records. A ring buffer does not count what it could not take: when bpf_ringbuf_reserve()
// (or bpf_ringbuf_output()) fails because the ring is full, the producer is told so and nothing
// is recorded anywhere. The convention of kbpf is that the program counts its own failures in a
// map, and the reader is given that map as `lostCounter`:
//
//     struct {
//         __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);   // or BPF_MAP_TYPE_ARRAY
//         __uint(max_entries, 1);
//         __type(key, __u32);
//         __type(value, __u64);                     // __u32 works too
//     } events_lost SEC(".maps");
//
//     e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
//     if (!e) {
//         __u32 zero = 0;
//         __u64 *n = bpf_map_lookup_elem(&events_lost, &zero);
//         if (n) __sync_fetch_and_add(n, 1);        // per-CPU: (*n)++ is enough
//         return 0;
//     }
//
// `stats.lost` is then the sum of that counter (over CPUs for a per-CPU map) at `lostKey`
// (default 0), minus its value when the reader was opened; without a lostCounter it is 0.
// Back-pressure is visible as `stats.pendingBytes` (producer_pos - consumer_pos: what the kernel
// holds that the reader has not consumed) against `stats.capacity`.
//
// Back-pressure in the async iterator: records are pulled from the ring only when the consumer
// asks for them, at most `highWaterMark` at a time, so a slow consumer leaves them in the kernel
// ring — which fills, and the producer sees its reservations fail — instead of an unbounded queue
// in JavaScript.
import { constants } from 'node:os';
import { type Codec, codecFor } from '../btf/index.js';
import { BpfError } from '../errors.js';
import { addressOf, koffi, lastErrno, type Pointer } from '../ffi/koffi.js';
import { libc, MAP_SHARED, PROT_READ, PROT_WRITE } from '../ffi/libc.js';
import type { BpfMap } from '../map.js';
import { poller, type Watch } from '../poller.js';
import { lostCounterReader } from './lost.js';

const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const LEN_MASK = 0x3fffffff;
const HDR_SZ = 8;

/** How records are turned into values. */
export type RecordDecode = 'btf' | 'raw' | Codec;

export interface RingBufferReaderOptions {
  /**
   * 'btf' (default when a record type is known): decode each record with the BTF codec of the
   * map's value type, or of `typeName` in the object's BTF. 'raw': a Buffer copy of each record
   * (the default when no type is known). A Codec: decode with it.
   */
  decode?: RecordDecode;
  /** Name of the record's struct in the object's BTF (ring buffers usually have no value type). */
  typeName?: string;
  /** Most records the async iterator holds in JavaScript at a time (default 1024). */
  highWaterMark?: number;
  /** Map the program counts its failed reservations in (see the convention above). */
  lostCounter?: BpfMap;
  /** Key of the counter in lostCounter (default 0). */
  lostKey?: unknown;
  /** Whether a pending iterator keeps the process alive (default true). */
  ref?: boolean;
}

export interface RingBufferStats {
  /** Records delivered (decoded) by this reader. */
  records: number;
  /** Payload bytes of those records. */
  bytes: number;
  /** Records the producer failed to write (its lostCounter), since the reader was opened. */
  lost: number;
  /** Records the reader read but could not deliver because the codec threw on them. */
  drops: number;
  /** Records the producer discarded (bpf_ringbuf_discard), skipped by the reader. */
  discarded: number;
  /** Bytes written by the producer and not yet consumed (back-pressure). */
  pendingBytes: number;
  /** Size of the ring's data area in bytes. */
  capacity: number;
  /** Records read from the ring and waiting in JavaScript for the iterator's consumer. */
  buffered: number;
}

/** A raw record visitor: `view` spans the mapped data area; the record is view[offset, offset+length). */
export type RawRecordVisitor = (view: DataView, offset: number, length: number) => void;

export class RingBufferReader<T = unknown> implements AsyncIterable<T> {
  readonly map: BpfMap;
  readonly capacity: number;
  readonly highWaterMark: number;
  readonly #codec: Codec | null;
  readonly #decodeName: string;
  readonly #pageSize: number;
  #consPtr: Pointer | null;
  #prodPtr: Pointer | null;
  readonly #mask: number;
  #consPos: BigUint64Array;
  #prodPos: BigUint64Array;
  #hdr: Int32Array;
  #data: Uint8Array;
  #view: DataView;
  #cons = 0;
  #stored = 0;
  readonly #storeEvery: number;
  #watch: Watch | null;
  #fd: number;
  #closed = false;
  #queue: T[] = [];
  #head = 0;
  #waiters: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  #readableWaiters: (() => void)[] = [];
  #pulledThisTurn = false;
  #immediate: NodeJS.Immediate | null = null;
  #records = 0;
  #bytes = 0;
  #drops = 0;
  #discarded = 0;
  readonly #lost: (() => number) | null;
  #scratch: Uint8Array | null = null;

  constructor(map: BpfMap, opts: RingBufferReaderOptions = {}) {
    if (map.type !== 'ringbuf') {
      throw new BpfError('read ring buffer', map.description, constants.errno.EINVAL, {
        hint: `it is a ${map.type} map, not a ringbuf`,
      });
    }
    this.map = map;
    const size = map.maxEntries;
    this.capacity = size;
    this.#mask = size - 1;
    if ((size & (size - 1)) !== 0 || size > 0x80000000) {
      throw new BpfError('read ring buffer', map.description, constants.errno.EINVAL, {
        hint: `ring size ${size} is not a power of two ≤ 2 GiB`,
      });
    }
    this.highWaterMark = Math.max(1, Math.floor(opts.highWaterMark ?? 1024));
    this.#storeEvery = Math.max(HDR_SZ, size / 8);
    const { codec, name } = resolveCodec(map, opts);
    this.#codec = codec;
    this.#decodeName = name;
    this.#lost = opts.lostCounter ? lostCounterReader(opts.lostCounter, opts.lostKey ?? 0) : null;

    // The reader works on its own duplicate of the map's fd, so closing the map's object first
    // cannot leave it with a stale (possibly reused) fd number.
    const fd = libc.dup(map.fd);
    if (fd < 0) throw new BpfError('read ring buffer', map.description, lastErrno() || constants.errno.EBADF);
    this.#fd = fd;
    const pageSize = libc.getpagesize();
    this.#pageSize = pageSize;
    let consPtr: Pointer;
    let prodPtr: Pointer;
    try {
      consPtr = mapOrThrow(pageSize, PROT_READ | PROT_WRITE, fd, 0, map, 'consumer page');
      try {
        prodPtr = mapOrThrow(pageSize + 2 * size, PROT_READ, fd, pageSize, map, 'producer page and data');
      } catch (e) {
        libc.munmap(consPtr, pageSize);
        throw e;
      }
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    this.#consPtr = consPtr;
    this.#prodPtr = prodPtr;
    const consBuf: ArrayBuffer = koffi.view(consPtr, pageSize);
    const prodBuf: ArrayBuffer = koffi.view(prodPtr, pageSize + 2 * size);
    this.#consPos = new BigUint64Array(consBuf, 0, 1);
    this.#prodPos = new BigUint64Array(prodBuf, 0, 1);
    this.#hdr = new Int32Array(prodBuf, pageSize, (2 * size) / 4);
    this.#data = new Uint8Array(prodBuf, pageSize, 2 * size);
    this.#view = new DataView(prodBuf, pageSize, 2 * size);
    this.#cons = Number(Atomics.load(this.#consPos, 0));
    this.#stored = this.#cons;
    try {
      this.#watch = poller().watch(fd, () => this.onReadable(), {
        ref: opts.ref ?? true,
        description: `ring buffer ${map.description}`,
      });
    } catch (e) {
      this.unmap();
      throw e;
    }
  }

  /** What records decode with: 'raw', 'codec', or 'btf:<type name>'. */
  get decoding(): string {
    return this.#decodeName;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The mapped data area (2 × capacity, the ring mapped twice); valid until close(). */
  get bytes(): Uint8Array {
    this.assertOpen('read');
    return this.#data;
  }

  get stats(): RingBufferStats {
    return {
      records: this.#records,
      bytes: this.#bytes,
      lost: this.#lost ? this.#lost() : 0,
      drops: this.#drops,
      discarded: this.#discarded,
      pendingBytes: this.#closed ? 0 : this.pendingBytes,
      capacity: this.capacity,
      buffered: this.#queue.length - this.#head,
    };
  }

  /** producer_pos - consumer_pos, read from the mapped pages. */
  get pendingBytes(): number {
    if (this.#closed) return 0;
    return Number(Atomics.load(this.#prodPos, 0)) - this.#cons;
  }

  /** Makes a waiting iterator keep the process alive (the default). */
  ref(): this {
    this.#watch?.ref();
    return this;
  }

  /** Lets the process exit while an iterator waits for records. */
  unref(): this {
    this.#watch?.unref();
    return this;
  }

  /**
   * Visits each record now in the ring (at most max) with the raw mapped bytes — no copy, no
   * allocation. The view is only valid during the call. Returns the number of records visited.
   * (Records the async iterator already took from the ring are not revisited.)
   */
  consumeRaw(visit: RawRecordVisitor, max = Infinity): number {
    this.assertOpen('read');
    const hdr = this.#hdr;
    const view = this.#view;
    const mask = this.#mask;
    const storeEvery = this.#storeEvery;
    let cons = this.#cons;
    let n = 0;
    let bytes = 0;
    let discarded = 0;
    try {
      for (;;) {
        const prod = Number(Atomics.load(this.#prodPos, 0));
        if (cons >= prod) break;
        let progressed = false;
        while (cons < prod && n < max) {
          const off = cons & mask;
          const len = Atomics.load(hdr, off >> 2);
          if (len & BUSY_BIT) break; // reserved, not yet committed
          progressed = true;
          const dataLen = len & LEN_MASK;
          cons += (dataLen + HDR_SZ + 7) & ~7;
          if (len & DISCARD_BIT) {
            discarded++;
          } else {
            n++;
            bytes += dataLen;
            visit(view, off + HDR_SZ, dataLen);
            if (this.#closed) return n; // closed by the visitor: the mapping is gone
          }
          if (cons - this.#stored >= storeEvery) this.storeCons(cons);
        }
        if (!progressed || n >= max) break;
      }
    } finally {
      this.#records += n;
      this.#bytes += bytes;
      this.#discarded += discarded;
      if (cons !== this.#stored) this.storeCons(cons);
    }
    return n;
  }

  /**
   * Calls fn with each decoded record now in the ring (at most max); returns how many. Records
   * the async iterator has already taken from the ring (stats.buffered) come first.
   */
  consume(fn: (record: T) => void, max = Infinity): number {
    let queued = 0;
    while (queued < max && this.#head < this.#queue.length) {
      fn(this.shift());
      queued++;
    }
    if (queued >= max) return queued;
    return queued + this.consumeRing(fn, max - queued);
  }

  private consumeRing(fn: (record: T) => void, max: number): number {
    const codec = this.#codec;
    if (!codec) return this.consumeRaw((_v, off, len) => fn(this.copyRecord(off, len) as T), max);
    const data = this.#data;
    const size = codec.size;
    return this.consumeRaw((_v, off, len) => {
      let value: unknown;
      try {
        value = len >= size ? codec.decode(data, off) : this.decodeShort(codec, off, len);
      } catch {
        this.#drops++;
        this.#records--;
        this.#bytes -= len;
        return;
      }
      fn(value as T);
    }, max);
  }

  /** Reads what is in the ring now (at most max records), synchronously. */
  drain(max = Infinity): T[] {
    const out: T[] = [];
    this.consume((r) => out.push(r), max);
    return out;
  }

  /**
   * Next record; waits (on the shared poller) when the ring is empty. Done after close().
   * Records are pulled from the ring synchronously at most once per turn of the event loop (up
   * to highWaterMark of them); past that the next pull waits for setImmediate, so a busy ring
   * cannot starve timers and I/O of the rest of the process.
   */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#queue.length) return Promise.resolve({ value: this.shift(), done: false });
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiters.length === 0 && !this.#pulledThisTurn && this.fill() > 0) {
      return Promise.resolve({ value: this.shift(), done: false });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.wait(reject);
    });
  }

  /**
   * Resolves when there are records to read (drain / consume / consumeRaw), or the reader is
   * closed. It always lets the event loop turn once (setImmediate) when records are there
   * already, so `for (;;) { await r.readable(); r.consumeRaw(fn, n); }` does not starve it.
   */
  readable(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#readableWaiters.push(resolve);
      this.wait(reject);
    });
  }

  /** Gets onReadable called: on the next turn if records are there, else by the poller. */
  private wait(reject: (e: unknown) => void): void {
    if (this.#head < this.#queue.length || this.hasRecords()) {
      if (!this.#immediate) this.#immediate = setImmediate(this.#onImmediate);
      return;
    }
    try {
      this.#watch!.arm();
    } catch (e) {
      this.#waiters = [];
      this.#readableWaiters = [];
      reject(e);
    }
  }

  readonly #onImmediate = (): void => {
    this.#immediate = null;
    this.onReadable();
  };

  /** Whether the ring holds a committed record (or a discarded one) at consumer_pos. */
  private hasRecords(): boolean {
    if (this.#closed) return false;
    if (this.#cons >= Number(Atomics.load(this.#prodPos, 0))) return false;
    return (Atomics.load(this.#hdr, (this.#cons & this.#mask) >> 2) & BUSY_BIT) === 0;
  }

  /** Iterates the records. Leaving the loop early (break, throw) closes the reader, as a stream does. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const it: AsyncIterableIterator<T> = {
      next: () => this.next(),
      return: (value?: unknown) => {
        this.close();
        return Promise.resolve({ value: value as T, done: true });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Iterates batches (arrays of up to highWaterMark records): less overhead per record. */
  async *batches(): AsyncGenerator<T[]> {
    try {
      while (!this.#closed) {
        if (this.#head < this.#queue.length) {
          const batch = this.#queue.slice(this.#head);
          this.#queue = [];
          this.#head = 0;
          yield batch;
          continue;
        }
        const r = await this.next();
        if (r.done) return;
        const batch = [r.value];
        this.consume((v) => batch.push(v), this.highWaterMark - 1);
        yield batch;
      }
    } finally {
      this.close();
    }
  }

  /** Stops reading, unmaps the ring and ends pending iterations. The map itself stays open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    this.#watch = null;
    this.unmap();
    this.#queue = [];
    this.#head = 0;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = null;
    const waiters = this.#waiters;
    const readable = this.#readableWaiters;
    this.#waiters = [];
    this.#readableWaiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
    for (const resolve of readable) resolve();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private onReadable(): void {
    if (this.#closed) return;
    if (this.#readableWaiters.length > 0 && (this.#head < this.#queue.length || this.hasRecords())) {
      const ready = this.#readableWaiters;
      this.#readableWaiters = [];
      for (const resolve of ready) resolve();
    }
    while (this.#waiters.length > 0) {
      if (this.#head >= this.#queue.length && this.fill() === 0) break;
      this.#waiters.shift()!.resolve({ value: this.shift(), done: false });
    }
    if (this.#waiters.length > 0 || this.#readableWaiters.length > 0) this.#watch!.arm();
  }

  /** Pulls up to highWaterMark records into the (empty) queue. */
  private fill(): number {
    if (!this.#pulledThisTurn) {
      this.#pulledThisTurn = true;
      setImmediate(this.#endTurn);
    }
    this.#queue.length = 0;
    this.#head = 0;
    const q = this.#queue;
    return this.consumeRing((r) => q.push(r), this.highWaterMark);
  }

  readonly #endTurn = (): void => {
    this.#pulledThisTurn = false;
  };

  private shift(): T {
    const v = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as T;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return v;
  }

  private storeCons(cons: number): void {
    Atomics.store(this.#consPos, 0, BigInt(cons));
    this.#stored = cons;
    this.#cons = cons;
  }

  private copyRecord(off: number, len: number): Buffer {
    return Buffer.from(this.#data.subarray(off, off + len));
  }

  /** A record shorter than its type (e.g. a variable-length tail): decoded zero-padded. */
  private decodeShort(codec: Codec, off: number, len: number): unknown {
    if (!this.#scratch || this.#scratch.length < codec.size) this.#scratch = new Uint8Array(codec.size);
    this.#scratch.fill(0);
    this.#scratch.set(this.#data.subarray(off, off + len));
    return codec.decode(this.#scratch, 0);
  }

  private assertOpen(op: string): void {
    if (this.#closed)
      throw new BpfError(op, `ring buffer ${this.map.description}`, constants.errno.EBADF, {
        hint: 'the reader is closed',
      });
  }

  private unmap(): void {
    const size = this.capacity;
    // Drop every view first: touching one after munmap would crash the process.
    this.#consPos = new BigUint64Array(1);
    this.#prodPos = new BigUint64Array(1);
    this.#hdr = new Int32Array(0);
    this.#data = new Uint8Array(0);
    this.#view = new DataView(new ArrayBuffer(0));
    if (this.#consPtr) libc.munmap(this.#consPtr, this.#pageSize);
    if (this.#prodPtr) libc.munmap(this.#prodPtr, this.#pageSize + 2 * size);
    this.#consPtr = null;
    this.#prodPtr = null;
    if (this.#fd >= 0) libc.close(this.#fd);
    this.#fd = -1;
  }
}

function mapOrThrow(len: number, prot: number, fd: number, off: number, map: BpfMap, what: string): Pointer {
  const p = libc.mmap(null, len, prot, MAP_SHARED, fd, off);
  const addr = addressOf(p);
  if (addr === 0n || addr === 0xffffffffffffffffn || addr === -1n) {
    throw new BpfError(
      'map into memory',
      `the ${what} of ring buffer ${map.description}`,
      lastErrno() || constants.errno.ENOMEM,
    );
  }
  return p;
}

/** The codec records decode with, from the options and the map's BTF. */
export function resolveCodec(
  map: BpfMap,
  opts: { decode?: RecordDecode; typeName?: string; ignoreValueType?: boolean },
): { codec: Codec | null; name: string } {
  const decode = opts.decode;
  if (decode === 'raw') return { codec: null, name: 'raw' };
  if (decode && typeof decode === 'object') return { codec: decode, name: 'codec' };
  const btf = map.btf;
  if (opts.typeName) {
    if (!btf) {
      throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
        hint: `type "${opts.typeName}" was asked for but the map has no BTF`,
      });
    }
    const found = btf.findByName(opts.typeName, 'struct') ?? btf.findByName(opts.typeName);
    if (!found) {
      throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
        hint: `no type "${opts.typeName}" in the object's BTF`,
      });
    }
    return { codec: codecFor(btf, found.id), name: `btf:${opts.typeName}` };
  }
  if (btf && map.valueTypeId && !opts.ignoreValueType)
    return { codec: codecFor(btf, map.valueTypeId), name: `btf:${btf.typeName(map.valueTypeId)}` };
  if (decode === 'btf') {
    throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
      hint: "the record type is unknown: pass typeName (a struct in the object's BTF) or a Codec",
    });
  }
  return { codec: null, name: 'raw' };
}
