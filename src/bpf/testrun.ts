// BPF_PROG_TEST_RUN: run a loaded program on given input (packet data and/or context) without
// traffic, for unit tests of program logic and for benchmarks.

import { check } from './errors.js';
import { addressOf, koffi, type Pointer } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import type { Program } from './program.js';

export interface TestRunOptions {
  data?: Uint8Array;
  /** room for the output packet (default: data length + 256) */
  dataOutSize?: number;
  ctx?: Uint8Array;
  ctxOutSize?: number;
  repeat?: number;
  flags?: number;
  cpu?: number;
}

export interface TestRunResult {
  retval: number;
  /** average run time per repetition, as the kernel measured it */
  durationNs: number;
  dataOut?: Buffer;
  ctxOut?: Buffer;
}

const OPTS_SIZE = 80; // struct bpf_test_run_opts, libbpf 1.1

class NativeBuffers {
  readonly #ptrs: Pointer[] = [];
  copyIn(bytes: Uint8Array | undefined): bigint {
    if (!bytes || bytes.length === 0) return 0n;
    const p = this.alloc(bytes.length);
    new Uint8Array(koffi.view(p, bytes.length)).set(bytes);
    return addressOf(p);
  }
  alloc(size: number): Pointer {
    const p = koffi.alloc('uint8_t', Math.max(size, 1));
    this.#ptrs.push(p);
    return p;
  }
  free(): void {
    for (const p of this.#ptrs) koffi.free(p);
  }
}

/** Prepares the opts struct; returns it with a function that reads results back. */
function prepare(opts: TestRunOptions, native: NativeBuffers): { raw: Buffer; read: () => TestRunResult } {
  const raw = Buffer.alloc(OPTS_SIZE);
  raw.writeBigUInt64LE(BigInt(OPTS_SIZE), 0);
  let dataOut: Pointer | null = null;
  let ctxOut: Pointer | null = null;
  if (opts.data) {
    raw.writeBigUInt64LE(native.copyIn(opts.data), 8);
    raw.writeUInt32LE(opts.data.length, 24);
    const outSize = opts.dataOutSize ?? opts.data.length + 256;
    dataOut = native.alloc(outSize);
    raw.writeBigUInt64LE(addressOf(dataOut), 16);
    raw.writeUInt32LE(outSize, 28);
  }
  if (opts.ctx) {
    raw.writeBigUInt64LE(native.copyIn(opts.ctx), 32);
    raw.writeUInt32LE(opts.ctx.length, 48);
    const outSize = opts.ctxOutSize ?? opts.ctx.length;
    ctxOut = native.alloc(outSize);
    raw.writeBigUInt64LE(addressOf(ctxOut), 40);
    raw.writeUInt32LE(outSize, 52);
  }
  raw.writeInt32LE(opts.repeat ?? 1, 60);
  raw.writeUInt32LE(opts.flags ?? 0, 68);
  raw.writeUInt32LE(opts.cpu ?? 0, 72);
  const read = (): TestRunResult => {
    const result: TestRunResult = { retval: raw.readUInt32LE(56), durationNs: raw.readUInt32LE(64) };
    if (dataOut) result.dataOut = Buffer.from(koffi.view(dataOut, raw.readUInt32LE(28)).slice(0));
    if (ctxOut) result.ctxOut = Buffer.from(koffi.view(ctxOut, raw.readUInt32LE(52)).slice(0));
    return result;
  };
  return { raw, read };
}

/** Runs the program synchronously. */
export function testRun(prog: Program, opts: TestRunOptions = {}): TestRunResult {
  const native = new NativeBuffers();
  try {
    const { raw, read } = prepare(opts, native);
    check(libbpf.progTestRunOpts(prog.fd, raw), 'test run', prog.description);
    return read();
  } finally {
    native.free();
  }
}

/** Runs the program on a libuv worker thread, so JavaScript keeps running (e.g. to read events). */
export function testRunAsync(prog: Program, opts: TestRunOptions = {}): Promise<TestRunResult> {
  const native = new NativeBuffers();
  const { raw, read } = prepare(opts, native);
  const fd = prog.fd;
  return new Promise((resolve, reject) => {
    libbpf.progTestRunOpts.async(fd, raw, (err, ret) => {
      try {
        if (err) return reject(err);
        check(ret, 'test run', prog.description);
        resolve(read());
      } catch (e) {
        reject(e);
      } finally {
        native.free();
      }
    });
  });
}
