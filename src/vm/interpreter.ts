// The interpreter: runs a PreparedProgram instruction by instruction on 64-bit BigInt registers.
// Memory accesses are checked against the VM's regions (VmMemory.check); a fault names the
// instruction. Semantics follow the kernel: x/0 = 0, x%0 = x, 32-bit results are zero-extended.

import { type Engine, MAX_FRAMES, type RunContext, STACK_FRAME } from './engine.js';
import { VmFault } from './errors.js';
import {
  ADD,
  ALU,
  ALU64,
  AND,
  ARSH,
  ATOMIC_CMPXCHG,
  ATOMIC_FETCH,
  ATOMIC_XCHG,
  CALL,
  DIV,
  END,
  EXIT,
  JA,
  JEQ,
  JGE,
  JGT,
  JLE,
  JLT,
  JMP,
  JMP32,
  JNE,
  JSET,
  JSGE,
  JSGT,
  JSLE,
  JSLT,
  LD,
  LDX,
  LSH,
  MOD,
  MODE_ATOMIC,
  MODE_MEMSX,
  MOV,
  MUL,
  NEG,
  OR,
  PSEUDO_CALL,
  RSH,
  SRC_X,
  ST,
  SUB,
  sizeBytes,
  XOR,
} from './insn.js';
import type { VmMemory } from './memory.js';
import { callbackOf, type PreparedProgram } from './program.js';

const M64 = 0xffff_ffff_ffff_ffffn;
const M32 = 0xffff_ffffn;
function swap(v: bigint, bits: number): bigint {
  let out = 0n;
  for (let i = 0; i < bits; i += 8) out = (out << 8n) | ((v >> BigInt(i)) & 0xffn);
  return out;
}

/** One ALU operation at a width of 64 or 32 bits (ALU64 / ALU classes): operands and result masked to it. */
function alu(op: number, d: bigint, s: bigint, off: number, bits: 64 | 32): bigint {
  const mask = bits === 64 ? M64 : M32;
  const shift = BigInt(bits - 1);
  d &= mask;
  s &= mask;
  switch (op) {
    case ADD:
      return (d + s) & mask;
    case SUB:
      return (d - s) & mask;
    case MUL:
      return (d * s) & mask;
    case DIV:
      if (off) {
        const ss = BigInt.asIntN(bits, s);
        return ss === 0n ? 0n : BigInt.asUintN(bits, BigInt.asIntN(bits, d) / ss);
      }
      return s === 0n ? 0n : d / s;
    case MOD:
      if (off) {
        const ss = BigInt.asIntN(bits, s);
        return ss === 0n ? d : BigInt.asUintN(bits, BigInt.asIntN(bits, d) % ss);
      }
      return s === 0n ? d : d % s;
    case OR:
      return d | s;
    case AND:
      return d & s;
    case XOR:
      return d ^ s;
    case LSH:
      return (d << (s & shift)) & mask;
    case RSH:
      return d >> (s & shift);
    case ARSH:
      return BigInt.asUintN(bits, BigInt.asIntN(bits, d) >> (s & shift));
    case NEG:
      return (0n - d) & mask;
    case MOV:
      return off ? BigInt.asUintN(bits, BigInt.asIntN(off, s)) : s;
    default:
      throw new VmFault(`unknown ALU operation 0x${op.toString(16)}`);
  }
}

function condition(op: number, a: bigint, b: bigint, bits: 32 | 64): boolean {
  switch (op) {
    case JEQ:
      return a === b;
    case JNE:
      return a !== b;
    case JGT:
      return a > b;
    case JGE:
      return a >= b;
    case JLT:
      return a < b;
    case JLE:
      return a <= b;
    case JSET:
      return (a & b) !== 0n;
    case JSGT:
      return BigInt.asIntN(bits, a) > BigInt.asIntN(bits, b);
    case JSGE:
      return BigInt.asIntN(bits, a) >= BigInt.asIntN(bits, b);
    case JSLT:
      return BigInt.asIntN(bits, a) < BigInt.asIntN(bits, b);
    case JSLE:
      return BigInt.asIntN(bits, a) <= BigInt.asIntN(bits, b);
    default:
      throw new VmFault(`unknown jump operation 0x${op.toString(16)}`);
  }
}

