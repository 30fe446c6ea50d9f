// Wasm guests: events through a guest's callback (wasm_bpf_buffer_poll) against the native
// TypeScript reader on the same producer, guest start to first attach, and RSS per guest.
//
// Producer (bench/wasm-guest/wasm_bench.bpf.c): a tracepoint on sys_enter_getppid that writes 64
// 48-byte records per call with bpf_loop, for the trigger process only (bench/wasm-guest/
// trigger.c: getppid() in a loop). The guest (bench/wasm-guest/main.c, built here for
// wasm32-wasi on kbpf's guest SDK) embeds that object, attaches it and reads every field of every
// record in its callback, printing its count every 200 ms; the native reader loads the same
// object and reads `batches()` decoded by the BTF codec (what the product hands its users).
// Rounds alternate native and guest; the median of the rounds is reported.
//
// Prints: wasm_native_events_per_s, wasm_guest_events_per_s, wasm_events_ratio (guest / native;
// goal >= 0.5), wasm_guest_start_ms (median, spawn to first attach; goal <= 100; the agent keeps
// a started guest process ready, so this is what `kbpf run` pays: see src/wasm/guest-process.ts),
// wasm_guest_cold_start_ms (a guest process started for the guest, no spare), wasm_guest_rss_mb.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { attachTracepoint, BpfMap, BpfObject, RingBufferReader } from 'kbpf/bpf';
import { compileGuest } from '../src/compile/guest.js';
import { GuestProcess, GuestSpares, guestPackage } from '../src/wasm/index.js';

import { type Benchmark, type BenchOptions, median, note, result } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const OBJECT = join(here, 'wasm-guest', 'wasm_bench.bpf.o');
const GUEST_SRC = join(here, '..', '..', 'bench', 'wasm-guest');
const VMLINUX_CACHE = join(here, '..', '..', 'build');
const WARMUP_MS = 500;
const STARTS = 7;

let _sink = 0;

function startTrigger(bin: string): ChildProcess {
  return spawn(bin, [], { stdio: 'ignore' });
}

async function nativeRound(trigger: string, durationMs: number): Promise<number> {
  const obj = BpfObject.open(OBJECT).load();
  const link = attachTracepoint(obj.program('produce'), 'syscalls/sys_enter_getppid');
  const reader = new RingBufferReader<{
    seq: bigint;
    ts: bigint;
    pid: number;
    cpu: number;
    kind: number;
    len: number;
    comm: string;
  }>(obj.map('events'), { typeName: 'bench_event', highWaterMark: 4096 });
  const child = startTrigger(trigger);
  try {
    obj.map('trigger').update(0, child.pid!);
    let consumed = 0;
    let window = 0;
    const sampler = (async () => {
      await sleep(WARMUP_MS);
      const c0 = consumed;
      const t0 = performance.now();
      await sleep(durationMs);
      window = (consumed - c0) / ((performance.now() - t0) / 1000);
      reader.close();
    })();
    for await (const batch of reader.batches()) {
      for (const e of batch) _sink += Number(e.seq) + Number(e.ts) + e.pid + e.cpu + e.kind + e.len + e.comm.length;
      consumed += batch.length;
    }
    await sampler;
    return window;
  } finally {
    child.kill('SIGKILL');
    reader.close();
    link.close();
    obj.close();
  }
}

function guestOptions(wasm: Uint8Array, pinDir: string, onLine: (line: string) => void) {
  const caps = guestPackage('bench.wasm', wasm).spec.guest!.capabilities;
  return {
    name: 'wasm-bench',
    args: [],
    module: wasm,
    capabilities: caps,
    limits: { cpuMs: 1e9, windowMs: 1000 },
    pinDir,
    onRecord: (r: { source: string; line: string }) => {
      if (r.source === 'stdout') onLine(r.line);
      else if (r.source !== 'stdout') note(`  guest ${r.source}: ${r.line}`);
    },
  };
}

