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
import { queueOver, RecordReader } from '../records/reader.js';
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

export class PerfBufferReader<T = unknown> extends RecordReader<T> {
  readonly map: BpfMap;
  readonly pagesPerCpu: number;

  constructor(map: BpfMap, opts: PerfBufferReaderOptions = {}) {
    const pages = opts.pagesPerCpu ?? 8;
    assertPerfArray(map, pages);
    // The map's own value type is the fd slot (an int), never the record: only typeName or a codec.
    const { codec, name } = resolveCodec(map, { decode: opts.decode, typeName: opts.typeName, ignoreValueType: true });
    const walker = new PerfWalker<T>(map, pages, new RecordDecoder(codec));
    super(queueOver(walker, { highWaterMark: opts.highWaterMark, ref: opts.ref }), name);
    this.map = map;
    this.pagesPerCpu = pages;
  }

  get stats(): PerfBufferStats {
    const c = this.queue.counts;
    return {
      records: c.records,
      bytes: c.bytes,
      lost: this.queue.lost,
      drops: c.drops,
      lostPerCpu: { ...c.lostPerCpu },
      buffered: this.queue.buffered,
    };
  }
}
