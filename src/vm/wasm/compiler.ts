// eBPF → WebAssembly. One module per program; one Wasm function per eBPF function, registers as
// i64 locals (r6–r9 are locals, so callee-saved for free). The basic blocks of a function are
// nested Wasm blocks inside one loop: a forward jump is a `br` to the end of the target's block,
// a backward jump counts down the budget, sets the block number and re-enters the loop through a
// `br_table`. Every load and store calls `chk`, which checks the access against the region table
// in memory (the same table the interpreter checks), so both engines fault on the same accesses.
//
// ABI of a compiled module (also what `kbpf vm export` writes):
//   imports  env.memory                          the VM memory (region table at 0x100)
//            env.fault(pc i32, addr i64, size i32, write i32)   a bad access; must throw
//            env.stop(pc i32, why i32)           0 budget exhausted, 1 call depth, 2 ran off the end
//            env.bpf_<helper>(r1…r5 i64) → i64   each helper the program calls
//            env.callx(id i64, r1…r5 i64) → i64  only when the program uses callx
//   exports  run(r1…r5 i64, r10 i64) → r0 i64; globals budget (i64), depth (i32), pc (i32, the
//            instruction of the helper call in progress)
import { MAX_FRAMES, STACK_FRAME } from '../engine.js';
import { helperName } from '../helpers.js';
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
  type Insn,
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
  LDDW,
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
} from '../insn.js';
import { REGION_ENTRY, REGION_TABLE } from '../memory.js';
import type { PreparedProgram } from '../program.js';
import { Bytes, I32, I64, ModuleBuilder, Op, VOID } from './encoder.js';

export const STOP_BUDGET = 0;
export const STOP_DEPTH = 1;
export const STOP_END = 2;

/** The import name of a helper in a compiled module. */
export function helperImportName(id: number): string {
  const n = helperName(id);
  return n.startsWith('bpf_') ? n : `helper_${id}`;
}

// Local indices in an eBPF function: params r1..r5, r10; then r0, r6..r9, two i64 temps, the
// block number and an address temp.
const LOCAL_OF_REG = [6, 0, 1, 2, 3, 4, 7, 8, 9, 10, 5];
const T1 = 11;
const _T2 = 12;
const LBL = 13;
const ADDR = 14;
const EXTRA_LOCALS = [I64, I64, I64, I64, I64, I64, I64, I32, I32];

const ALU64_OPS: Record<number, number> = {
  [ADD]: Op.i64Add,
  [SUB]: Op.i64Sub,
  [MUL]: Op.i64Mul,
  [OR]: Op.i64Or,
  [AND]: Op.i64And,
  [XOR]: Op.i64Xor,
  [LSH]: Op.i64Shl,
  [RSH]: Op.i64ShrU,
  [ARSH]: Op.i64ShrS,
};
const ALU32_OPS: Record<number, number> = {
  [ADD]: Op.i32Add,
  [SUB]: Op.i32Sub,
  [MUL]: Op.i32Mul,
  [OR]: Op.i32Or,
  [AND]: Op.i32And,
  [XOR]: Op.i32Xor,
  [LSH]: Op.i32Shl,
  [RSH]: Op.i32ShrU,
  [ARSH]: Op.i32ShrS,
};
const CMP64: Record<number, number> = {
  [JEQ]: Op.i64Eq,
  [JNE]: Op.i64Ne,
  [JGT]: Op.i64GtU,
  [JGE]: Op.i64GeU,
  [JLT]: Op.i64LtU,
  [JLE]: Op.i64LeU,
  [JSGT]: Op.i64GtS,
  [JSGE]: Op.i64GeS,
  [JSLT]: Op.i64LtS,
  [JSLE]: Op.i64LeS,
};
const CMP32: Record<number, number> = {
  [JEQ]: Op.i32Eq,
  [JNE]: Op.i32Ne,
  [JGT]: Op.i32GtU,
  [JGE]: Op.i32GeU,
  [JLT]: Op.i32LtU,
  [JLE]: Op.i32LeU,
  [JSGT]: Op.i32GtS,
  [JSGE]: Op.i32GeS,
  [JSLT]: Op.i32LtS,
  [JSLE]: Op.i32LeS,
};
const LOADS: Record<number, number> = { 1: Op.i64Load8U, 2: Op.i64Load16U, 4: Op.i64Load32U, 8: Op.i64Load };
const LOADS_SX: Record<number, number> = { 1: Op.i64Load8S, 2: Op.i64Load16S, 4: Op.i64Load32S };
const STORES: Record<number, number> = { 1: Op.i64Store8, 2: Op.i64Store16, 4: Op.i64Store32, 8: Op.i64Store };

