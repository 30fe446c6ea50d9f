// Reading a BPF_MAP_TYPE_PERF_EVENT_ARRAY: a PerfWalker (walker.ts: libbpf's per-CPU rings,
// walked record by record in JavaScript) and a RecordQueue (../records/queue.ts: the async
// iterator, batches, waiting, back-pressure, close).
//
// Lost records are the kernel's own count (PERF_RECORD_LOST, see walker.ts), per CPU.
//
// Back-pressure: the rings are read only when the iterator's consumer asks for records and
// nothing is queued, at most highWaterMark records at a time, so a slow consumer leaves records
// in the kernel's rings (which then overflow and count lost records).
import type { BpfMap } from '../map.js';
import { type RecordDecode, RecordDecoder, resolveCodec } from '../records/decode.js';
import { RecordQueue } from '../records/queue.js';
import { assertPerfArray, PerfWalker } from './walker.js';

export interface PerfBufferReaderOptions {
  /** As for RingBufferReader: 'btf' with typeName, 'raw' (Buffer copies), or a Codec. */
  decode?: RecordDecode;
  /** Name of the record's struct in the object's BTF. */
  typeName?: string;
  /** Pages of ring per CPU, a power of two (default 8). */
  pagesPerCpu?: number;
  /** Most records pulled from the rings at a time, and the size of `batches()` (default 1024). */
  highWaterMark?: number;
  /** Whether a pending iterator keeps the process alive (default true). */
  ref?: boolean;
}

export interface PerfBufferStats {
  /** Records delivered by this reader. */
  records: number;
  /** Payload bytes of those records (as the kernel sized them, padded to 8 bytes minus 4). */
  bytes: number;
  /** Records the kernel could not write because a CPU's buffer was full (PERF_RECORD_LOST). */
  lost: number;
  /** Records the reader received but could not deliver (the codec threw). */
  drops: number;
  /** Lost records per CPU. */
  lostPerCpu: Record<number, number>;
  /** Records read from the kernel and waiting in JavaScript for the iterator's consumer. */
  buffered: number;
}

export class PerfBufferReader<T = unknown> implements AsyncIterable<T> {
  readonly map: BpfMap;
  readonly pagesPerCpu: number;
  readonly highWaterMark: number;
  readonly #decodeName: string;
  readonly #queue: RecordQueue<T>;

  constructor(map: BpfMap, opts: PerfBufferReaderOptions = {}) {
    const pages = opts.pagesPerCpu ?? 8;
    assertPerfArray(map, pages);
    // The map's own value type is the fd slot (an int), never the record: only typeName or a codec.
    const { codec, name } = resolveCodec(map, { decode: opts.decode, typeName: opts.typeName, ignoreValueType: true });
    const walker = new PerfWalker<T>(map, pages, new RecordDecoder(codec));
    try {
      this.#queue = new RecordQueue(walker, { highWaterMark: opts.highWaterMark, ref: opts.ref });
    } catch (e) {
      walker.close();
      throw e;
    }
    this.map = map;
    this.pagesPerCpu = pages;
    this.highWaterMark = this.#queue.highWaterMark;
    this.#decodeName = name;
  }

  get decoding(): string {
    return this.#decodeName;
  }

  get closed(): boolean {
    return this.#queue.closed;
  }

  get stats(): PerfBufferStats {
    const c = this.#queue.counts;
    return {
      records: c.records,
      bytes: c.bytes,
      lost: this.#queue.lost,
      drops: c.drops,
      lostPerCpu: { ...c.lostPerCpu },
      buffered: this.#queue.buffered,
    };
  }

  ref(): this {
    this.#queue.ref();
    return this;
  }

  unref(): this {
    this.#queue.unref();
    return this;
  }

  /**
   * Calls fn with each record there is now (at most max): queued ones first, then the per-CPU
   * rings'; returns how many. If fn throws, the error propagates and the records after it stay
   * for the next call.
   */
  consume(fn: (record: T) => void, max = Infinity): number {
    return this.#queue.consume(fn, max);
  }

  /** Everything available now (at most max records; the rest stays for the next call). */
  drain(max = Infinity): T[] {
    return this.#queue.drain(max);
  }

  /**
   * Next record; waits (on the shared poller) when the rings are empty. The rings are read
   * synchronously at most once per turn of the event loop, so a busy producer cannot starve the
   * rest of the process.
   */
  next(): Promise<IteratorResult<T>> {
    return this.#queue.next();
  }

  /** Resolves when the rings hold records (drain / consume), or the reader is closed. */
  readable(): Promise<void> {
    return this.#queue.readable();
  }

  /** Iterates the records; leaving the loop early closes the reader. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this.#queue[Symbol.asyncIterator]();
  }

  /** Iterates batches of up to highWaterMark records. */
  batches(): AsyncGenerator<T[]> {
    return this.#queue.batches();
  }

  /** Stops reading and frees the perf buffer (its perf events are closed). */
  close(): void {
    this.#queue.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
