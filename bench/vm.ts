// User-space eBPF against the kernel: the same three programs (bench/vm.bpf.c: a prime sieve, a
// packet checksum loop, an XDP parser with a hash-map lookup) run by the interpreter, by the
// eBPF→Wasm compiler and by the kernel's JIT through BPF_PROG_TEST_RUN with repeat, in one run.
// Prints vm_{interp,wasm,kernel}_ns_per_run_<prog>, vm_wasm_vs_kernel and vm_interp_vs_kernel
// (geometric means of kernel time / engine time; 1 = as fast as the kernel) and
// vm_wasm_compile_us_per_kinsn (compile time per 1,000 instructions).
//
// Like for like: the kernel's figure is BPF_PROG_TEST_RUN's own per-run duration with `repeat`
// (the program run N times on one packet inside the kernel, the syscall not counted), so the
// engines are timed the same way: one runPacket with `repeat` (the compiled program loops inside
// Wasm; the interpreter loops in JavaScript), wall time divided by the runs. The per-call cost of
// a single runPacket from JavaScript (ctx and packet setup, result copies) is printed apart as
// vm_wasm_ns_per_call_<prog>.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, testRun } from 'kbpf/bpf';
import { compileToWasm, loadVmObject, runPacket, Vm } from '../src/vm/index.js';
import type { VmValueMap } from '../src/vm/maps.js';
import { type Benchmark, median, note, result } from './run.js';

const PROGRAMS = ['sieve', 'checksum', 'parser'] as const;

function udpPacket(): Buffer {
  const b = Buffer.alloc(14 + 20 + 8 + 512);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b[23] = 17;
  b.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  b.writeUInt16BE(1234, 34);
  b.writeUInt16BE(53, 36);
  for (let i = 42; i < b.length; i++) b[i] = i & 0xff;
  return b;
}

/** The flow key of udpPacket() as the parser builds it. */
function flowKey(p: Buffer): Uint8Array {
  const k = Buffer.alloc(16);
  p.copy(k, 0, 26, 34);
  p.copy(k, 8, 34, 38);
  k.writeUInt32LE(p[23]!, 12);
  return k;
}

/** ns per run of `fn(batch)` (which does `batch` runs) over a window of `windowS` seconds. */
function timeLoop(windowS: number, batch: number, fn: (batch: number) => void): number {
  for (let i = 0; i < 20; i++) fn(batch);
  let n = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(windowS * 1e9));
  const t0 = process.hrtime.bigint();
  let now = t0;
  while (now < end) {
    fn(batch);
    n += batch;
    now = process.hrtime.bigint();
  }
  return Number(now - t0) / n;
}

const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

export const benchmark: Benchmark = {
  name: 'vm',
  description: 'user-space eBPF: interpreter and Wasm compiler against the kernel JIT (BPF_PROG_TEST_RUN)',
  async run(opts) {
    const path = join(dirname(fileURLToPath(import.meta.url)), 'vm.bpf.o');
    const elf = readFileSync(path);
    const pkt = udpPacket();
    const windowS = Math.min(opts.durationS, 2);
    const ns: Record<string, Record<string, number>> = { interp: {}, wasm: {}, kernel: {}, call: {} };
    for (const engine of ['interpreter', 'wasm'] as const) {
      const vm = new Vm({ engine });
      loadVmObject(vm, elf);
      (vm.map('flows') as VmValueMap).set(flowKey(pkt), new Uint8Array(8));
      for (const p of PROGRAMS) {
        const verdict = runPacket(vm, p, 'xdp', { data: pkt }).retval;
        const runs: number[] = [];
        const window = engine === 'interpreter' ? windowS / 2 : windowS;
        const batch = engine === 'interpreter' ? 64 : 10_000;
        for (let r = 0; r < opts.repeats; r++)
          runs.push(timeLoop(window, batch, (repeat) => runPacket(vm, p, 'xdp', { data: pkt, repeat })));
        ns[engine === 'interpreter' ? 'interp' : 'wasm']![p] = median(runs);
        if (engine === 'wasm')
          ns.call![p] = timeLoop(window / 2, 64, (n) => {
            for (let i = 0; i < n; i++) runPacket(vm, p, 'xdp', { data: pkt });
          });
        note(`vm: ${engine} ${p}: r0 ${verdict}, ${median(runs).toFixed(0)} ns/run`);
      }
    }
    const obj = BpfObject.open(path);
    try {
      obj.load();
      const k = Buffer.from(flowKey(pkt));
      obj.map('flows').update(
        {
          saddr: k.readUInt32LE(0),
          daddr: k.readUInt32LE(4),
          sport: k.readUInt16LE(8),
          dport: k.readUInt16LE(10),
          proto: 17,
        },
        0n,
      );
      for (const p of PROGRAMS) {
        const prog = obj.program(p);
        const verdict = testRun(prog, { data: pkt }).retval;
        const runs: number[] = [];
        for (let r = 0; r < opts.repeats; r++) {
          const repeat = 200_000;
          const t0 = process.hrtime.bigint();
          const rr = testRun(prog, { data: pkt, repeat });
          const wall = Number(process.hrtime.bigint() - t0) / repeat;
          runs.push(rr.durationNs || wall);
        }
        ns.kernel![p] = median(runs);
        note(`vm: kernel ${p}: r0 ${verdict}, ${median(runs).toFixed(0)} ns/run`);
      }
    } finally {
      obj.close();
    }
    for (const p of PROGRAMS) {
      result(`vm_interp_ns_per_run_${p}`, Math.round(ns.interp![p]!));
      result(`vm_wasm_ns_per_run_${p}`, Math.round(ns.wasm![p]!));
      result(`vm_kernel_ns_per_run_${p}`, Math.round(ns.kernel![p]!));
      result(`vm_wasm_ns_per_call_${p}`, Math.round(ns.call![p]!));
    }
    result('vm_wasm_vs_kernel', geomean(PROGRAMS.map((p) => ns.kernel![p]! / ns.wasm![p]!)).toFixed(3));
    result('vm_interp_vs_kernel', geomean(PROGRAMS.map((p) => ns.kernel![p]! / ns.interp![p]!)).toFixed(4));
    // Compile time: module bytes + WebAssembly.Module, per 1,000 instructions.
    const vm = new Vm({ engine: 'wasm' });
    loadVmObject(vm, elf);
    // (after 5 rounds not counted: the compiler is JavaScript, warmed up as the runs are)
    let insns = 0;
    let micros = 0;
    for (let r = 0; r < 25; r++) {
      for (const p of vm.programs.values()) {
        const t0 = process.hrtime.bigint();
        new WebAssembly.Module(compileToWasm(p) as Uint8Array<ArrayBuffer>);
        if (r < 5) continue;
        micros += Number(process.hrtime.bigint() - t0) / 1000;
        insns += p.insns.length;
      }
    }
    result('vm_wasm_compile_us_per_kinsn', ((micros / insns) * 1000).toFixed(0));
  },
};
