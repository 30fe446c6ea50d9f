// Ring buffer throughput: the TypeScript RingBufferReader against libbpf's C consumer
// (ring_buffer__poll), on the same producer, the same ring size, in the same run.
//
// Producer (bench/ringbuf.bpf.c): an XDP program that writes `batch` (64) 48-byte records per
// run with bpf_loop, run with BPF_PROG_TEST_RUN and a large `repeat` over and over from another
// thread until the window ends — on libuv's threadpool for TypeScript (koffi's async call, so the
// JS thread is free to read), on a pthread in C. Both sides load the same object, so the ring
// (8 MiB) and the producer are identical.
//
// Consumers, each reading every field of every record:
//   ts-btf-batches (headline)  `batches()` yielding objects decoded by the BTF codec — what the
//                  product hands to its users;
//   ts-btf-iter    `for await (const e of reader)` with objects decoded by the BTF codec;
//   ts-raw         RingBufferReader woken by the shared poller, `readable()` + `consumeRaw()`
//                  decoding the struct's fields straight from a DataView over the mapped ring;
//   c              bench/ringbuf_consumer.c: ring_buffer__poll with a callback reading the fields.
// And end to end, from the ring to an instance's log as `kbpf logs` reads it:
//   ts-e2e         what the agent's event pump does (src/agent/event-pump.ts, reproduced here):
//                  a RingBufferReader with the lost counter and ref: false, `readable()` then
//                  `consumeRaw()` of up to 1024 records written as log lines straight from the
//                  ring's bytes (src/agent/event-lines.ts: the event's BTF JSON encoder), handed
//                  to a LogStore with appendLines, durable (written before the next batch, as
//                  flushNow makes the other path's); at the end the log
//                  is read back with a fresh LogStore (its last record must be the last one read
//                  from the ring);
//   ts-e2e-decode  the pump's other path (and its only one before the JSON encoder): the event's
//                  BTF codec, `batches()`, each record made JSON-safe (jsonValue) and appended
//                  to a LogStore as { source, event }, flushNow after each batch; read back the
//                  same way;
//   c-e2e          bench/ringbuf_consumer.c with a log file: each record written as the same
//                  JSON text line (ts, seq, source, event) through a buffer written out after
//                  each ring_buffer__poll, rotated like the log store.
// Each round measures records consumed per second over a fixed window (after a warm-up);
// variants are interleaved round by round and the median of the rounds is reported.
//
// Prints on stdout: ringbuf_ts_events_per_s (the BTF-decoded batches() path),
// ringbuf_c_events_per_s, ringbuf_ratio (TS / C) and, when that variant ran,
// ringbuf_ts_raw_events_per_s (consumeRaw + DataView), and for the end-to-end pair
// ringbuf_e2e_events_per_s (ts-e2e), ringbuf_e2e_c_events_per_s (c-e2e) and ringbuf_e2e_ratio,
// and ringbuf_e2e_decode_events_per_s when ts-e2e-decode ran; the other variants, producer rates
// and lost counts go to stderr.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BpfObject, type Codec, codecFor, RingBufferReader, testRunAsync } from 'kbpf/bpf';
import { EventLines } from '../src/agent/event-lines.js';
import { LogStore } from '../src/agent/log-store.js';
import { jsonValue } from '../src/util/json.js';
import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const OBJECT = join(here, 'ringbuf.bpf.o');
const CONSUMER_SRC = join(here, '..', '..', 'bench', 'ringbuf_consumer.c');
const WARMUP_MS = 500;
/** program runs per BPF_PROG_TEST_RUN call (× 64 records each) */
const REPEAT = 10_000;

type Variant = 'ts-btf-batches' | 'ts-btf-iter' | 'ts-raw' | 'c' | 'ts-e2e' | 'ts-e2e-decode' | 'c-e2e';
const ALL: Variant[] = ['ts-btf-batches', 'ts-btf-iter', 'ts-raw', 'c', 'ts-e2e', 'ts-e2e-decode', 'c-e2e'];
const HEADLINE: Variant = 'ts-btf-batches';
const RAW: Variant = 'ts-raw';
/** the instance and event the end-to-end variants log as */
const INSTANCE = 'bench-ringbuf';
const EVENT = {
  map: 'events',
  object: 'ringbuf.bpf.o',
  kind: 'ringbuf' as const,
  type: 'bench_event',
  columns: undefined as string[] | undefined,
};
/** records per consumeRaw in ts-e2e (the event pump's batch) */
const E2E_BATCH = 1024;