interface Ctx {
  b: Bytes;
  fault: number;
  stop: number;
  chk: number;
  callx: number;
  helpers: Map<number, number>;
  funcIndex: Map<number, number>;
  gBudget: number;
  gDepth: number;
  gPc: number;
}

/** Compiles a prepared program to a WebAssembly module (bytes). */
export function compileToWasm(prog: PreparedProgram): Uint8Array {
  const m = new ModuleBuilder();
  m.importMemory('env', 'memory');
  const fault = m.importFunc('env', 'fault', { params: [I32, I64, I32, I32], results: [] });
  const stop = m.importFunc('env', 'stop', { params: [I32, I32], results: [] });
  const helperSig = { params: [I64, I64, I64, I64, I64], results: [I64] };
  const helpers = new Map<number, number>();
  for (const id of [...prog.helpers].sort((a, b) => a - b))
    helpers.set(id, m.importFunc('env', helperImportName(id), helperSig));
  const callx = prog.callx
    ? m.importFunc('env', 'callx', { params: [I64, I64, I64, I64, I64, I64], results: [I64] })
    : -1;
  const gBudget = m.global(I64, 0n);
  const gDepth = m.global(I32, 0);
  const gPc = m.global(I32, 0);
  const chk = m.declare({ params: [I64, I32, I32, I32], results: [I32] });
  const fnSig = { params: [I64, I64, I64, I64, I64, I64], results: [I64] };
  const funcIndex = new Map<number, number>();
  for (const f of prog.funcs) funcIndex.set(f, m.declare(fnSig));
  m.define(chk, [I32, I32, I32], chkBody(fault));
  prog.funcs.forEach((start, k) => {
    const end = prog.funcs[k + 1] ?? prog.insns.length;
    const b = new Bytes();
    compileFunction(prog, start, end, { b, fault, stop, chk, callx, helpers, funcIndex, gBudget, gDepth, gPc });
    m.define(funcIndex.get(start)!, EXTRA_LOCALS, b);
  });
  m.export('run', 'func', funcIndex.get(0)!);
  m.export('budget', 'global', gBudget);
  m.export('depth', 'global', gDepth);
  m.export('pc', 'global', gPc);
  return m.finish();
}

/** chk(addr i64, size i32, write i32, pc i32) → addr i32, or a call of fault. */
function chkBody(fault: number): Bytes {
  const A = 0;
  const N = 1;
  const W = 2;
  const PC = 3;
  const I = 4;
  const E = 5;
  const CNT = 6;
  const b = new Bytes();
  const callFault = () =>
    b
      .byte(Op.localGet)
      .u32(PC)
      .byte(Op.localGet)
      .u32(A)
      .byte(Op.localGet)
      .u32(N)
      .byte(Op.localGet)
      .u32(W)
      .byte(Op.call)
      .u32(fault)
      .byte(Op.unreachable);
  // addr + size must fit in 32 bits
  b.byte(Op.localGet).u32(A).byte(Op.i64Const).s64(0xffffffffn).byte(Op.localGet).u32(N).byte(Op.i64ExtendI32U);
  b.byte(Op.i64Sub).byte(Op.i64GtU).byte(Op.if).byte(VOID);
  callFault();
  b.byte(Op.end);
  b.byte(Op.i32Const).s32(REGION_TABLE).byte(Op.i32Load).u32(2).u32(0).byte(Op.localSet).u32(CNT);
  b.byte(Op.i32Const)
    .s32(REGION_TABLE + 8)
    .byte(Op.localSet)
    .u32(E);
  b.byte(Op.block).byte(VOID).byte(Op.loop).byte(VOID);
  b.byte(Op.localGet).u32(I).byte(Op.localGet).u32(CNT).byte(Op.i32GeU).byte(Op.brIf).u32(1);
  // start <= a
  b.byte(Op.localGet).u32(A).byte(Op.i32WrapI64).byte(Op.localGet).u32(E).byte(Op.i32Load).u32(2).u32(0);
  b.byte(Op.i32GeU);
  // a + n <= end
  b.byte(Op.localGet).u32(A).byte(Op.i32WrapI64).byte(Op.localGet).u32(N).byte(Op.i32Add);
  b.byte(Op.localGet).u32(E).byte(Op.i32Load).u32(2).u32(4).byte(Op.i32LeU).byte(Op.i32And);
  // !write || writable
  b.byte(Op.localGet).u32(W).byte(Op.i32Eqz).byte(Op.localGet).u32(E).byte(Op.i32Load).u32(2).u32(8);
  b.byte(Op.i32Or).byte(Op.i32And);
  b.byte(Op.if).byte(VOID).byte(Op.localGet).u32(A).byte(Op.i32WrapI64).byte(Op.return).byte(Op.end);
  b.byte(Op.localGet).u32(E).byte(Op.i32Const).s32(REGION_ENTRY).byte(Op.i32Add).byte(Op.localSet).u32(E);
  b.byte(Op.localGet).u32(I).byte(Op.i32Const).s32(1).byte(Op.i32Add).byte(Op.localSet).u32(I);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  callFault();
  return b;
}

