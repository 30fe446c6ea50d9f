// Helpers of the ring/perf buffer tests: BPF_PROG_TEST_RUN of an XDP program over a small test
// packet, synchronously or on libuv's threadpool (so the JS thread can read events meanwhile).
import { koffi } from '../../src/bpf/ffi/koffi.js';
import { libbpf } from '../../src/bpf/ffi/libbpf.js';
import { BpfError } from '../../src/bpf/errors.js';

const OPTS_SIZE = 80; // struct bpf_test_run_opts, libbpf 1.1

export interface TestRunResult {
  retval: number;
  /** average ns per run */
  duration: number;
}

/** A 64-byte packet: a zero Ethernet header, then `payload` (e.g. the comm the program copies). */
export function testPacket(payload: string): Uint8Array {
  const p = new Uint8Array(64);
  p.set(Buffer.from(payload, 'latin1').subarray(0, 64 - 14), 14);
  return p;
}

function prepare(packet: Uint8Array, repeat: number): { opts: Uint8Array; mem: unknown } {
  const mem = koffi.alloc('uint8_t', packet.length);
  new Uint8Array(koffi.view(mem, packet.length)).set(packet);
  const opts = new Uint8Array(OPTS_SIZE);
  const dv = new DataView(opts.buffer);
  dv.setBigUint64(0, BigInt(OPTS_SIZE), true);
  dv.setBigUint64(8, koffi.address(mem) as bigint, true); // data_in
  dv.setUint32(24, packet.length, true); // data_size_in
  dv.setInt32(60, repeat, true); // repeat
  return { opts, mem };
}

function result(opts: Uint8Array): TestRunResult {
  const dv = new DataView(opts.buffer, opts.byteOffset);
  return { retval: dv.getUint32(56, true), duration: dv.getUint32(64, true) };
}

export function testRun(progFd: number, packet: Uint8Array, repeat = 1): TestRunResult {
  const { opts, mem } = prepare(packet, repeat);
  try {
    const ret = libbpf.progTestRunOpts(progFd, opts);
    if (ret < 0) throw new BpfError('test run', `program fd ${progFd}`, -ret);
    return result(opts);
  } finally {
    koffi.free(mem);
  }
}

/** The same on the threadpool: resolves when the kernel has run the program `repeat` times. */
export function testRunAsync(progFd: number, packet: Uint8Array, repeat = 1): Promise<TestRunResult> {
  const { opts, mem } = prepare(packet, repeat);
  return new Promise((resolve, reject) => {
    libbpf.progTestRunOpts.async(progFd, opts, (err, ret) => {
      koffi.free(mem);
      if (err) reject(err);
      else if (ret < 0) reject(new BpfError('test run', `program fd ${progFd}`, -ret));
      else resolve(result(opts));
    });
  });
}

/**
 * Closes what a test opened, last opened first (readers before the object whose maps they
 * read), even when the test fails. Usage: `const use = closer(t); const obj = use(open());`
 */
export function closer(t: { after(fn: () => void): void }): <T extends { close(): void }>(x: T) => T {
  const stack: { close(): void }[] = [];
  t.after(() => {
    let first: unknown;
    while (stack.length) {
      try {
        stack.pop()!.close();
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  });
  return (x) => {
    stack.push(x);
    return x;
  };
}
