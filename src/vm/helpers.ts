// Helpers as host functions `(env, r1…r5) → r0` on 64-bit values. The interpreter calls them
// directly and a compiled Wasm module imports them with the same signature, so both engines
// share one implementation. Pointer arguments are checked against the VM's regions.
import { HELPER_NAMES } from 'kbpf/bpf';
import { VmFault } from './errors.js';
import { EINVAL, ENOENT, type VmMap, VmPerfEventArray, VmProgArray, VmRingbuf, VmValueMap } from './maps.js';
import { MAP_HANDLE_BASE, MAP_HANDLE_STRIDE, type VmMemory } from './memory.js';

/** What a helper may use of the VM running it. */
export interface HelperEnv {
  readonly mem: VmMemory;
  readonly maps: readonly VmMap[];
  readonly cpu: number;
  /** nanoseconds for bpf_ktime_get_ns */
  now(): bigint;
  random(): number;
  trace(line: string): void;
  /** tail calls made in this run (at most MAX_TAIL_CALLS) */
  tailCalls: number;
  /** what bpf_set_retval set in this run (a cgroup program's return value to the syscall; 0 at first) */
  retval: number;
  /**
   * The running program's callback with this handle (a pseudo-func lddw's value), to call in a
   * new frame below the caller's; faults when the handle is none. Engines set it while they run.
   */
  callback: (handle: bigint) => Callback;
}

/** A callback of the running program: r1, r2 in, r0 out. */
export type Callback = (r1: bigint, r2: bigint) => bigint;

export const MAX_TAIL_CALLS = 33;

export type Helper = (env: HelperEnv, r1: bigint, r2: bigint, r3: bigint, r4: bigint, r5: bigint) => bigint;

/** Thrown by bpf_tail_call when the slot holds a program: the runner starts it with the same ctx. */
export class TailCall {
  constructor(readonly program: string) {}
}

const u64 = (n: number | bigint) => BigInt.asUintN(64, BigInt(n));

/**
 * Helpers that may remove or move a region (ringbuf submit/discard, packet head/tail/room
 * changes): compiled code forgets the regions it has cached after calling one.
 */
export const REGION_CHANGING_HELPERS: ReadonlySet<number> = new Set([38, 39, 43, 44, 50, 54, 65, 132, 133]);

export function mapOf(env: HelperEnv, handle: bigint): VmMap {
  const h = Number(BigInt.asUintN(32, handle));
  const i = (h - MAP_HANDLE_BASE) / MAP_HANDLE_STRIDE;
  const m = Number.isInteger(i) && handle < 0x1_0000_0000n ? env.maps[i] : undefined;
  if (!m) throw new VmFault(`0x${handle.toString(16)} is not a map`);
  return m;
}

function valueMap(env: HelperEnv, handle: bigint, helper: string): VmValueMap {
  const m = mapOf(env, handle);
  if (!(m instanceof VmValueMap)) throw new VmFault(`${helper} on map ${m.name} (${m.spec.type})`);
  return m;
}

const lookup: Helper = (env, map, key) => {
  const m = valueMap(env, map, 'map_lookup_elem');
  return u64(m.lookupAddr(env.mem.read(key, m.spec.keySize), env.cpu));
};

/**
 * bpf_map_lookup_elem on 32-bit numbers (both below 2^32), for compiled code: no BigInt, no
 * copy of the key; same results and faults as `lookup`.
 */
export function lookupI32(env: HelperEnv, handle: number, key: number): number {
  const i = (handle - MAP_HANDLE_BASE) / MAP_HANDLE_STRIDE;
  const m = Number.isInteger(i) ? env.maps[i] : undefined;
  if (!m) throw new VmFault(`0x${handle.toString(16)} is not a map`);
  if (!(m instanceof VmValueMap)) throw new VmFault(`map_lookup_elem on map ${m.name} (${m.spec.type})`);
  return m.lookupAt(env.mem.checkN(key, m.spec.keySize, false), env.cpu);
}

const update: Helper = (env, map, key, value, flags) => {
  const m = valueMap(env, map, 'map_update_elem');
  const k = env.mem.read(key, m.spec.keySize);
  return u64(m.updateFrom(k, env.mem.read(value, m.spec.valueSize), Number(flags), env.cpu));
};

const del: Helper = (env, map, key) => {
  const m = valueMap(env, map, 'map_delete_elem');
  return u64(m.deleteKey(env.mem.read(key, m.spec.keySize)));
};

function cString(env: HelperEnv, addr: bigint, max: number): string {
  const bytes = env.mem.read(addr, max);
  const end = bytes.indexOf(0);
  return Buffer.from(end < 0 ? bytes : bytes.subarray(0, end)).toString('latin1');
}

