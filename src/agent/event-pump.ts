// Moves an instance's events from its pinned ring/perf buffers into its log, decoded from the
// package's BTF. A pump reads from the pinned map, so it can be closed and re-opened (agent
// restart, upgrade that carries the buffer over) without losing what the ring still holds.
//
// Ring buffers are mapped only while they carry events: an idle ring is watched through its fd
// (epoll says when the producer submits) and unmapped again after IDLE_UNMAP_MS without records.
// A mapped ring counts fully in the agent's RSS (the kernel maps every page at mmap time), so a
// node with hundreds of mostly quiet instances would otherwise pay ~0.5 MB per 256 KiB ring.
//
// When the sink takes ready-made lines (a LogStore) and the event's codec has a JSON encoder,
// records go from the buffer's bytes to log lines directly (event-lines.ts): a ring is walked in
// place, a perf buffer's records are copied once. Otherwise each record is decoded, made
// JSON-safe and appended as an object — the same line either way.

import {
  BpfMap,
  BpfObject,
  type Codec,
  codecFor,
  PerfBufferReader,
  poller,
  RingBufferReader,
  type Watch,
} from 'kbpf/bpf';
import type { EventSpec, PackageSpec, ProcessorSpec } from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import { EventProcessor, type ProcessedBatch, type ProcessorCounts } from '../wasm/processor.js';
import { EventLines, type LineSink } from './event-lines.js';
import { eventPriority } from './event-priority.js';
import type { FetchedPackage } from './package-cache.js';
import type { InstancePins } from './pins.js';

export const IDLE_UNMAP_MS = 2000;

export interface EventSink extends Partial<LineSink> {
  append(instance: string, record: object): void;
  /** makes what was appended durable against a crash of this process */
  flushNow?(instance: string): void;
}

/** Records read from a ring per batch (as many as a reader's default highWaterMark). */
const BATCH = 1024;

type Reader = RingBufferReader<unknown> | PerfBufferReader<unknown>;

/** Codecs of each event's record struct, from the BTF of objects that are open already. */
export function eventCodecsOf(spec: PackageSpec, object: (file: string) => BpfObject): Map<string, Codec | null> {
  const out = new Map<string, Codec | null>();
  for (const ev of spec.events) {
    const btf = object(ev.object).btf;
    const t = ev.type && btf?.findStruct(ev.type);
    out.set(ev.map, t && btf ? codecFor(btf, t.id) : null);
  }
  return out;
}

/**
 * The package's event codecs, derived once per package: by the plan that opened its objects,
 * or here (opening them without loading) for an instance an agent adopts after a restart.
 */
export function eventCodecs(pkg: FetchedPackage): Map<string, Codec | null> {
  if (pkg.eventCodecs) return pkg.eventCodecs;
  const files = [...new Set(pkg.spec.events.map((e) => e.object))];
  const open = new Map(files.map((f) => [f, BpfObject.open(pkg.objects.get(f)!, { name: f })]));
  try {
    pkg.eventCodecs = eventCodecsOf(pkg.spec, (f) => open.get(f)!);
  } finally {
    for (const o of open.values()) o.close();
  }
  return pkg.eventCodecs;
}

/** One event buffer of an instance: a reader that exists while there is something to read. */
class Stream {
  #reader: Reader | null = null;
  #watch: Watch | null = null;
  #loop: Promise<void> = Promise.resolve();
  #lastRecord = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #lostBefore = 0;

  constructor(
    readonly ev: EventSpec,
    readonly map: BpfMap,
    readonly lostCounter: BpfMap | undefined,
    readonly decode: Codec | 'raw',
    readonly onBatch: (ev: EventSpec, batch: unknown[]) => void,
    readonly onProcessed: (ev: EventSpec, out: ProcessedBatch, read: number) => void,
    readonly lines: EventLines | null,
    readonly onLines: (count: number) => void,
    readonly processor: EventProcessor | null = null,
  ) {}