function isJump(i: Insn): boolean {
  const cls = i.code & 7;
  if (cls !== JMP && cls !== JMP32) return false;
  const op = i.code & 0xf0;
  return op !== CALL;
}

function jumpTarget(pc: number, i: Insn): number {
  return pc + 1 + ((i.code & 7) === JMP32 && (i.code & 0xf0) === JA ? i.imm : i.off);
}

function compileFunction(prog: PreparedProgram, start: number, end: number, c: Ctx): void {
  const { insns } = prog;
  const leaders = new Set<number>([start]);
  for (let pc = start; pc < end; pc++) {
    const i = insns[pc]!;
    if (i.code === LDDW) {
      pc++;
      continue;
    }
    if (!isJump(i)) continue;
    if ((i.code & 0xf0) !== EXIT) leaders.add(jumpTarget(pc, i));
    if (pc + 1 < end) leaders.add(pc + 1);
  }
  const blocks = [...leaders].sort((a, b) => a - b);
  const blockOf = new Map(blocks.map((pc, k) => [pc, k]));
  const N = blocks.length;
  const b = c.b;
  b.byte(Op.loop).byte(VOID);
  for (let k = 0; k < N; k++) b.byte(Op.block).byte(VOID);
  b.byte(Op.localGet).u32(LBL).byte(Op.brTable).u32(N);
  for (let k = 0; k < N; k++) b.u32(k);
  b.u32(0);
  for (let k = 0; k < N; k++) {
    b.byte(Op.end);
    const from = blocks[k]!;
    const to = blocks[k + 1] ?? end;
    const jumpTo = (j: number, extra: number, pc: number) => {
      if (j > k) {
        b.byte(Op.br).u32(j - (k + 1) + extra);
        return;
      }
      budgetCheck(c, pc);
      b.byte(Op.i32Const).s32(j).byte(Op.localSet).u32(LBL);
      b.byte(Op.br).u32(N - 1 - k + extra);
    };
    for (let pc = from; pc < to; pc++) {
      const i = insns[pc]!;
      if (isJump(i)) {
        const op = i.code & 0xf0;
        if (op === EXIT) {
          b.byte(Op.localGet).u32(LOCAL_OF_REG[0]!).byte(Op.return);
          continue;
        }
        const j = blockOf.get(jumpTarget(pc, i))!;
        if (op === JA) {
          jumpTo(j, 0, pc);
          continue;
        }
        condition(c, i);
        if (j > k) b.byte(Op.brIf).u32(j - (k + 1));
        else {
          b.byte(Op.if).byte(VOID);
          jumpTo(j, 1, pc);
          b.byte(Op.end);
        }
        continue;
      }
      compileInsn(prog, pc, i, c);
      if (i.code === LDDW) pc++;
    }
  }
  b.byte(Op.end);
  b.byte(Op.i32Const).s32(end).byte(Op.i32Const).s32(STOP_END).byte(Op.call).u32(c.stop).byte(Op.unreachable);
}

function budgetCheck(c: Ctx, pc: number): void {
  const b = c.b;
  b.byte(Op.globalGet).u32(c.gBudget).byte(Op.i64Const).s64(1n).byte(Op.i64Sub).byte(Op.globalSet).u32(c.gBudget);
  b.byte(Op.globalGet).u32(c.gBudget).byte(Op.i64Const).s64(0n).byte(Op.i64LtS).byte(Op.if).byte(VOID);
  b.byte(Op.i32Const).s32(pc).byte(Op.i32Const).s32(STOP_BUDGET).byte(Op.call).u32(c.stop).byte(Op.end);
}