async function guestRound(wasm: Uint8Array, trigger: string, durationMs: number): Promise<number> {
  const pinDir = mkdtempSync('/sys/fs/bpf/kbpf-wasm-bench-');
  let count = 0;
  let attached!: () => void;
  const ready = new Promise<void>((r) => (attached = r));
  const guest = new GuestProcess(
    guestOptions(wasm, pinDir, (line) => {
      if (line === 'attached') attached();
      const m = /^count (\d+)/.exec(line);
      if (m) count = Number(m[1]);
    }),
  );
  let child: ChildProcess | undefined;
  try {
    await Promise.race([ready, guest.exited.then((e) => Promise.reject(new Error(e.message)))]);
    child = startTrigger(trigger);
    const map = BpfMap.fromPin(join(pinDir, 'trigger'));
    map.update(0, child.pid!);
    map.close();
    await sleep(WARMUP_MS);
    const c0 = count;
    const t0 = performance.now();
    await sleep(durationMs);
    const c1 = count;
    return (c1 - c0) / ((performance.now() - t0) / 1000);
  } finally {
    child?.kill('SIGKILL');
    await guest.stop();
    rmSync(pinDir, { recursive: true, force: true });
  }
}

/** Spawn (or hand-over to a spare) to first attach, and RSS of the running guest. */
async function startRound(wasm: Uint8Array, spares: GuestSpares | undefined): Promise<{ ms: number; rssMb: number }> {
  const pinDir = mkdtempSync('/sys/fs/bpf/kbpf-wasm-bench-');
  const opts = guestOptions(wasm, pinDir, () => {});
  const guest = spares ? spares.start(opts) : new GuestProcess(opts);
  try {
    for (let waited = 0; guest.firstAttachMs === undefined; waited += 5) {
      if (guest.end) throw new Error(`the guest ended: ${guest.end.message}`);
      if (waited > 10_000) throw new Error('the guest did not attach within 10 s');
      await sleep(5);
    }
    await sleep(300);
    return { ms: guest.firstAttachMs, rssMb: guest.rssMb() ?? 0 };
  } finally {
    await guest.stop();
    rmSync(pinDir, { recursive: true, force: true });
  }
}

export const benchmark: Benchmark = {
  name: 'wasm',
  description: 'Wasm guests: events through wasm_bpf_buffer_poll vs the native reader, guest start, RSS',
  async run(opts: BenchOptions) {
    const work = mkdtempSync(join(tmpdir(), 'kbpf-wasm-bench-'));
    try {
      const trigger = join(work, 'trigger');
      execFileSync('gcc', ['-O2', '-o', trigger, join(GUEST_SRC, 'trigger.c')]);
      const wasm = await compileGuest(GUEST_SRC, join(work, 'bench.wasm'), { cacheDir: VMLINUX_CACHE });
      const native: number[] = [];
      const guest: number[] = [];
      for (let i = 0; i < opts.repeats; i++) {
        native.push(await nativeRound(trigger, opts.durationS * 1000));
        guest.push(await guestRound(wasm, trigger, opts.durationS * 1000));
        note(
          `  round ${i + 1}: native ${Math.round(native.at(-1)!)} events/s, guest ${Math.round(guest.at(-1)!)} events/s`,
        );
      }
      const n = median(native);
      const g = median(guest);
      result('wasm_native_events_per_s', Math.round(n));
      result('wasm_guest_events_per_s', Math.round(g));
      result('wasm_events_ratio', (g / n).toFixed(2));

      const cold: { ms: number; rssMb: number }[] = [];
      const warm: { ms: number; rssMb: number }[] = [];
      const spares = new GuestSpares();
      try {
        for (let i = 0; i < STARTS; i++) {
          cold.push(await startRound(wasm, undefined));
          await spares.ready();
          warm.push(await startRound(wasm, spares));
        }
      } finally {
        spares.close();
      }
      note(
        `  starts (ms) with a spare: ${warm.map((s) => s.ms.toFixed(0)).join(' ')}; cold: ${cold.map((s) => s.ms.toFixed(0)).join(' ')}`,
      );
      result('wasm_guest_start_ms', median(warm.map((s) => s.ms)).toFixed(1));
      result('wasm_guest_cold_start_ms', median(cold.map((s) => s.ms)).toFixed(1));
      result('wasm_guest_rss_mb', median(warm.map((s) => s.rssMb)).toFixed(1));
    } finally {
      rmSync(work, { recursive: true, force: true });
      if (_sink === -1) note('');
    }
  },
};
