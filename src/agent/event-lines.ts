// An event's records as the lines of an instance's log, written straight from the buffer's bytes:
// `{"ts":…,"seq":N,"source":"<map>","event":` + the record's JSON (the BTF JSON encoder) + `}\n`
// — the same line LogStore.append({ source, event: jsonValue(decoded) }) writes, without a
// decoded object, a JSON-safe copy of it or a string per record. A batch is begun, filled record
// by record while the ring is walked, and handed to the log store in one piece.
import { type Codec, type JsonEncoder, jsonEncoderFor, writeUint } from 'kbpf/bpf';
import type { EventSpec } from '../package/package-spec.js';
import type { LineHead } from './log-store.js';

/** What takes the lines (a LogStore). */
export interface LineSink {
  lineHead(instance: string): LineHead;
  appendLines(instance: string, lines: Uint8Array, count: number, firstSeq: number, durable?: boolean): void;
}

/** Longest decimal seq (2^53 - 1). */
const MAX_SEQ_DIGITS = 16;

// One buffer for every instance's batches: a batch is begun, filled and ended without the event
// loop turning (the log store copies it), so no two batches are ever open at once. A thousand
// quiet instances then cost no buffer each.
let scratch = new Uint8Array(64 * 1024);

export class EventLines {
  readonly #encoder: JsonEncoder;
  /** `,"source":"<map>","event":` */
  readonly #member: Uint8Array;
  #pos = 0;
  #count = 0;
  #head: Uint8Array = new Uint8Array(0);
  #seq = 0;

  private constructor(
    readonly instance: string,
    ev: EventSpec,
    encoder: JsonEncoder,
    private readonly sink: LineSink,
    private readonly durable: boolean,
  ) {
    this.#encoder = encoder;
    this.#member = new Uint8Array(Buffer.from(`,"source":${JSON.stringify(ev.map)},"event":`));
  }

  /**
   * Lines for the records of `ev`, or null when its codec has no JSON encoder (decode them
   * instead). `durable`: each batch is written to disk before end() returns.
   */
  static for(instance: string, ev: EventSpec, codec: Codec, sink: LineSink, durable = false): EventLines | null {
    const encoder = jsonEncoderFor(codec, { fields: ev.columns });
    return encoder ? new EventLines(instance, ev, encoder, sink, durable) : null;
  }

  /** Starts a batch: its lines take the seqs that follow the log's last one. */
  begin(): void {
    const h = this.sink.lineHead(this.instance);
    this.#head = h.head;
    this.#seq = h.seq;
    this.#pos = 0;
    this.#count = 0;
  }

  /** Adds the record at bytes[off, off + len) to the batch. */
  add(bytes: Uint8Array, off: number, len: number): void {
    const head = this.#head;
    const member = this.#member;
    let b = scratch;
    let p = this.#pos;
    const need = head.length + MAX_SEQ_DIGITS + member.length + this.#encoder.maxBytes + 2;
    if (p + need > b.length) {
      const grown = new Uint8Array(Math.max(b.length * 2, p + need));
      grown.set(b.subarray(0, p));
      scratch = b = grown;
    }
    b.set(head, p);
    p = writeUint(b, p + head.length, this.#seq + this.#count);
    b.set(member, p);
    p = this.#encoder.write(bytes, off, len, b, p + member.length);
    b[p] = 0x7d; // }
    b[p + 1] = 0x0a;
    this.#pos = p + 2;
    this.#count++;
  }

  /** Hands the batch to the sink; returns how many records it held. */
  end(): number {
    const n = this.#count;
    const pos = this.#pos;
    this.#count = 0;
    this.#pos = 0;
    if (n > 0) this.sink.appendLines(this.instance, scratch.subarray(0, pos), n, this.#seq, this.durable);
    // what a burst of big records grew it to is not kept
    if (scratch.length > 1024 * 1024) scratch = new Uint8Array(64 * 1024);
    return n;
  }
}
