// Packet program contexts. A VM address fits in 32 bits, so the `data`/`data_end` fields of
// struct xdp_md and struct __sk_buff (u32 in the UAPI) can hold real addresses: a program's
// `(void *)(long)ctx->data` is then the packet's address without rewriting the ctx loads (the
// kernel's verifier rewrites them because kernel pointers are 64-bit). The ctx is read-only
// except the fields the kernel lets the program type write.
import { InvalidError } from '../errors.js';
import type { Helper, HelperEnv } from './helpers.js';
import type { Region } from './memory.js';
import type { Vm } from './vm.js';

export const XDP_MD_SIZE = 24;
export const SK_BUFF_SIZE = 192;
/** Room before and after the packet (XDP_PACKET_HEADROOM). */
export const HEADROOM = 256;

export interface PacketInput {
  data: Uint8Array;
  ifindex?: number;
  rxQueue?: number;
  /** __sk_buff fields */
  mark?: number;
  priority?: number;
  protocol?: number;
  /** runs of the program on the same packet and ctx (BPF_PROG_TEST_RUN's repeat); default 1 */
  repeat?: number;
}

export interface PacketResult {
  retval: number;
  /** the packet after the run (between data and data_end) */
  data: Uint8Array;
  /** the ctx after the run */
  ctx: Uint8Array;
}

const SKB_WRITABLE: [number, number][] = [
  [8, 12], // mark
  [32, 36], // priority
  [44, 72], // tc_index, cb[5]
];

function regionsFor(vm: Vm, at: number, size: number, writable: [number, number][], name: string): Region[] {
  const out: Region[] = [];
  let pos = 0;
  for (const [s, e] of [...writable, [size, size] as [number, number]]) {
    if (s > pos) out.push(vm.mem.addRegion(at + pos, s - pos, 'ctx', name, false));
    if (e > s) out.push(vm.mem.addRegion(at + s, e - s, 'ctx', `${name} (writable)`, true));
    pos = e;
  }
  return out;
}

const scratches = new WeakMap<Vm, { buf: number; size: number; ctx: number }>();

/** Memory for the packet and ctx of a run, reused across runs of a VM. */
function scratch(vm: Vm, size: number): { buf: number; ctx: number } {
  let s = scratches.get(vm);
  if (!s || s.size < size) {
    const cap = Math.max(size, 2048);
    s = { buf: vm.mem.alloc(cap), size: cap, ctx: vm.mem.alloc(SK_BUFF_SIZE) };
    scratches.set(vm, s);
  }
  return s;
}

export const PACKET_PROGRAM_TYPES: readonly string[] = ['xdp', 'sched_cls', 'sched_act', 'socket_filter'];
const ETH_HLEN = 14;

/** The packet of the run in progress of a VM (for bpf_skb_load_bytes). */
const packets = new WeakMap<HelperEnv, { start: number; len: number }>();

const EFAULT = 14;

/** bpf_skb_load_bytes(skb, offset, to, len): copies packet bytes to program memory. */
const skbLoadBytes: Helper = (env, _skb, offset, to, len) => {
  const p = packets.get(env);
  const off = Number(BigInt.asUintN(32, offset));
  const n = Number(BigInt.asUintN(32, len));
  const out = env.mem.writable(to, n);
  if (!p || off + n > p.len) {
    out.fill(0);
    return BigInt.asUintN(64, BigInt(-EFAULT));
  }
  out.set(env.mem.u8.subarray(p.start + off, p.start + off + n));
  return 0n;
};

/** The packet helpers of the packet program types (to give as VmOptions.helpers). */
export const PACKET_HELPERS: ReadonlyMap<number, Helper> = new Map([[26, skbLoadBytes]]);

/**
 * Runs an xdp, sched_cls (tc) or socket filter program on a packet, the way BPF_PROG_TEST_RUN
 * does. A socket filter sees the packet from its network header (skb->data after the Ethernet
 * header, `len` without it) through bpf_skb_load_bytes; its output packet, like the kernel's, is
 * the network packet behind 14 zero bytes.
 */