const get = (c: Ctx, r: number) => c.b.byte(Op.localGet).u32(LOCAL_OF_REG[r]!);
const set = (c: Ctx, r: number) => c.b.byte(Op.localSet).u32(LOCAL_OF_REG[r]!);

/** Pushes the i32 condition of a conditional jump. */
function condition(c: Ctx, i: Insn): void {
  const b = c.b;
  const op = i.code & 0xf0;
  const x = (i.code & SRC_X) !== 0;
  if ((i.code & 7) === JMP32) {
    get(c, i.dst).byte(Op.i32WrapI64);
    if (x) get(c, i.src).byte(Op.i32WrapI64);
    else b.byte(Op.i32Const).s32(i.imm);
    if (op === JSET) b.byte(Op.i32And).byte(Op.i32Eqz).byte(Op.i32Eqz);
    else b.byte(CMP32[op]!);
    return;
  }
  get(c, i.dst);
  if (x) get(c, i.src);
  else b.byte(Op.i64Const).s64(BigInt(i.imm));
  if (op === JSET) b.byte(Op.i64And).byte(Op.i64Eqz).byte(Op.i32Eqz);
  else b.byte(CMP64[op]!);
}

/** Pushes the checked i32 address of [reg + off]. */
function address(c: Ctx, reg: number, off: number, size: number, write: boolean, pc: number): void {
  get(c, reg).byte(Op.i64Const).s64(BigInt(off)).byte(Op.i64Add);
  c.b
    .byte(Op.i32Const)
    .s32(size)
    .byte(Op.i32Const)
    .s32(write ? 1 : 0)
    .byte(Op.i32Const)
    .s32(pc)
    .byte(Op.call)
    .u32(c.chk);
}

const memarg = (b: Bytes) => b.u32(0).u32(0);

function compileInsn(prog: PreparedProgram, pc: number, i: Insn, c: Ctx): void {
  const b = c.b;
  const cls = i.code & 7;
  switch (cls) {
    case ALU64:
      alu64(c, i);
      return;
    case ALU:
      alu32(c, i);
      return;
    case JMP:
      call(c, pc, i);
      return;
    case LD:
      b.byte(Op.i64Const).s64(prog.imm64.get(pc)!);
      set(c, i.dst);
      return;
    case LDX: {
      const size = sizeBytes(i.code);
      address(c, i.src, i.off, size, false, pc);
      b.byte((i.code & 0xe0) === MODE_MEMSX ? LOADS_SX[size]! : LOADS[size]!);
      memarg(b);
      set(c, i.dst);
      return;
    }
    case ST: {
      const size = sizeBytes(i.code);
      address(c, i.dst, i.off, size, true, pc);
      b.byte(Op.i64Const).s64(BigInt(i.imm)).byte(STORES[size]!);
      memarg(b);
      return;
    }
    default: {
      const size = sizeBytes(i.code);
      if ((i.code & 0xe0) === MODE_ATOMIC) {
        atomic(c, pc, i, size);
        return;
      }
      address(c, i.dst, i.off, size, true, pc);
      get(c, i.src).byte(STORES[size]!);
      memarg(b);
    }
  }
}

function atomic(c: Ctx, pc: number, i: Insn, size: number): void {
  const b = c.b;
  address(c, i.dst, i.off, size, true, pc);
  b.byte(Op.localSet).u32(ADDR);
  const load = size === 4 ? Op.i64Load32U : Op.i64Load;
  const store = size === 4 ? Op.i64Store32 : Op.i64Store;
  b.byte(Op.localGet).u32(ADDR).byte(load);
  memarg(b);
  b.byte(Op.localSet).u32(T1);
  const mask = () => {
    if (size === 4) b.byte(Op.i64Const).s64(0xffffffffn).byte(Op.i64And);
  };
  if (i.imm === ATOMIC_CMPXCHG) {
    b.byte(Op.localGet).u32(T1);
    get(c, 0);
    mask();
    b.byte(Op.i64Eq).byte(Op.if).byte(VOID).byte(Op.localGet).u32(ADDR);
    get(c, i.src).byte(store);
    memarg(b);
    b.byte(Op.end).byte(Op.localGet).u32(T1);
    set(c, 0);
    return;
  }
  b.byte(Op.localGet).u32(ADDR);
  if (i.imm === ATOMIC_XCHG) get(c, i.src);
  else {
    b.byte(Op.localGet).u32(T1);
    get(c, i.src);
    const base = i.imm & ~ATOMIC_FETCH;
    b.byte(base === ADD ? Op.i64Add : base === OR ? Op.i64Or : base === AND ? Op.i64And : Op.i64Xor);
  }
  b.byte(store);
  memarg(b);
  if (i.imm & ATOMIC_FETCH) {
    b.byte(Op.localGet).u32(T1);
    set(c, i.src);
  }
}

