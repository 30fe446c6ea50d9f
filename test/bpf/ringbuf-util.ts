// Helpers of the ring/perf buffer tests: BPF_PROG_TEST_RUN of an XDP program over a small test
// packet, synchronously or on libuv's threadpool (so the JS thread can read events meanwhile),
// and cleanup in the right order.
import type { Program } from '../../src/bpf/program.js';
import { testRun as run, testRunAsync as runAsync, type TestRunResult } from '../../src/bpf/testrun.js';

/** A 64-byte packet: a zero Ethernet header, then `payload` (e.g. the comm the program copies). */
export function testPacket(payload: string): Uint8Array {
  const p = new Uint8Array(64);
  p.set(Buffer.from(payload, 'latin1').subarray(0, 64 - 14), 14);
  return p;
}

export function testRun(prog: Program, packet: Uint8Array, repeat = 1): TestRunResult {
  return run(prog, { data: packet, repeat });
}

/** The same on the threadpool: resolves when the kernel has run the program `repeat` times. */
export function testRunAsync(prog: Program, packet: Uint8Array, repeat = 1): Promise<TestRunResult> {
  return runAsync(prog, { data: packet, repeat });
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