function load(mem: VmMemory, addr: bigint, size: number, signed: boolean): bigint {
  const a = mem.check(addr, size, false);
  const dv = mem.dv;
  switch (size) {
    case 1:
      return signed ? BigInt.asUintN(64, BigInt(dv.getInt8(a))) : BigInt(dv.getUint8(a));
    case 2:
      return signed ? BigInt.asUintN(64, BigInt(dv.getInt16(a, true))) : BigInt(dv.getUint16(a, true));
    case 4:
      return signed ? BigInt.asUintN(64, BigInt(dv.getInt32(a, true))) : BigInt(dv.getUint32(a, true));
    default:
      return dv.getBigUint64(a, true);
  }
}

function store(mem: VmMemory, addr: bigint, size: number, v: bigint): void {
  const a = mem.check(addr, size, true);
  const dv = mem.dv;
  switch (size) {
    case 1:
      dv.setUint8(a, Number(v & 0xffn));
      return;
    case 2:
      dv.setUint16(a, Number(v & 0xffffn), true);
      return;
    case 4:
      dv.setUint32(a, Number(v & M32), true);
      return;
    default:
      dv.setBigUint64(a, v, true);
  }
}

function atomic(mem: VmMemory, r: bigint[], dst: number, src: number, off: number, size: 4 | 8, op: number): void {
  const addr = (r[dst]! + BigInt(off)) & M64;
  const mask = size === 4 ? M32 : M64;
  mem.check(addr, size, true);
  const old = load(mem, addr, size, false);
  const s = r[src]! & mask;
  if (op === ATOMIC_CMPXCHG) {
    if (old === (r[0]! & mask)) store(mem, addr, size, s);
    r[0] = old;
    return;
  }
  if (op === ATOMIC_XCHG) {
    store(mem, addr, size, s);
    r[src] = old;
    return;
  }
  const base = op & ~ATOMIC_FETCH;
  const v = base === ADD ? (old + s) & mask : base === OR ? old | s : base === AND ? old & s : old ^ s;
  store(mem, addr, size, v);
  if (op & ATOMIC_FETCH) r[src] = old;
}

interface Frame {
  ret: number;
  saved: bigint[];
}

/** Runs `prog` from instruction 0 with r1…r5 = args and r10 = fp; returns r0. */
export function interpret(prog: PreparedProgram, ctx: RunContext, args: readonly bigint[], fp: bigint): bigint {
  return exec(prog, ctx, 0, args, fp, 0);
}

const RUNAWAY = 'budget of backward jumps exhausted (runaway loop?)';

/**
 * Runs the function of `prog` starting at `start` in frame `depth` (0: the entry's), r1…r5 =
 * args, r10 = fp; returns r0. While it runs, `ctx.env.callback` calls its callbacks (bpf_loop)
 * in the frame below the current one, each call counting as a backward jump.
 */