interface Round {
  events: number;
  seconds: number;
  produced: number;
  lost: number;
}

interface BenchEvent {
  seq: bigint;
  ts: bigint;
  pid: number;
  cpu: number;
  kind: number;
  len: number;
  comm: string;
}

export const benchmark: Benchmark = {
  name: 'ringbuf',
  description: 'ring buffer events/s: TypeScript RingBufferReader vs libbpf ring_buffer__poll (C), same producer',
  run,
};

async function run(opts: BenchOptions): Promise<void> {
  if (!existsSync(OBJECT)) throw new Error(`${OBJECT} is missing: run \`npm run build\` first`);
  const variants = selectVariants(opts.args);
  const tmp = mkdtempSync(join(tmpdir(), 'kbpf-bench-ringbuf-'));
  try {
    const consumer = join(tmp, 'ringbuf_consumer');
    execFileSync('cc', ['-O2', '-Wall', '-o', consumer, CONSUMER_SRC, '-lbpf', '-lpthread'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const durationMs = Math.round(opts.durationS * 1000);
    const rounds = new Map<Variant, Round[]>(variants.map((v) => [v, []]));
    for (let i = 0; i < opts.repeats; i++) {
      for (const v of variants) {
        const r =
          v === 'c' || v === 'c-e2e'
            ? cRound(consumer, durationMs, v === 'c-e2e' ? join(tmp, 'c-log') : null)
            : await tsRound(v, durationMs, join(tmp, 'ts-logs'));
        rounds.get(v)!.push(r);
        note(
          `  round ${i + 1} ${v.padEnd(14)} ${fmt(r.events / r.seconds)} events/s  (producer wrote ${fmt(r.produced)}, lost ${fmt(r.lost)})`,
        );
      }
    }
    const rate = (v: Variant) => median(rounds.get(v)!.map((r) => r.events / r.seconds));
    for (const v of variants) note(`  median ${v.padEnd(14)} ${fmt(rate(v))} events/s`);
    const ts = rate(HEADLINE);
    const c = rate('c');
    result('ringbuf_ts_events_per_s', Math.round(ts));
    result('ringbuf_c_events_per_s', Math.round(c));
    result('ringbuf_ratio', (ts / c).toFixed(2));
    if (variants.includes(RAW)) result('ringbuf_ts_raw_events_per_s', Math.round(rate(RAW)));
    if (variants.includes('ts-e2e') && variants.includes('c-e2e')) {
      const e2e = rate('ts-e2e');
      const cE2e = rate('c-e2e');
      result('ringbuf_e2e_events_per_s', Math.round(e2e));
      result('ringbuf_e2e_c_events_per_s', Math.round(cE2e));
      result('ringbuf_e2e_ratio', (e2e / cE2e).toFixed(2));
    }
    if (variants.includes('ts-e2e-decode'))
      result('ringbuf_e2e_decode_events_per_s', Math.round(rate('ts-e2e-decode')));
    for (const v of variants)
      if (v !== 'c' && !v.includes('e2e')) note(`  ratio  ${v.padEnd(14)} ${(rate(v) / c).toFixed(2)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function selectVariants(args: string[]): Variant[] {
  const arg = args.find((a) => a.startsWith('--ringbuf-variants='));
  if (!arg) return ALL;
  const chosen = arg.slice(arg.indexOf('=') + 1).split(',') as Variant[];
  for (const v of chosen)
    if (!ALL.includes(v)) throw new Error(`unknown ringbuf variant ${v}; known: ${ALL.join(', ')}`);
  if (!chosen.includes(HEADLINE)) chosen.unshift(HEADLINE);
  if (!chosen.includes('c')) chosen.push('c');
  // each end-to-end figure is only reported against the other
  if (chosen.includes('ts-e2e') && !chosen.includes('c-e2e')) chosen.push('c-e2e');
  if (chosen.includes('c-e2e') && !chosen.includes('ts-e2e')) chosen.push('ts-e2e');
  return chosen;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function cRound(binary: string, durationMs: number, logDir: string | null): Round {
  const args = [OBJECT, String(WARMUP_MS), String(durationMs), String(REPEAT)];
  if (logDir) {
    rmSync(logDir, { recursive: true, force: true });
    mkdirSync(logDir, { recursive: true });
    args.push(join(logDir, 'events.jsonl'));
  }
  const out = execFileSync(binary, args, { encoding: 'utf8' });
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  const get = (k: string) => Number(new RegExp(`${k}=([\\d.]+)`).exec(out)?.[1] ?? NaN);
  if (get('consumed_total') !== get('produced'))
    throw new Error(
      `ringbuf bench: the C consumer read ${get('consumed_total')} records, the producer wrote ${get('produced')}`,
    );
  return { events: get('events'), seconds: get('seconds'), produced: get('produced'), lost: get('lost') };
}

let _sink = 0;

async function tsRound(variant: Variant, durationMs: number, logDir: string): Promise<Round> {
  const obj = BpfObject.open(OBJECT).load();
  let reader: RingBufferReader<BenchEvent> | null = null;
  let store: LogStore | null = null;
  try {
    let codec: Codec | undefined;
    if (variant === 'ts-e2e' || variant === 'ts-e2e-decode') {
      // as the event pump opens it: the event's codec from the object's BTF, its lost counter,
      // unref'd, the default highWaterMark (records read raw when they become lines directly)
      const btf = obj.btf!;
      codec = codecFor(btf, btf.findByName(EVENT.type, 'STRUCT')!.id);
      reader = new RingBufferReader<BenchEvent>(obj.map(EVENT.map), {
        decode: variant === 'ts-e2e' ? 'raw' : codec,
        lostCounter: obj.map('events_lost'),
        ref: false,
      });
      rmSync(logDir, { recursive: true, force: true });
      store = new LogStore(logDir);
    } else {
      reader = new RingBufferReader<BenchEvent>(obj.map('events'), {
        typeName: 'bench_event',
        lostCounter: obj.map('events_lost'),
        highWaterMark: 4096,
      });
    }
    const prog = obj.program('produce');
    const packet = new Uint8Array(64);
    let stop = false;
    let wake!: () => void;
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    let consumed = 0;
    const producer = (async () => {
      while (!stop) await testRunAsync(prog, { data: packet, dataOutSize: 64, repeat: REPEAT });
    })();
    let window = { events: 0, seconds: 0 };
    const sampler = (async () => {
      await sleep(WARMUP_MS);
      const c0 = consumed;
      const t0 = performance.now();
      await sleep(durationMs);
      window = { events: consumed - c0, seconds: (performance.now() - t0) / 1000 };
      stop = true;
      wake();
    })();
    let wakeRaw!: () => void;
    const rawReleased = new Promise<void>((resolve) => (wakeRaw = resolve));
    // Release of the consumer once the producer is done. The consumer leaves its loop at the first
    // records it gets after `stop`; but when the sampler's timer and the producer's last
    // completion fall in the same turn of the event loop (timers run before I/O callbacks),
    // `stop` is set after the consumer has read the producer's last records and the producer
    // makes no further call, so the consumer waits — rightly — on an empty ring for records that
    // will never come. That consumer is released as soon as the ring is drained (all records
    // read). A consumer still waiting 2 s after the producer stopped while records are left in the
    // ring would be a missed wake-up: it is released too, and the round is reported as stalled.
    let finished = false;
    let stalled = false;
    const drained = (): boolean => reader!.closed || (reader!.pendingBytes === 0 && reader!.stats.buffered === 0);
    const guard = (async () => {
      await stopped;
      await producer;
      for (let waited = 0; waited < 2000 && !finished && !drained(); waited += 10) await sleep(10);
      if (finished) return;
      if (!drained()) {
        stalled = true;
        note(
          `  ${variant}: the consumer was still waiting 2 s after the producer stopped, with ${reader!.pendingBytes} bytes unread in the ring; closing the reader`,
        );
      }
      if (variant === 'ts-raw') wakeRaw();
      else reader?.close();
    })();

    const r = reader;
    // BTF variants: every record must be the next `seq` (nothing skipped, read twice or misdecoded).
    let expect = -1;
    let outOfOrder = 0;
    const check = (e: BenchEvent): void => {
      const seq = Number(e.seq);
      if (seq !== expect + 1 && expect >= 0) outOfOrder++;
      expect = seq;
      _sink += seq + Number(e.ts) + e.pid + e.cpu + e.kind + e.len + e.comm.length;
    };
    if (variant === 'ts-raw') {
      // Decode each record's fields from the mapped bytes: u64s as two u32 halves (exact below
      // 2^53, no BigInt), comm's length as C's strnlen would.
      const visit = (dv: DataView, off: number, _len: number): void => {
        const seq = dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 4294967296;
        const ts = dv.getUint32(off + 8, true) + dv.getUint32(off + 12, true) * 4294967296;
        const pid = dv.getUint32(off + 16, true);
        const cpu = dv.getUint32(off + 20, true);
        const kind = dv.getUint32(off + 24, true);
        const len = dv.getUint32(off + 28, true);
        let n = 0;
        while (n < 16 && dv.getUint8(off + 32 + n) !== 0) n++;
        _sink += seq + ts + pid + cpu + kind + len + n;
        consumed++;
      };
      while (!stop) {
        await Promise.race([r.readable(), rawReleased]);
        r.consumeRaw(visit, 65536);
      }
      // Integrity: once the producer is done, every record it wrote has been read exactly once.
      await producer;
      r.consumeRaw(visit);
      const written = Number((obj.map('.bss').lookup(0) as { seq: bigint }).seq);
      if (consumed !== written)
        throw new Error(`ringbuf bench: the TypeScript reader read ${consumed} records, the producer wrote ${written}`);
    } else if (variant === 'ts-btf-batches') {
      for await (const batch of r.batches()) {
        for (const e of batch) check(e);
        consumed += batch.length;
        if (stop) break;
      }
    } else if (variant === 'ts-e2e' || variant === 'ts-e2e-decode') {
      let last = -1n;
      if (variant === 'ts-e2e') {
        const lines = EventLines.for(INSTANCE, EVENT, codec!, store!, true);
        if (!lines) throw new Error('ringbuf bench: no JSON encoder for bench_event');
        const data = r.bytes;
        // the last record's seq, read while it is still ours (the producer reuses its bytes after)
        let lastSeq = -1;
        const visit = (v: DataView, off: number, len: number): void => {
          lines.add(data, off, len);
          lastSeq = v.getUint32(off, true) + v.getUint32(off + 4, true) * 4294967296;
        };
        while (!r.closed) {
          await r.readable();
          if (r.closed) break;
          lines.begin();
          r.consumeRaw(visit, E2E_BATCH);
          const n = lines.end();
          if (n > 0) {
            consumed += n;
            last = BigInt(lastSeq);
          }
          if (stop) break;
        }
      } else {
        for await (const batch of r.batches()) {
          appendBatch(store!, batch);
          consumed += batch.length;
          last = batch[batch.length - 1]!.seq;
          if (stop) break;
        }
      }
      // What `kbpf logs` shows: read back by another store, the newest record is the last read.
      await store!.close();
      const newest = new LogStore(logDir).read(INSTANCE, { tail: 1 })[0] as unknown as
        | { seq: number; source: string; event: { seq: number; comm: string } }
        | undefined;
      if (
        consumed > 0 &&
        (newest?.seq !== consumed ||
          newest.source !== EVENT.map ||
          newest.event.seq !== Number(last) ||
          newest.event.comm !== 'kbpf-bench')
      )
        throw new Error(
          `ringbuf bench: the log's newest record is ${JSON.stringify(newest)}; expected seq ${consumed}, event.seq ${last}`,
        );
    } else {
      for (;;) {
        const { value: e, done } = await r.next();
        if (done || stop) break;
        check(e);
        consumed++;
      }
    }
    finished = true;
    await sampler;
    await producer;
    await guard;
    if (stalled) note(`  ${variant}: stalled round (see above)`);
    if (outOfOrder) throw new Error(`ringbuf bench: ${variant} read ${outOfOrder} records out of sequence`);
    const produced = Number((obj.map('.bss').lookup(0) as { seq: bigint }).seq);
    return { ...window, produced, lost: r.stats.lost };
  } finally {
    reader?.close();
    await store?.close();
    if (store) rmSync(logDir, { recursive: true, force: true });
    obj.close();
  }
}

/** What the event pump does with a batch (EventPump.write in src/agent/event-pump.ts). */
function appendBatch(store: LogStore, batch: unknown[]): void {
  const columns = EVENT.columns;
  for (const rec of batch) {
    let value = jsonValue(rec);
    if (columns && value && typeof value === 'object') {
      const all = value as Record<string, unknown>;
      value = Object.fromEntries(columns.map((c) => [c, all[c]]));
    }
    store.append(INSTANCE, { source: EVENT.map, event: value });
  }
  store.flushNow(INSTANCE);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
