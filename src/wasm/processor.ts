// An event processor seen from the agent: its module runs in a worker thread (processor-
// worker.ts) with a heap limit and its linear memory capped; the event pump hands it each batch
// of raw records and waits for the answer before it reads more (back-pressure: a slow processor
// slows the reading, the ring holds the rest, and what the kernel side cannot submit meanwhile is
// counted lost as always). A processor that traps, or takes longer than its budget over one batch,
// is stopped; from then on the records are logged as they come, and the instance's log says so.
import { Worker } from 'node:worker_threads';
import { errorMessage, InvalidError } from '../errors.js';
import { limitMemory, PAGE_BYTES } from './memory-limit.js';
import { PROCESSOR_EXPORTS, type ProcessorFailure, type ProcessorResult } from './processor-abi.js';

export const PROCESSOR_LIMITS = { memoryMb: 16, heapMb: 32, batchMs: 2000 } as const;

export interface ProcessedBatch {
  /** records to log, of the event's layout: kept ones (maybe rewritten) and emitted ones */
  records: Uint8Array[];
  /** JSON objects emitted (aggregates) */
  json: unknown[];
}

export interface ProcessorCounts {
  in: number;
  dropped: number;
  emitted: number;
  /** why the processor was stopped, when it was */
  failed?: string;
}

const WORKER = new URL('./processor-worker.js', import.meta.url);

/** Checks a module is a processor (compiles, exports what the ABI asks); returns it compiled. */
export function compileProcessor(bytes: Uint8Array, memoryMb: number = PROCESSOR_LIMITS.memoryMb): WebAssembly.Module {
  let module: WebAssembly.Module;
  try {
    const limited = limitMemory(bytes, Math.floor((memoryMb * 2 ** 20) / PAGE_BYTES));
    module = new WebAssembly.Module(limited.module as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new InvalidError(`the event processor is not a usable WebAssembly module: ${errorMessage(e)}`, { cause: e });
  }
  const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  for (const name of ['memory', PROCESSOR_EXPORTS.input, PROCESSOR_EXPORTS.process])
    if (!exported.has(name))
      throw new InvalidError(`the event processor does not export ${name} (docs/wasm.md, "Event processors")`);
  return module;
}

export class EventProcessor {
  readonly counts: ProcessorCounts = { in: 0, dropped: 0, emitted: 0 };
  #worker: Worker | null;
  #nextId = 1;
  #pending = new Map<
    number,
    { resolve: (r: ProcessorResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();

  /**
   * `onFlushed`: what the processor emits on its own (kbpf_flush, about once a second);
   * `onFailed`: the processor was stopped (records pass through from now on).
   */
  constructor(
    module: WebAssembly.Module,
    readonly onFlushed: (batch: ProcessedBatch) => void,
    readonly onFailed: (message: string) => void,
  ) {
    this.#worker = new Worker(WORKER, {
      workerData: { module },
      resourceLimits: { maxOldGenerationSizeMb: PROCESSOR_LIMITS.heapMb },
      stdout: true,
      stderr: true,
    });
    this.#worker.unref();
    this.#worker.on('message', (m: ProcessorResult | ProcessorFailure) => {
      if (m.t === 'failed') return this.fail(`the event processor trapped: ${m.message}`);
      this.count(m);
      if (m.t === 'flushed') {
        const b = batchOf(m);
        if (b.records.length || b.json.length) this.onFlushed(b);
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      p.resolve(m);
    });
    this.#worker.on('error', (e) => this.fail(`the event processor failed: ${errorMessage(e)}`));
    this.#worker.on('exit', (code) => {
      if (this.#worker) this.fail(`the event processor's worker exited (code ${code})`);
    });
  }

  get running(): boolean {
    return this.#worker !== null;
  }

  /** Processes a batch of raw records; undefined once the processor was stopped (log them as they are). */
  async process(records: Uint8Array[]): Promise<ProcessedBatch | undefined> {
    const worker = this.#worker;
    if (!worker) return undefined;
    const total = records.reduce((n, r) => n + r.length, 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const r of records) {
      bytes.set(r, at);
      at += r.length;
    }
    const id = this.#nextId++;
    this.counts.in += records.length;
    try {
      const result = await new Promise<ProcessorResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(
            new Error(`it took more than ${PROCESSOR_LIMITS.batchMs} ms over a batch of ${records.length} records`),
          );
        }, PROCESSOR_LIMITS.batchMs);
        this.#pending.set(id, { resolve, reject, timer });
        worker.postMessage({ t: 'batch', id, bytes: bytes.buffer, lengths: records.map((r) => r.length) }, [
          bytes.buffer,
        ]);
      });
      return batchOf(result);
    } catch (e) {
      this.fail(`the event processor was stopped: ${errorMessage(e)}`);
      return undefined;
    }
  }

  /** Lets the processor flush what it aggregated, then ends its worker. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = null; // its exit is not a failure now
    const ended = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ t: 'end' });
    const timer = setTimeout(() => void worker.terminate(), PROCESSOR_LIMITS.batchMs);
    await ended;
    clearTimeout(timer);
  }

  private count(m: ProcessorResult): void {
    this.counts.dropped += m.dropped;
    this.counts.emitted += m.emitted;
  }

  private fail(message: string): void {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = null;
    this.counts.failed = message;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(message));
    }
    this.#pending.clear();
    void worker.terminate();
    this.onFailed(message);
  }
}

function batchOf(m: ProcessorResult): ProcessedBatch {
  const all = new Uint8Array(m.bytes);
  const records: Uint8Array[] = [];
  let at = 0;
  for (const len of m.lengths) {
    records.push(all.subarray(at, at + len));
    at += len;
  }
  return { records, json: m.json.map((j) => parseJson(j)) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { invalid_json: text.slice(0, 256) };
  }
}