export function runPacket(vm: Vm, program: string, type: string, input: PacketInput): PacketResult {
  if (!PACKET_PROGRAM_TYPES.includes(type))
    throw new InvalidError(`program type ${type} has no packet context in the user-space engine`);
  const l2 = type === 'socket_filter' ? Math.min(ETH_HLEN, input.data.length) : 0;
  const len = input.data.length - l2;
  const { buf, ctx } = scratch(vm, HEADROOM + input.data.length + HEADROOM);
  const data = buf + HEADROOM;
  vm.mem.u8.set(input.data.subarray(l2), data);
  const packet = vm.mem.addRegion(data, len, 'packet', 'packet', type !== 'socket_filter');
  packets.set(vm.env, { start: data, len });
  const ctxSize = type === 'xdp' ? XDP_MD_SIZE : SK_BUFF_SIZE;
  const dv = vm.mem.dv;
  vm.mem.u8.fill(0, ctx, ctx + SK_BUFF_SIZE);
  if (type === 'xdp') {
    dv.setUint32(ctx, data, true);
    dv.setUint32(ctx + 4, data + len, true);
    dv.setUint32(ctx + 8, data, true);
    dv.setUint32(ctx + 12, input.ifindex ?? 1, true);
    dv.setUint32(ctx + 16, input.rxQueue ?? 0, true);
  } else {
    dv.setUint32(ctx, len, true);
    dv.setUint32(ctx + 8, input.mark ?? 0, true);
    dv.setUint32(ctx + 16, input.protocol ?? (len >= 14 ? input.data[12]! | (input.data[13]! << 8) : 0), true);
    dv.setUint32(ctx + 32, input.priority ?? 0, true);
    dv.setUint32(ctx + 36, input.ifindex ?? 1, true);
    dv.setUint32(ctx + 40, input.ifindex ?? 1, true);
    if (type !== 'socket_filter') {
      dv.setUint32(ctx + 76, data, true);
      dv.setUint32(ctx + 80, data + len, true);
      dv.setUint32(ctx + 140, data, true);
    }
  }
  const ctxRegions =
    type === 'xdp'
      ? regionsFor(vm, ctx, ctxSize, [], 'xdp_md')
      : regionsFor(vm, ctx, ctxSize, SKB_WRITABLE, '__sk_buff');
  try {
    const r0 = vm.run(program, [BigInt(ctx)], input.repeat ?? 1);
    const d = vm.mem.dv;
    const start =
      type === 'xdp' ? d.getUint32(ctx, true) : type === 'socket_filter' ? data : d.getUint32(ctx + 76, true);
    const end =
      type === 'xdp' ? d.getUint32(ctx + 4, true) : type === 'socket_filter' ? data + len : d.getUint32(ctx + 80, true);
    const out = vm.mem.u8.slice(start, end);
    return {
      retval: Number(BigInt.asUintN(32, r0)),
      data: l2 ? Uint8Array.from([...new Uint8Array(l2), ...out]) : out,
      ctx: vm.mem.u8.slice(ctx, ctx + ctxSize),
    };
  } finally {
    packets.delete(vm.env);
    vm.mem.removeRegion(packet);
    for (const r of ctxRegions) vm.mem.removeRegion(r);
  }
}

export interface ContextResult {
  r0: bigint;
  /** the ctx after the run */
  ctx: Uint8Array;
}

/**
 * Runs a program of any type on a ctx given as bytes (the program type's struct, e.g.
 * bpf_sock_addr), writable as a whole: the kernel's verifier already limits which fields a
 * program of the type may write. Pointer fields of the struct are whatever the bytes say.
 */
export function runContext(vm: Vm, program: string, ctxBytes: Uint8Array, repeat = 1): ContextResult {
  const region = vm.give(ctxBytes.length ? ctxBytes : 8, 'ctx', 'ctx');
  try {
    const r0 = vm.run(program, [BigInt(region.start)], repeat);
    return { r0, ctx: vm.mem.u8.slice(region.start, region.start + ctxBytes.length) };
  } finally {
    vm.mem.removeRegion(region);
  }
}
