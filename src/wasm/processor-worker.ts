// The worker thread an event processor runs in (processor.ts starts it): instantiates the
// module (processor-abi.ts) once, then for each batch writes each record into the module's
// memory, calls kbpf_process, and answers with what is kept and what was emitted; kbpf_flush
// runs about once a second (its emissions are sent unasked) and when the host says the end.
import { openSync } from 'node:fs';
import { WASI } from 'node:wasi';
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { WASI_MODULE } from './abi.js';
import {
  PROCESS_KEEP,
  PROCESSOR_EXPORTS,
  PROCESSOR_IMPORT_MODULE,
  type ProcessorBatch,
  type ProcessorResult,
} from './processor-abi.js';

const FLUSH_MS = 1000;
const port = parentPort!;
const { module } = workerData as { module: WebAssembly.Module };

let keptBytes: Uint8Array[] = [];
let json: string[] = [];
let emitted = 0;
let mem = new Uint8Array(0);
let memory: WebAssembly.Memory;

function bytesAt(ptr: number, size: number): Uint8Array | undefined {
  if (memory.buffer !== mem.buffer) mem = new Uint8Array(memory.buffer);
  const p = ptr >>> 0;
  if (size < 0 || p + size > mem.length) return undefined;
  return mem.subarray(p, p + size);
}

const devNull = openSync('/dev/null', 'w');
const wasi = new WASI({
  version: 'preview1',
  args: ['processor'],
  env: {},
  stdout: devNull,
  stderr: devNull,
  returnOnExit: true,
});
const instance = new WebAssembly.Instance(module, {
  [WASI_MODULE]: wasi.wasiImport as WebAssembly.ModuleImports,
  [PROCESSOR_IMPORT_MODULE]: {
    emit: (ptr: number, size: number): number => {
      const b = bytesAt(ptr, size);
      if (!b) return -14; // -EFAULT
      keptBytes.push(b.slice());
      emitted++;
      return 0;
    },
    emit_json: (ptr: number, size: number): number => {
      const b = bytesAt(ptr, size);
      if (!b) return -14;
      json.push(Buffer.from(b).toString('utf8'));
      emitted++;
      return 0;
    },
  },
});
memory = instance.exports.memory as WebAssembly.Memory;
const input = instance.exports[PROCESSOR_EXPORTS.input] as (size: number) => number;
const processRecord = instance.exports[PROCESSOR_EXPORTS.process] as (ptr: number, size: number) => number;
const flush = instance.exports[PROCESSOR_EXPORTS.flush] as ((nowMs: bigint) => void) | undefined;
if (typeof instance.exports._initialize === 'function') wasi.initialize(instance);

function take(id: number, t: ProcessorResult['t'], dropped: number): ProcessorResult {
  const total = keptBytes.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of keptBytes) {
    out.set(b, at);
    at += b.length;
  }
  const result: ProcessorResult = {
    t,
    id,
    bytes: out.buffer,
    lengths: keptBytes.map((b) => b.length),
    json,
    dropped,
    emitted,
  };
  keptBytes = [];
  json = [];
  emitted = 0;
  return result;
}

function fail(e: unknown): never {
  port.postMessage({ t: 'failed', message: errorMessage(e) });
  process.exit(1);
}

let flushTimer: NodeJS.Timeout | undefined;
if (flush)
  flushTimer = setInterval(() => {
    try {
      flush(BigInt(Date.now()));
    } catch (e) {
      fail(e);
    }
    if (keptBytes.length || json.length) {
      const r = take(0, 'flushed', 0);
      port.postMessage(r, [r.bytes]);
    }
  }, FLUSH_MS);

port.on('message', (m: ProcessorBatch | { t: 'end' }) => {
  if (m.t === 'end') {
    if (flushTimer) clearInterval(flushTimer);
    try {
      flush?.(BigInt(Date.now()));
    } catch (e) {
      fail(e);
    }
    const r = take(0, 'flushed', 0);
    port.postMessage(r, [r.bytes]);
    port.close();
    return;
  }
  const all = new Uint8Array(m.bytes);
  let at = 0;
  let dropped = 0;
  try {
    for (const len of m.lengths) {
      const rec = all.subarray(at, at + len);
      at += len;
      const ptr = input(len);
      const dst = ptr ? bytesAt(ptr, len) : undefined;
      if (!dst) throw new Error(`kbpf_processor_input(${len}) gave no room for the record`);
      dst.set(rec);
      if (processRecord(ptr, len) === PROCESS_KEEP) {
        keptBytes.push(bytesAt(ptr, len)!.slice());
      } else dropped++;
    }
  } catch (e) {
    fail(e);
  }
  // records kept and emitted, in the order the processor gave them
  const r = take(m.id, 'result', dropped);
  port.postMessage(r, [r.bytes]);
});
