// Reading a BPF_MAP_TYPE_RINGBUF map in JavaScript: a RingWalker (walker.ts: the mapped ring,
// walked record by record) and a RecordQueue (../records/queue.ts: the async iterator,
// batches, waiting, back-pressure, close).
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
import type { BpfMap } from '../map.js';
import { type RecordDecode, RecordDecoder, resolveCodec } from '../records/decode.js';
import { queueOver, RecordReader } from '../records/reader.js';
import { lostCounterReader } from './lost.js';
import { assertRing, type RawRecordVisitor, RingWalker } from './walker.js';

export type { RecordDecode } from '../records/decode.js';
export { resolveCodec } from '../records/decode.js';
export type { RawRecordVisitor } from './walker.js';

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
  /**
   * Also look at the ring every pollMs while waiting: for a producer that submits with
   * BPF_RB_NO_WAKEUP and wakes its reader only now and then (default: wait for wake-ups only).
   */
  pollMs?: number;
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

export class RingBufferReader<T = unknown> extends RecordReader<T> {
  readonly map: BpfMap;
  readonly capacity: number;
  readonly #ring: RingWalker<T>;

  constructor(map: BpfMap, opts: RingBufferReaderOptions = {}) {
    assertRing(map);
    const { codec, name } = resolveCodec(map, opts);
    const lost = opts.lostCounter ? lostCounterReader(opts.lostCounter, opts.lostKey ?? 0) : null;
    const ring = new RingWalker<T>(map, new RecordDecoder(codec), lost);
    super(queueOver(ring, { highWaterMark: opts.highWaterMark, ref: opts.ref, pollMs: opts.pollMs }), name);
    this.#ring = ring;
    this.map = map;
    this.capacity = ring.capacity;
  }

  /** The mapped data area (2 × capacity, the ring mapped twice); valid until close(). */
  get bytes(): Uint8Array {
    this.queue.assertOpen('read');
    return this.#ring.data;
  }

  get stats(): RingBufferStats {
    const c = this.queue.counts;
    return {
      records: c.records,
      bytes: c.bytes,
      lost: this.queue.lost,
      drops: c.drops,
      discarded: this.#ring.discarded,
      pendingBytes: this.#ring.pendingBytes,
      capacity: this.capacity,
      buffered: this.queue.buffered,
    };
  }

  /** producer_pos - consumer_pos, read from the mapped pages. */
  get pendingBytes(): number {
    return this.#ring.pendingBytes;
  }

  /**
   * Visits each record now in the ring (at most max) with the raw mapped bytes — no copy, no
   * allocation. The view is only valid during the call. Returns the number of records visited.
   * (Records the async iterator already took from the ring are not revisited.)
   */
  consumeRaw(visit: RawRecordVisitor, max = Infinity): number {
    this.queue.assertOpen('read');
    return this.#ring.walkRaw(visit, max, this.queue.counts);
  }
}