function call(c: Ctx, pc: number, i: Insn): void {
  const b = c.b;
  if (i.src === PSEUDO_CALL && !(i.code & SRC_X)) {
    b.byte(Op.globalGet).u32(c.gDepth).byte(Op.i32Const).s32(1).byte(Op.i32Add).byte(Op.globalSet).u32(c.gDepth);
    b.byte(Op.globalGet).u32(c.gDepth).byte(Op.i32Const).s32(MAX_FRAMES).byte(Op.i32GeU);
    b.byte(Op.if).byte(VOID).byte(Op.i32Const).s32(pc).byte(Op.i32Const).s32(STOP_DEPTH).byte(Op.call).u32(c.stop);
    b.byte(Op.end);
    for (let r = 1; r <= 5; r++) get(c, r);
    get(c, 10).byte(Op.i64Const).s64(BigInt(STACK_FRAME)).byte(Op.i64Sub);
    b.byte(Op.call).u32(c.funcIndex.get(pc + i.imm + 1)!);
    set(c, 0);
    b.byte(Op.globalGet).u32(c.gDepth).byte(Op.i32Const).s32(1).byte(Op.i32Sub).byte(Op.globalSet).u32(c.gDepth);
    return;
  }
  b.byte(Op.i32Const).s32(pc).byte(Op.globalSet).u32(c.gPc);
  if (i.code & SRC_X) get(c, i.dst);
  for (let r = 1; r <= 5; r++) get(c, r);
  b.byte(Op.call).u32(i.code & SRC_X ? c.callx : c.helpers.get(i.imm)!);
  set(c, 0);
}

function src64(c: Ctx, i: Insn): void {
  if (i.code & SRC_X) get(c, i.src);
  else c.b.byte(Op.i64Const).s64(BigInt(i.imm));
}
function src32(c: Ctx, i: Insn): void {
  if (i.code & SRC_X) get(c, i.src).byte(Op.i32WrapI64);
  else c.b.byte(Op.i32Const).s32(i.imm);
}

function bswap(c: Ctx, d: number, bits: number): void {
  const b = c.b;
  if (bits === 16) {
    get(c, d).byte(Op.i64Const).s64(0xffn).byte(Op.i64And).byte(Op.i64Const).s64(8n).byte(Op.i64Shl);
    get(c, d).byte(Op.i64Const).s64(8n).byte(Op.i64ShrU).byte(Op.i64Const).s64(0xffn).byte(Op.i64And);
    b.byte(Op.i64Or);
  } else if (bits === 32) {
    // x = ((x & 0x00ff00ff) << 8) | ((x >> 8) & 0x00ff00ff); rotl(x, 16)
    get(c, d).byte(Op.i32WrapI64).byte(Op.i32Const).s32(0x00ff00ff).byte(Op.i32And).byte(Op.i32Const).s32(8);
    b.byte(Op.i32Shl);
    get(c, d).byte(Op.i32WrapI64).byte(Op.i32Const).s32(8).byte(Op.i32ShrU).byte(Op.i32Const).s32(0x00ff00ff);
    b.byte(Op.i32And).byte(Op.i32Or).byte(Op.i32Const).s32(16).byte(Op.i32Rotl).byte(Op.i64ExtendI32U);
  } else {
    const step = (mask: bigint, sh: bigint) => {
      b.byte(Op.localGet).u32(T1).byte(Op.i64Const).s64(mask).byte(Op.i64And).byte(Op.i64Const).s64(sh);
      b.byte(Op.i64Shl).byte(Op.localGet).u32(T1).byte(Op.i64Const).s64(sh).byte(Op.i64ShrU);
      b.byte(Op.i64Const).s64(mask).byte(Op.i64And).byte(Op.i64Or).byte(Op.localSet).u32(T1);
    };
    get(c, d).byte(Op.localSet).u32(T1);
    step(0x00ff00ff00ff00ffn, 8n);
    step(0x0000ffff0000ffffn, 16n);
    b.byte(Op.localGet).u32(T1).byte(Op.i64Const).s64(32n).byte(Op.i64Rotl);
  }
  set(c, d);
}