  start(): void {
    if (this.ev.kind === 'perf') {
      this.open(); // perf buffers have no single fd to watch before they exist
      return;
    }
    this.#watch = poller().watch(this.map.fd, () => this.open(), {
      ref: false,
      description: `ring buffer ${this.ev.map}`,
    });
    this.#watch.arm();
  }

  private open(): void {
    if (this.#closed || this.#reader) return;
    const decode = this.lines || this.processor ? 'raw' : this.decode;
    const reader: Reader =
      this.ev.kind === 'ringbuf'
        ? new RingBufferReader(this.map, { decode, lostCounter: this.lostCounter, ref: false, pollMs: this.ev.pollMs })
        : new PerfBufferReader(this.map, { decode, ref: false });
    this.#reader = reader;
    this.#lastRecord = Date.now();
    this.#loop = this.processor
      ? this.pumpProcessed(reader, this.processor)
      : !this.lines
        ? this.pump(reader)
        : reader instanceof RingBufferReader
          ? this.pumpRing(reader, this.lines)
          : this.pumpCopies(reader, this.lines);
    if (this.ev.kind === 'ringbuf') {
      this.#idleTimer = setInterval(() => this.unmapIfIdle(), IDLE_UNMAP_MS / 2);
      this.#idleTimer.unref();
    }
  }

  private async pump(reader: Reader): Promise<void> {
    try {
      for await (const batch of reader.batches()) {
        this.#lastRecord = Date.now();
        this.onBatch(this.ev, batch);
      }
    } catch (e) {
      if (!this.#closed)
        process.stderr.write(`kbpf agent: events of ${this.ev.map} stopped: ${(e as Error).message}\n`);
    }
  }

  /**
   * Records through the event processor: each batch (copies of the raw records) is handed to it
   * and the next is read only when it answered, so a slow processor slows the reading instead
   * of dropping anything here. Once the processor was stopped, records are logged as they come.
   */
  private async pumpProcessed(reader: Reader, processor: EventProcessor): Promise<void> {
    try {
      for await (const batch of reader.batches()) {
        this.#lastRecord = Date.now();
        const raw = batch as Uint8Array[];
        const out = await processor.process(raw);
        this.onProcessed(this.ev, out ?? { records: raw, json: [] }, raw.length);
      }
    } catch (e) {
      if (!this.#closed)
        process.stderr.write(`kbpf agent: events of ${this.ev.map} stopped: ${(e as Error).message}\n`);
    }
  }

  /** Ring records to lines, read in place from the mapped ring. */
  private async pumpRing(reader: RingBufferReader<unknown>, lines: EventLines): Promise<void> {
    try {
      const data = reader.bytes;
      const visit = (_view: DataView, off: number, len: number): void => lines.add(data, off, len);
      const priority = eventPriority();
      while (!reader.closed) {
        await reader.readable();
        if (reader.closed) break;
        lines.begin();
        const read = reader.consumeRaw(visit, BATCH);
        const n = lines.end();
        priority.afterBatch(this, read, reader.pendingBytes / reader.capacity);
        if (n > 0) {
          this.#lastRecord = Date.now();
          this.onLines(n);
        }
      }
    } catch (e) {
      if (!this.#closed)
        process.stderr.write(`kbpf agent: events of ${this.ev.map} stopped: ${(e as Error).message}\n`);
    } finally {
      eventPriority().forget(this);
    }
  }

  /** Perf buffer records (copies of their bytes) to lines. */
  private async pumpCopies(reader: PerfBufferReader<unknown>, lines: EventLines): Promise<void> {
    try {
      for await (const batch of reader.batches()) {
        this.#lastRecord = Date.now();
        lines.begin();
        for (const rec of batch) {
          const bytes = rec as Uint8Array;
          lines.add(bytes, 0, bytes.length);
        }
        this.onLines(lines.end());
      }
    } catch (e) {
      if (!this.#closed)
        process.stderr.write(`kbpf agent: events of ${this.ev.map} stopped: ${(e as Error).message}\n`);
    }
  }

  /**
   * Unmaps a ring that has been quiet, and goes back to watching its fd. A ring that holds
   * records nobody delivered for that long means a wake-up was missed: its reader is re-opened
   * (the records stay in the ring; consumer_pos lives in the kernel's page).
   */
  private unmapIfIdle(): void {
    const r = this.#reader as RingBufferReader<unknown> | null;
    if (!r || this.#closed) return;
    if (Date.now() - this.#lastRecord < IDLE_UNMAP_MS || r.stats.buffered > 0) return;
    const stuck = r.pendingBytes > 0;
    this.#lostBefore += r.stats.lost;
    this.stopReader();
    if (stuck) this.open();
    else this.#watch?.arm();
  }

  private stopReader(): void {
    if (this.#idleTimer) clearInterval(this.#idleTimer);
    this.#idleTimer = null;
    this.#reader?.close();
    this.#reader = null;
  }

  get mapped(): boolean {
    return this.#reader !== null;
  }

  get lost(): number {
    return this.#lostBefore + (this.#reader?.stats.lost ?? 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#lostBefore = this.lost;
    this.#closed = true;
    this.#watch?.close();
    this.stopReader();
    await this.#loop;
    this.map.close();
    this.lostCounter?.close();
  }
}

export class EventPump {
  readonly #streams: Stream[] = [];
  readonly #processors: EventProcessor[] = [];
  received = 0;

  constructor(
    readonly instance: string,
    events: EventSpec[],
    codecs: Map<string, Codec | null>,
    pins: InstancePins,
    rev: number,
    readonly sink: EventSink,
    processor?: { module: WebAssembly.Module; spec: ProcessorSpec },
  ) {
    for (const ev of events) {
      if (!pins.has(rev, 'maps', ev.map)) continue;
      const map = BpfMap.fromPin(pins.path(rev, 'maps', ev.map));
      const lostName = [`${ev.map}_lost`, 'lost_events'].find((n) => pins.has(rev, 'maps', n));
      const lostCounter = lostName ? BpfMap.fromPin(pins.path(rev, 'maps', lostName)) : undefined;
      const codec = codecs.get(ev.map) ?? null;
      // durable as the other path's flushNow after each batch makes it
      const processed = processor && (processor.spec.events.length === 0 || processor.spec.events.includes(ev.map));
      const lines =
        !processed && codec && sink.lineHead && sink.appendLines
          ? EventLines.for(instance, ev, codec, sink as LineSink, sink.flushNow !== undefined)
          : null;
      this.#streams.push(
        new Stream(
          ev,
          map,
          lostCounter,
          codec ?? 'raw',
          (e, batch) => this.write(e, batch),
          (e, out, read) => this.writeProcessed(e, codec, out, read),
          lines,
          (n) => {
            this.received += n;
          },
          processed ? this.processorFor(processor.module, ev, codec) : null,
        ),
      );
    }
  }

  start(): this {
    for (const s of this.#streams) s.start();
    return this;
  }

  /** One processor per event map it sees (its own worker and state). */
  private processorFor(module: WebAssembly.Module, ev: EventSpec, codec: Codec | null): EventProcessor {
    const p = new EventProcessor(
      module,
      (out) => this.writeProcessed(ev, codec, out, 0),
      (message) => {
        this.sink.append(this.instance, {
          source: 'processor',
          line: `${ev.map}: ${message}; its events are logged as they come`,
        });
        this.sink.flushNow?.(this.instance);
      },
    );
    this.#processors.push(p);
    return p;
  }

  private writeProcessed(ev: EventSpec, codec: Codec | null, out: ProcessedBatch, read: number): void {
    const decoded: unknown[] = out.records.map((r) => (codec && r.length >= codec.size ? codec.decode(r, 0) : r));
    // the processor's own JSON records (aggregates) keep every field: the event's columns are its layout's
    for (const j of out.json) this.sink.append(this.instance, { source: ev.map, event: jsonValue(j) });
    this.write(ev, decoded);
    this.received += read - decoded.length;
  }

  /** What the event processors saw, dropped and emitted (undefined without one). */
  get processed(): ProcessorCounts | undefined {
    if (this.#processors.length === 0) return undefined;
    const c: ProcessorCounts = { in: 0, dropped: 0, emitted: 0 };
    for (const p of this.#processors) {
      c.in += p.counts.in;
      c.dropped += p.counts.dropped;
      c.emitted += p.counts.emitted;
      c.failed ??= p.counts.failed;
    }
    return c;
  }

  private write(ev: EventSpec, batch: unknown[]): void {
    const columns = ev.columns;
    for (const rec of batch) {
      let value = jsonValue(rec);
      if (columns && value && typeof value === 'object') {
        const all = value as Record<string, unknown>;
        value = Object.fromEntries(columns.map((c) => [c, all[c]]));
      }
      this.sink.append(this.instance, { source: ev.map, event: value });
    }
    this.sink.flushNow?.(this.instance);
    this.received += batch.length;
  }

  /** Ring buffers currently mapped (the rest are watched through their fd only). */
  get mappedStreams(): number {
    return this.#streams.filter((s) => s.mapped).length;
  }

  get lost(): number {
    return this.#streams.reduce((n, s) => n + s.lost, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.#streams.map((s) => s.close()));
    await Promise.all(this.#processors.map((p) => p.close()));
  }
}
