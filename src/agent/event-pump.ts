// Moves an instance's events from its pinned ring/perf buffers into its log, decoded from the
// package's BTF. A pump reads from the pinned map, so it can be closed and re-opened (agent
// restart, upgrade that carries the buffer over) without losing what the ring still holds.
import { BpfObject } from '../bpf/object.js';
import { BpfMap } from '../bpf/map.js';
import { codecFor, type Codec } from '../bpf/btf/index.js';
import { RingBufferReader } from '../bpf/ringbuf/reader.js';
import { PerfBufferReader } from '../bpf/perf/reader.js';
import type { EventSpec } from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import type { InstancePins } from './pins.js';
import type { ResolvedImage } from './types.js';

export interface EventSink {
  append(instance: string, record: object): void;
  /** makes what was appended durable against a crash of this process */
  flushNow?(instance: string): void;
}

type Reader = RingBufferReader<unknown> | PerfBufferReader<unknown>;

/** Codecs of each event's record struct, from the objects' BTF (no kernel needed). */
export function eventCodecs(image: ResolvedImage): Map<string, Codec | null> {
  const out = new Map<string, Codec | null>();
  for (const file of image.spec.objects) {
    const evs = image.spec.events.filter((e) => e.object === file);
    if (evs.length === 0) continue;
    const obj = BpfObject.open(image.objects.get(file)!, { name: file });
    try {
      for (const ev of evs) {
        const t = ev.type && obj.btf?.findByName(ev.type, 'STRUCT');
        out.set(ev.map, t && obj.btf ? codecFor(obj.btf, t.id) : null);
      }
    } finally {
      obj.close();
    }
  }
  return out;
}

export class EventPump {
  #readers: { ev: EventSpec; reader: Reader; map: BpfMap; lostCounter?: BpfMap }[] = [];
  #closed = false;
  #done: Promise<void>[] = [];
  received = 0;
  lostBefore = 0;

  constructor(
    readonly instance: string,
    image: ResolvedImage,
    pins: InstancePins,
    rev: number,
    readonly sink: EventSink,
    codecs: Map<string, Codec | null> = eventCodecs(image),
  ) {
    for (const ev of image.spec.events) {
      if (!pins.has(rev, 'maps', ev.map)) continue;
      const map = BpfMap.fromPin(pins.path(rev, 'maps', ev.map));
      const codec = codecs.get(ev.map) ?? null;
      const decode = codec ?? 'raw';
      let lostCounter: BpfMap | undefined;
      const lostName = [`${ev.map}_lost`, 'lost_events'].find((n) => pins.has(rev, 'maps', n));
      if (lostName) lostCounter = BpfMap.fromPin(pins.path(rev, 'maps', lostName));
      const reader: Reader = ev.kind === 'ringbuf'
        ? new RingBufferReader(map, { decode, lostCounter, ref: false })
        : new PerfBufferReader(map, { decode, ref: false });
      this.#readers.push({ ev, reader, map, lostCounter });
    }
  }

  start(): this {
    for (const r of this.#readers) this.#done.push(this.pump(r.ev, r.reader));
    return this;
  }

  private async pump(ev: EventSpec, reader: Reader): Promise<void> {
    const columns = ev.columns;
    try {
      for await (const batch of reader.batches()) {
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
        if (this.#closed) break;
      }
    } catch (e) {
      if (!this.#closed) process.stderr.write(`kbpf agent: events of ${this.instance}/${ev.map} stopped: ${(e as Error).message}\n`);
    }
  }

  get lost(): number {
    if (this.#closed) return this.lostBefore;
    return this.lostBefore + this.#readers.reduce((n, r) => n + r.reader.stats.lost, 0);
  }

  /** Reads what is pending now (used before switching readers). */
  async close(): Promise<void> {
    this.lostBefore = this.lost;
    this.#closed = true;
    for (const r of this.#readers) {
      r.reader.close();
      r.map.close();
      r.lostCounter?.close();
    }
    await Promise.allSettled(this.#done);
  }
}