function exec(
  prog: PreparedProgram,
  ctx: RunContext,
  start: number,
  args: readonly bigint[],
  fp: bigint,
  depth: number,
): bigint {
  const { insns, imm64 } = prog;
  const mem = ctx.mem;
  const r: bigint[] = new Array(11).fill(0n);
  for (let i = 0; i < 5; i++) r[i + 1] = args[i] ?? 0n;
  r[10] = fp;
  const frames: Frame[] = [];
  let budget = ctx.budget;
  let pc = start;
  const n = insns.length;
  const env = ctx.env;
  const outerCallback = env.callback;
  if (prog.callbacks.length)
    env.callback = (handle) => {
      const target = callbackOf(prog, handle);
      if (target === undefined) return outerCallback(handle);
      const d = depth + frames.length + 1;
      if (d >= MAX_FRAMES) throw new VmFault(`call depth over ${MAX_FRAMES} frames`);
      const cfp = r[10]! - BigInt(STACK_FRAME);
      return (a, b) => {
        if (--budget < 0) throw new VmFault(RUNAWAY);
        ctx.budget = budget;
        try {
          return exec(prog, ctx, target, [a, b], cfp, d);
        } finally {
          budget = ctx.budget;
        }
      };
    };
  try {
    for (;;) {
      if (pc >= n) throw new VmFault('ran past the last instruction');
      const i = insns[pc]!;
      const code = i.code;
      const cls = code & 7;
      switch (cls) {
        case ALU64:
        case ALU: {
          const op = code & 0xf0;
          if (op === END) {
            const bits = i.imm;
            const v = r[i.dst]!;
            const mask = (1n << BigInt(bits)) - 1n;
            r[i.dst] = cls === ALU && !(code & SRC_X) ? v & mask : swap(v & mask, bits);
            break;
          }
          const s = code & SRC_X ? r[i.src]! : BigInt.asUintN(64, BigInt(i.imm));
          r[i.dst] = alu(op, r[i.dst]!, s, i.off, cls === ALU64 ? 64 : 32);
          break;
        }
        case JMP:
        case JMP32: {
          const op = code & 0xf0;
          if (op === JA) {
            const off = cls === JMP32 ? i.imm : i.off;
            if (off < 0 && --budget < 0) throw new VmFault(RUNAWAY);
            pc += off + 1;
            continue;
          }
          if (op === EXIT) {
            const f = frames.pop();
            if (!f) return r[0]!;
            r[6] = f.saved[0]!;
            r[7] = f.saved[1]!;
            r[8] = f.saved[2]!;
            r[9] = f.saved[3]!;
            r[10] = f.saved[4]!;
            pc = f.ret;
            continue;
          }
          if (op === CALL) {
            if (i.src === PSEUDO_CALL && !(code & SRC_X)) {
              if (depth + frames.length + 1 >= MAX_FRAMES) throw new VmFault(`call depth over ${MAX_FRAMES} frames`);
              frames.push({ ret: pc + 1, saved: [r[6]!, r[7]!, r[8]!, r[9]!, r[10]!] });
              r[10] = r[10]! - BigInt(STACK_FRAME);
              pc += i.imm + 1;
              continue;
            }
            const id = code & SRC_X ? Number(BigInt.asUintN(32, r[i.dst]!)) : i.imm;
            const h = ctx.helper(id);
            if (!h) throw new VmFault(`call of unknown helper ${id}`);
            r[0] = BigInt.asUintN(64, h(ctx.env, r[1]!, r[2]!, r[3]!, r[4]!, r[5]!));
            break;
          }
          let a = r[i.dst]!;
          let b = code & SRC_X ? r[i.src]! : BigInt.asUintN(64, BigInt(i.imm));
          if (cls === JMP32) {
            a &= M32;
            b &= M32;
          }
          if (condition(op, a, b, cls === JMP32 ? 32 : 64)) {
            if (i.off < 0 && --budget < 0) throw new VmFault(RUNAWAY);
            pc += i.off + 1;
            continue;
          }
          break;
        }
        case LD:
          r[i.dst] = imm64.get(pc)!;
          pc += 2;
          continue;
        case LDX:
          r[i.dst] = load(mem, (r[i.src]! + BigInt(i.off)) & M64, sizeBytes(code), (code & 0xe0) === MODE_MEMSX);
          break;
        case ST:
          store(mem, (r[i.dst]! + BigInt(i.off)) & M64, sizeBytes(code), BigInt.asUintN(64, BigInt(i.imm)));
          break;
        default:
          if ((code & 0xe0) === MODE_ATOMIC) atomic(mem, r, i.dst, i.src, i.off, sizeBytes(code) as 4 | 8, i.imm);
          else store(mem, (r[i.dst]! + BigInt(i.off)) & M64, sizeBytes(code), r[i.src]!);
      }
      pc++;
    }
  } catch (e) {
    if (e instanceof VmFault) throw e.at(pc);
    throw e;
  } finally {
    ctx.budget = budget;
    env.callback = outerCallback;
  }
}

export const interpreterEngine: Engine = {
  name: 'interpreter',
  run: (ctx, prog, args, fp) => interpret(prog, ctx, args, fp),
};