/** bpf_trace_printk's format: %d %i %u %x %X %ld %lu %lld %llu %llx %p %c %s %%. */
export function formatPrintk(env: HelperEnv, fmt: string, args: bigint[]): string {
  let n = 0;
  return fmt.replace(
    /%([-0-9]*)(ll|l|h|hh|z)?([diuxXpcs%])/g,
    (_all, _w: string, len: string | undefined, conv: string) => {
      if (conv === '%') return '%';
      const a = args[n++] ?? 0n;
      const bits = len === 'll' || len === 'l' || len === 'z' || conv === 'p' ? 64 : 32;
      switch (conv) {
        case 'd':
        case 'i':
          return BigInt.asIntN(bits, a).toString();
        case 'u':
          return BigInt.asUintN(bits, a).toString();
        case 'x':
        case 'p':
          return `${conv === 'p' ? '0x' : ''}${BigInt.asUintN(bits, a).toString(16)}`;
        case 'X':
          return BigInt.asUintN(bits, a).toString(16).toUpperCase();
        case 'c':
          return String.fromCharCode(Number(a & 0xffn));
        default:
          return cString(env, a, 64);
      }
    },
  );
}

const tracePrintk: Helper = (env, fmt, size, a1, a2, a3) => {
  const line = formatPrintk(env, cString(env, fmt, Number(size)), [a1, a2, a3]);
  env.trace(line);
  return u64(line.length);
};

const tailCall: Helper = (env, _ctx, map, index) => {
  const m = mapOf(env, map);
  if (!(m instanceof VmProgArray)) throw new VmFault(`tail_call on map ${m.name} (${m.spec.type})`);
  const p = index < BigInt(m.slots.length) ? m.slots[Number(index)] : undefined;
  if (p === undefined || env.tailCalls >= MAX_TAIL_CALLS) return u64(-ENOENT);
  env.tailCalls++;
  throw new TailCall(p);
};

const BPF_F_INDEX_MASK = 0xffffffffn;
const BPF_F_CURRENT_CPU = 0xffffffffn;

const perfEventOutput: Helper = (env, _ctx, map, flags, data, size) => {
  const m = mapOf(env, map);
  if (!(m instanceof VmPerfEventArray)) throw new VmFault(`perf_event_output on map ${m.name} (${m.spec.type})`);
  const idx = flags & BPF_F_INDEX_MASK;
  if (idx !== BPF_F_CURRENT_CPU && idx !== BigInt(env.cpu)) return u64(-EINVAL);
  return u64(m.output(env.mem.read(data, Number(size)), env.cpu));
};

function ringbuf(env: HelperEnv, handle: bigint, helper: string): VmRingbuf {
  const m = mapOf(env, handle);
  if (!(m instanceof VmRingbuf)) throw new VmFault(`${helper} on map ${m.name} (${m.spec.type})`);
  return m;
}

function reservationOwner(env: HelperEnv, addr: bigint): VmRingbuf | undefined {
  const a = Number(BigInt.asUintN(32, addr));
  return env.maps.find((m): m is VmRingbuf => m instanceof VmRingbuf && a >= m.base && a < m.base + m.spec.maxEntries);
}

const ringbufOutput: Helper = (env, map, data, size) =>
  u64(ringbuf(env, map, 'ringbuf_output').output(env.mem.read(data, Number(size)), env.cpu));

const ringbufReserve: Helper = (env, map, size) => u64(ringbuf(env, map, 'ringbuf_reserve').reserve(Number(size)));

function finish(keep: boolean): Helper {
  return (env, data) => {
    const rb = reservationOwner(env, data);
    if (!rb?.finish(Number(data), keep, env.cpu))
      throw new VmFault(`ringbuf_${keep ? 'submit' : 'discard'} of 0x${data.toString(16)}: not a reservation`);
    return 0n;
  };
}

/** bpf_loop's largest nr (the kernel's BPF_MAX_LOOPS) */
export const MAX_LOOPS = 1 << 23;
const E2BIG = 7;

/** bpf_loop(nr, callback, ctx, flags): callback(i, ctx) for i = 0… until it returns non-zero; the calls made. */
const loop: Helper = (env, nrArg, cb, ctx, flags) => {
  const nr = Number(BigInt.asUintN(32, nrArg));
  if (flags !== 0n) return u64(-EINVAL);
  if (nr > MAX_LOOPS) return u64(-E2BIG);
  const call = env.callback(cb);
  for (let i = 0; i < nr; i++) if (call(BigInt(i), ctx) !== 0n) return u64(i + 1);
  return u64(nr);
};

/** The helpers every program type has, by id. */
export const HELPERS: ReadonlyMap<number, Helper> = new Map<number, Helper>([
  [1, lookup],
  [2, update],
  [3, del],
  [5, (env) => env.now()],
  [6, tracePrintk],
  [7, (env) => u64(env.random() >>> 0)],
  [8, (env) => u64(env.cpu)],
  [12, tailCall],
  [25, perfEventOutput],
  [130, ringbufOutput],
  [131, ringbufReserve],
  [132, finish(true)],
  [133, finish(false)],
  [181, loop],
  [186, (env) => u64(env.retval)],
  [
    187,
    (env, retval) => {
      env.retval = Number(BigInt.asIntN(32, retval));
      return 0n;
    },
  ],
]);

export function helperName(id: number): string {
  return HELPER_NAMES[id] ? `bpf_${HELPER_NAMES[id]}` : `helper #${id}`;
}

/** The helper with id `id` for an env (type helpers first), or undefined. */
export function helperFor(id: number, typeHelpers?: ReadonlyMap<number, Helper>): Helper | undefined {
  return typeHelpers?.get(id) ?? HELPERS.get(id);
}
