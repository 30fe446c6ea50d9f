// The walker of a BPF_MAP_TYPE_RINGBUF map: maps the ring into this process and walks its
// records in JavaScript (the RecordSource of a RingBufferReader; see reader.ts for the rest).
//
// The ring is mapped the way libbpf maps it: the consumer page read-write (we publish
// consumer_pos there), the producer page and the data area read-only, with the data area mapped
// twice in a row (2 * size) so a record that wraps around the end is contiguous. No FFI call per
// record, nor per batch: positions are loaded from the mapped pages, each record's 8-byte header
// { u32 len (bit 31 BUSY, bit 30 DISCARD); u32 pg_off } is read with an atomic load, busy records
// stop the walk, discarded ones are skipped, and consumer_pos is published with an atomic store
// after a batch (and every eighth of the ring within long batches, so the producer gets room
// back early).
import { constants } from 'node:os';
import { BpfError } from '../errors.js';
import { addressOf, koffi, lastErrno, type Pointer } from '../ffi/koffi.js';
import { libc, MAP_SHARED, PROT_READ, PROT_WRITE } from '../ffi/libc.js';
import type { BpfMap } from '../map.js';
import type { RecordDecoder } from '../records/decode.js';
import type { RecordCounts, RecordSource } from '../records/source.js';

const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const LEN_MASK = 0x3fffffff;
const HDR_SZ = 8;

/**
 * A raw record visitor: `view` spans the mapped data area; the record is view[offset, offset+length).
 * Returning false stops the walk after this record (which is consumed).
 */
export type RawRecordVisitor = (view: DataView, offset: number, length: number) => unknown;

export class RingWalker<T> implements RecordSource<T> {
  readonly map: BpfMap;
  readonly description: string;
  /** Size of the ring's data area in bytes. */
  readonly capacity: number;
  readonly #decoder: RecordDecoder;
  readonly #lost: (() => number) | null;
  readonly #pageSize: number;
  readonly #mask: number;
  readonly #storeEvery: number;
  #fd: number;
  #consPtr: Pointer | null;
  #prodPtr: Pointer | null;
  #consPos: BigUint64Array;
  #prodPos: BigUint64Array;
  #hdr: Int32Array;
  #data: Uint8Array;
  #view: DataView;
  #cons = 0;
  #stored = 0;
  #closed = false;
  /** Records the producer discarded (bpf_ringbuf_discard), skipped. */
  discarded = 0;

  /** Maps the ring of `map` (on its own duplicate of the map's fd). */
  constructor(map: BpfMap, decoder: RecordDecoder, lost: (() => number) | null) {
    assertRing(map);
    const size = map.maxEntries;
    this.map = map;
    this.description = `ring buffer ${map.description}`;
    this.capacity = size;
    this.#mask = size - 1;
    this.#storeEvery = Math.max(HDR_SZ, size / 8);
    this.#decoder = decoder;
    this.#lost = lost;

    // Our own duplicate of the map's fd, so closing the map's object first cannot leave the
    // walker with a stale (possibly reused) fd number.
    const fd = libc.dup(map.fd);
    if (fd < 0) throw new BpfError('read ring buffer', map.description, lastErrno() || constants.errno.EBADF);
    const pageSize = libc.getpagesize();
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
    this.#fd = fd;
    this.#pageSize = pageSize;
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
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The mapped data area (2 × capacity, the ring mapped twice); empty once closed. */
  get data(): Uint8Array {
    return this.#data;
  }

  /** producer_pos - consumer_pos, read from the mapped pages: what the kernel holds unread. */
  get pendingBytes(): number {
    if (this.#closed) return 0;
    return Number(Atomics.load(this.#prodPos, 0)) - this.#cons;
  }

  /** Whether the ring holds a committed record (or a discarded one) at consumer_pos. */
  ready(): boolean {
    if (this.#closed) return false;
    if (this.#cons >= Number(Atomics.load(this.#prodPos, 0))) return false;
    return (Atomics.load(this.#hdr, (this.#cons & this.#mask) >> 2) & BUSY_BIT) === 0;
  }

  lostOutside(): number {
    return this.#lost ? this.#lost() : 0;
  }

  /**
   * Visits each committed record (at most max) with the raw mapped bytes — no copy, no
   * allocation; the view is only valid during the call. Returns the number visited.
   */
  walkRaw(visit: RawRecordVisitor, max: number, counts: RecordCounts): number {
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
            const more = visit(view, off + HDR_SZ, dataLen);
            if (this.#closed) return n; // closed by the visitor: the mapping is gone
            if (more === false) {
              // the visitor stops the walk: its record is consumed (as with libbpf's callbacks)
              return n;
            }
          }
          if (cons - this.#stored >= storeEvery) this.storeCons(cons);
        }
        if (!progressed || n >= max) break;
      }
    } finally {
      counts.records += n;
      counts.bytes += bytes;
      this.discarded += discarded;
      if (!this.#closed && cons !== this.#stored) this.storeCons(cons);
    }
    return n;
  }

  read(deliver: (record: T) => void, max: number, counts: RecordCounts): number {
    const decoder = this.#decoder;
    const data = this.#data;
    let dropped = 0;
    const n = this.walkRaw(
      (_view, off, len) => {
        let value: unknown;
        try {
          value = decoder.decode(data, off, len);
        } catch {
          dropped++;
          counts.drops++;
          counts.records--;
          counts.bytes -= len;
          return;
        }
        deliver(value as T);
      },
      max,
      counts,
    );
    return n - dropped;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
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

  private storeCons(cons: number): void {
    Atomics.store(this.#consPos, 0, BigInt(cons));
    this.#stored = cons;
    this.#cons = cons;
  }
}

/** Throws unless `map` is a ring buffer the walker can map. */
export function assertRing(map: BpfMap): void {
  if (map.type !== 'ringbuf') {
    throw new BpfError('read ring buffer', map.description, constants.errno.EINVAL, {
      hint: `it is a ${map.type} map, not a ringbuf`,
    });
  }
  const size = map.maxEntries;
  if ((size & (size - 1)) !== 0 || size > 0x80000000) {
    throw new BpfError('read ring buffer', map.description, constants.errno.EINVAL, {
      hint: `ring size ${size} is not a power of two ≤ 2 GiB`,
    });
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