function alu64(c: Ctx, i: Insn): void {
  const b = c.b;
  const op = i.code & 0xf0;
  const d = i.dst;
  const x = (i.code & SRC_X) !== 0;
  if (op === END) {
    bswap(c, d, i.imm);
    return;
  }
  const simple = ALU64_OPS[op];
  if (simple !== undefined) {
    get(c, d);
    src64(c, i);
    b.byte(simple);
    set(c, d);
    return;
  }
  switch (op) {
    case NEG:
      b.byte(Op.i64Const).s64(0n);
      get(c, d).byte(Op.i64Sub);
      break;
    case MOV:
      src64(c, i);
      if (x && i.off) b.byte(i.off === 8 ? Op.i64Extend8S : i.off === 16 ? Op.i64Extend16S : Op.i64Extend32S);
      break;
    case DIV:
    case MOD:
      divmod(c, i, 64);
      break;
  }
  set(c, d);
}

/** Pushes the (64- or 32-bit) result of div/mod/sdiv/smod with eBPF's rules for 0 and −1. */
function divmod(c: Ctx, i: Insn, bits: 32 | 64): void {
  const b = c.b;
  const w = bits === 64;
  const T = w ? I64 : I32;
  const signed = i.off === 1;
  const isDiv = (i.code & 0xf0) === DIV;
  const dst = () => (w ? get(c, i.dst) : get(c, i.dst).byte(Op.i32WrapI64));
  const src = () => (w ? src64(c, i) : src32(c, i));
  const zero = () => (w ? b.byte(Op.i64Const).s64(0n) : b.byte(Op.i32Const).s32(0));
  const op = isDiv
    ? signed
      ? w
        ? Op.i64DivS
        : Op.i32DivS
      : w
        ? Op.i64DivU
        : Op.i32DivU
    : signed
      ? w
        ? Op.i64RemS
        : Op.i32RemS
      : w
        ? Op.i64RemU
        : Op.i32RemU;
  // if src == 0: div → 0, mod → dst
  src();
  b.byte(w ? Op.i64Eqz : Op.i32Eqz)
    .byte(Op.if)
    .byte(T);
  if (isDiv) zero();
  else dst();
  b.byte(Op.else);
  if (signed && isDiv) {
    // src == -1: −dst (no trap on INT_MIN / −1)
    src();
    if (w) b.byte(Op.i64Const).s64(-1n).byte(Op.i64Eq);
    else b.byte(Op.i32Const).s32(-1).byte(Op.i32Eq);
    b.byte(Op.if).byte(T);
    zero();
    dst();
    b.byte(w ? Op.i64Sub : Op.i32Sub).byte(Op.else);
    dst();
    src();
    b.byte(op).byte(Op.end);
  } else {
    dst();
    src();
    b.byte(op);
  }
  b.byte(Op.end);
  if (!w) b.byte(Op.i64ExtendI32U);
}

function alu32(c: Ctx, i: Insn): void {
  const b = c.b;
  const op = i.code & 0xf0;
  const d = i.dst;
  const x = (i.code & SRC_X) !== 0;
  if (op === END) {
    if (x) {
      bswap(c, d, i.imm);
      return;
    }
    if (i.imm === 64) return;
    get(c, d)
      .byte(Op.i64Const)
      .s64(i.imm === 16 ? 0xffffn : 0xffffffffn)
      .byte(Op.i64And);
    set(c, d);
    return;
  }
  const simple = ALU32_OPS[op];
  if (simple !== undefined) {
    get(c, d).byte(Op.i32WrapI64);
    src32(c, i);
    b.byte(simple).byte(Op.i64ExtendI32U);
    set(c, d);
    return;
  }
  switch (op) {
    case NEG:
      b.byte(Op.i32Const).s32(0);
      get(c, d).byte(Op.i32WrapI64).byte(Op.i32Sub).byte(Op.i64ExtendI32U);
      break;
    case MOV:
      src32(c, i);
      if (x && i.off) b.byte(i.off === 8 ? Op.i32Extend8S : Op.i32Extend16S);
      b.byte(Op.i64ExtendI32U);
      break;
    case DIV:
    case MOD:
      divmod(c, i, 32);
      break;
  }
  set(c, d);
}
