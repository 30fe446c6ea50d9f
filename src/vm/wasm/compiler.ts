// eBPF → WebAssembly. One module per program; one Wasm function per eBPF function, registers as
// i64 locals (r6–r9 are locals, so callee-saved for free). The basic blocks of a function are
// laid out in reverse postorder inside nested Wasm blocks and loops, so every jump is a direct
// `br` (a backward jump first counts down the budget); control flow that does not nest (a jump
// into a loop past its head) falls back to one dispatch loop with a `br_table`. Memory accesses
// are checked against the region table in memory (the same table the interpreter checks), so
// both engines fault on the same accesses:
//   - r10-relative accesses with a constant offset inside the frame are in the stack region by
//     construction (r10 is read-only and each call gets its own frame): no run-time check;
//   - every other access site keeps the region it last matched in a 16-byte cache slot in memory
//     (start, how many addresses an access of its size may start at; zero = empty) and checks
//     inline with one subtract and one compare; a miss walks the table inline (faulting through
//     `env.fault`, which never returns) and refills the slot. The host zeroes the slots whenever a
//     region is removed or moved (VmMemory does), so a cached region always still exists.
//
// ABI of a compiled module (also what `kbpf vm export` writes):
//   imports  env.memory                          the VM memory (region table at 0x100)
//            env.fault(pc i32, addr i64, size i32, write i32)   a bad access; must throw
//            env.stop(pc i32, why i32)           0 budget exhausted, 1 call depth, 2 ran off the end
//            env.bpf_<helper>(r1…r5 i64) → i64   each helper the program calls
//            env.callx(id i64, r1…r5 i64) → i64  only when the program uses callx
//            env.map_lookup_elem_i32(map i32, key i32) → value i32   the map_lookup_elem fast
//                                                path (both arguments below 2^32; else the i64 one)
//   exports  run(r1…r5 i64, r10 i64) → r0 i64   r10 must be the top of the first of 8 512-byte
//                                                stack frames inside the stack region
//            cache_at, cache_size (i32 globals)  the access cache slots: bytes of memory the host
//                                                keeps zero at first and zeroes when a region goes
//            repeat(n i32, budget i64, r1…r5 i64, r10 i64) → r0 i64   n runs (as test_run repeat)
//            globals budget (i64), depth (i32), pc (i32, the instruction of the helper call in
//            progress)
//            with callbacks (pseudo-func lddw, for bpf_loop): callback_<pc>(r1…r5 i64, r10 i64) → r0
//            for each, and global fp (i64, r10 at the helper call in progress): the host calls
//            them with r10 = fp − 512 and depth one more
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
  STX,
  SUB,
  sizeBytes,
  XOR,
} from '../insn.js';
import { INDEX_ARRAY } from '../map-index.js';
import { GUARD_END, MAP_HANDLE_BASE, MAP_HANDLE_STRIDE, REGION_ENTRY, REGION_TABLE } from '../memory.js';
import type { PreparedProgram } from '../program.js';
import { Bytes, I32, I64, ModuleBuilder, Op, VOID } from './encoder.js';

export const STOP_BUDGET = 0;
export const STOP_DEPTH = 1;
export const STOP_END = 2;

/** The export of the callback (bpf_loop) starting at instruction `pc`: (r1…r5, r10) → r0 like `run`. */
export function callbackExportName(pc: number): string {
  return `callback_${pc}`;
}

/** The import name of a helper in a compiled module. */
export function helperImportName(id: number): string {
  const n = helperName(id);
  return n.startsWith('bpf_') ? n : `helper_${id}`;
}

// Local indices in an eBPF function: params r1..r5, r10; then r0, r6..r9, two i64 temps, the
// block number, an address temp, the unchecked address and the budget.
const LOCAL_OF_REG = [6, 0, 1, 2, 3, 4, 7, 8, 9, 10, 5];
const T1 = 11;
const _T2 = 12;
const LBL = 13;
const ADDR = 14;
const A64 = 15;
const BUD = 16;
const WE = 17;
const WEND = 18;
/** Where the access cache slots of a module go by default: the guard page, above the region table. */
export const CACHE_AT = 0x1000;
export const CACHE_END = 0x8000;
const SLOT = 16;
const EXTRA_LOCALS = [I64, I64, I64, I64, I64, I64, I64, I32, I32, I64, I64, I32, I32];
const MAP_LOOKUP_ELEM = 1;

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
  callx: number;
  lookupI32: number;
  /** the in-Wasm map_lookup_elem, or -1 */
  mlookup: number;
  helpers: Map<number, number>;
  funcIndex: Map<number, number>;
  gBudget: number;
  gDepth: number;
  gPc: number;
  /** r10 at the helper call in progress (the frame a callback goes below), or -1: no callbacks */
  gFp: number;
  /** the access cache slot address of each checked load/store (0: no slot, always the table walk) */
  slotOf: Map<number, number>;
}

/** An r10-relative access inside the current frame: in the stack region by construction. */
function inFrame(reg: number, off: number, size: number): boolean {
  return reg === 10 && off >= -STACK_FRAME && off <= -size;
}

/** The number of access cache slots a program needs (its checked loads and stores). */
export function cacheSlots(prog: PreparedProgram): number {
  let n = 0;
  prog.funcs.forEach((start, k) => {
    n += accessSites(prog, start, prog.funcs[k + 1] ?? prog.insns.length).length;
  });
  return n;
}

/**
 * Compiles a prepared program to a WebAssembly module (bytes). Its access cache slots are
 * [cacheAt, cacheAt + 16·slots) of memory, and no further than `cacheEnd` (sites past it go
 * uncached): memory no region covers, zero at first.
 */
export interface CompileOptions {
  cacheAt?: number;
  cacheEnd?: number;
  /**
   * bpf_map_lookup_elem is the engine's own (not a program type's): compiled code may look keys
   * up itself in the maps' in-memory index (map-index.ts), asking the host only when unsure.
   */
  inlineLookup?: boolean;
}

export function compileToWasm(prog: PreparedProgram, opts: CompileOptions = {}): Uint8Array {
  const cacheAt = opts.cacheAt ?? CACHE_AT;
  const cacheEnd = opts.cacheEnd ?? CACHE_END;
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
  const lookupI32 = prog.helpers.includes(MAP_LOOKUP_ELEM)
    ? m.importFunc('env', 'map_lookup_elem_i32', { params: [I32, I32], results: [I32] })
    : -1;
  const gBudget = m.global(I64, 0n);
  const gDepth = m.global(I32, 0);
  const gPc = m.global(I32, 0);
  const gFp = prog.callbacks.length ? m.global(I64, 0n) : -1;
  const fnSig = { params: [I64, I64, I64, I64, I64, I64], results: [I64] };
  const funcIndex = new Map<number, number>();
  for (const f of prog.funcs) funcIndex.set(f, m.declare(fnSig));
  const repeat = m.declare({ params: [I32, I64, I64, I64, I64, I64, I64, I64], results: [I64] });
  const mlookup =
    lookupI32 >= 0 && opts.inlineLookup ? m.declare({ params: [I64, I64, I64, I64, I64], results: [I64] }) : -1;
  if (mlookup >= 0) m.define(mlookup, LOOKUP_LOCALS, lookupBody(lookupI32, helpers.get(MAP_LOOKUP_ELEM)!));
  let slot = cacheAt;
  prog.funcs.forEach((start, k) => {
    const end = prog.funcs[k + 1] ?? prog.insns.length;
    const b = new Bytes(64 + 48 * (end - start));
    const slotOf = new Map<number, number>();
    for (const pc of accessSites(prog, start, end)) {
      const fits = slot + SLOT <= cacheEnd;
      slotOf.set(pc, fits ? slot : 0);
      if (fits) slot += SLOT;
    }
    const c: Ctx = {
      b,
      fault,
      stop,
      callx,
      lookupI32,
      mlookup,
      helpers,
      funcIndex,
      gBudget,
      gDepth,
      gPc,
      gFp,
      slotOf,
    };
    compileFunction(prog, start, end, c);
    m.define(funcIndex.get(start)!, EXTRA_LOCALS, b);
  });
  m.define(repeat, [I64], repeatBody(funcIndex.get(0)!, gBudget, gDepth));
  m.export('run', 'func', funcIndex.get(0)!);
  m.export('repeat', 'func', repeat);
  m.export('cache_at', 'global', m.global(I32, cacheAt, false));
  m.export('cache_size', 'global', m.global(I32, slot - cacheAt, false));
  m.export('budget', 'global', gBudget);
  m.export('depth', 'global', gDepth);
  m.export('pc', 'global', gPc);
  if (gFp >= 0) m.export('fp', 'global', gFp);
  for (const f of prog.callbacks) m.export(callbackExportName(f), 'func', funcIndex.get(f)!);
  return m.finish();
}

/** The checked loads and stores of a function (all but in-frame stack accesses), by pc. */
function accessSites(prog: PreparedProgram, start: number, end: number): number[] {
  const sites: number[] = [];
  for (let pc = start; pc < end; pc++) {
    const i = prog.insns[pc]!;
    const cls = i.code & 7;
    if (i.code === LDDW) {
      pc++;
      continue;
    }
    if (cls !== LDX && cls !== ST && cls !== STX) continue;
    const reg = cls === LDX ? i.src : i.dst;
    if (!inFrame(reg, i.off, sizeBytes(i.code))) sites.push(pc);
  }
  return sites;
}

/**
 * lookup(r1…r5) → r0: bpf_map_lookup_elem in Wasm for array and hash maps (map-index.ts). Any
 * doubt — a map or key above 2^32, not a map handle, a map the index does not cover, a key not
 * wholly inside one region — goes to the host (the i32 import, or the i64 helper), which gives
 * the same result or fault as the interpreter.
 */
const LOOKUP_LOCALS: number[] = new Array<number>(11).fill(I32);
const lookupBodies = new Map<string, Bytes>();

function lookupBody(lookupI32: number, generic: number): Bytes {
  const key = `${lookupI32}:${generic}`;
  let body = lookupBodies.get(key);
  if (!body) {
    body = emitLookup(lookupI32, generic);
    lookupBodies.set(key, body);
  }
  return body;
}

function emitLookup(lookupI32: number, generic: number): Bytes {
  const [H, KIND, KS, EXT, K, WE, WEND, HASH, IDX, E, J] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  const b = new Bytes();
  const get = (l: number) => b.byte(Op.localGet).u32(l);
  const set = (l: number) => b.byte(Op.localSet).u32(l);
  const i32 = (v: number) => b.byte(Op.i32Const).s32(v);
  const load = (offset: number) => b.byte(Op.i32Load).u32(2).u32(offset);
  const ext = (field: number) =>
    get(EXT)
      .byte(Op.i32Load)
      .u32(2)
      .u32(4 * field);
  /** pushes value base + slot·stride + cpu offset (slot on the stack) as i64 */
  const valueAddr = () => {
    ext(2).byte(Op.i32Mul);
    ext(1).byte(Op.i32Add);
    ext(3).byte(Op.i32Add).byte(Op.i64ExtendI32U);
  };
  b.byte(Op.block).byte(VOID); // $slow
  get(0);
  get(1).byte(Op.i64Or).byte(Op.i64Const).s32(32).byte(Op.i64ShrU).byte(Op.i64Eqz).byte(Op.i32Eqz);
  b.byte(Op.brIf).u32(0);
  get(0).byte(Op.i32WrapI64).byte(Op.localTee).u32(H);
  i32(MAP_HANDLE_BASE).byte(Op.i32Sub);
  i32(GUARD_END - MAP_HANDLE_BASE)
    .byte(Op.i32GeU)
    .byte(Op.brIf)
    .u32(0);
  get(H);
  i32(MAP_HANDLE_STRIDE - 1)
    .byte(Op.i32And)
    .byte(Op.brIf)
    .u32(0);
  get(H).byte(Op.i32Load).u32(2).u32(0).byte(Op.localTee).u32(KIND).byte(Op.i32Eqz).byte(Op.brIf).u32(0);
  get(H).byte(Op.i32Load).u32(2).u32(4);
  set(KS);
  get(H).byte(Op.i32Load).u32(2).u32(8);
  set(EXT);
  // the key must lie wholly inside one region: [k, k + ks) below 2^32
  get(1);
  get(KS).byte(Op.i64ExtendI32U).byte(Op.i64Add).byte(Op.i64Const).sNum(0x1_0000_0000).byte(Op.i64GtU);
  b.byte(Op.brIf).u32(0);
  get(1).byte(Op.i32WrapI64);
  set(K);
  i32(REGION_TABLE + 8);
  set(WE);
  i32(REGION_TABLE);
  load(0);
  i32(REGION_ENTRY).byte(Op.i32Mul);
  i32(REGION_TABLE + 8).byte(Op.i32Add);
  set(WEND);
  b.byte(Op.block).byte(VOID).byte(Op.loop).byte(VOID);
  get(WE);
  get(WEND).byte(Op.i32GeU).byte(Op.brIf).u32(2);
  get(K);
  get(WE);
  load(0).byte(Op.i32GeU);
  get(K);
  get(KS).byte(Op.i32Add);
  get(WE);
  load(4).byte(Op.i32LeU).byte(Op.i32And).byte(Op.brIf).u32(1);
  get(WE);
  i32(REGION_ENTRY).byte(Op.i32Add);
  set(WE);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  // array: the u32 index
  get(KIND);
  i32(INDEX_ARRAY).byte(Op.i32Eq).byte(Op.if).byte(VOID);
  get(K);
  load(0).byte(Op.localTee).u32(IDX);
  ext(0).byte(Op.i32GeU).byte(Op.if).byte(VOID).byte(Op.i64Const).s32(0).byte(Op.return).byte(Op.end);
  get(IDX);
  valueAddr();
  b.byte(Op.return).byte(Op.end);
  // hash: keyHash (words, then tail bytes)
  i32(0x9e3779b9 | 0);
  get(KS).byte(Op.i32Xor);
  set(HASH);
  i32(0);
  set(J);
  b.byte(Op.block).byte(VOID).byte(Op.loop).byte(VOID);
  get(J);
  i32(4).byte(Op.i32Add);
  get(KS).byte(Op.i32GtU).byte(Op.brIf).u32(1);
  get(HASH);
  get(K);
  get(J).byte(Op.i32Add);
  load(0).byte(Op.i32Xor);
  i32(0x85ebca6b | 0)
    .byte(Op.i32Mul)
    .byte(Op.localTee)
    .u32(HASH);
  get(HASH);
  i32(15).byte(Op.i32ShrU).byte(Op.i32Xor);
  set(HASH);
  get(J);
  i32(4).byte(Op.i32Add);
  set(J);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  b.byte(Op.block).byte(VOID).byte(Op.loop).byte(VOID);
  get(J);
  get(KS).byte(Op.i32GeU).byte(Op.brIf).u32(1);
  get(HASH);
  get(K);
  get(J).byte(Op.i32Add).byte(Op.i32Load8U).u32(0).u32(0).byte(Op.i32Xor);
  i32(0xc2b2ae35 | 0)
    .byte(Op.i32Mul)
    .byte(Op.localTee)
    .u32(HASH);
  get(HASH);
  i32(13).byte(Op.i32ShrU).byte(Op.i32Xor);
  set(HASH);
  get(J);
  i32(1).byte(Op.i32Add);
  set(J);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  get(HASH);
  get(HASH);
  i32(16).byte(Op.i32ShrU).byte(Op.i32Xor);
  ext(5).byte(Op.i32And);
  set(IDX);
  // probe: slot + 1 at table[idx], 0 = absent; compare the key copy byte by byte
  b.byte(Op.loop).byte(VOID);
  ext(4);
  get(IDX);
  i32(4).byte(Op.i32Mul).byte(Op.i32Add);
  load(0).byte(Op.localTee).u32(E).byte(Op.i32Eqz);
  b.byte(Op.if).byte(VOID).byte(Op.i64Const).s32(0).byte(Op.return).byte(Op.end);
  i32(0);
  set(J);
  b.byte(Op.block).byte(VOID); // $differs
  b.byte(Op.loop).byte(VOID);
  get(J);
  get(KS).byte(Op.i32GeU).byte(Op.if).byte(VOID);
  get(E);
  i32(1).byte(Op.i32Sub);
  valueAddr();
  b.byte(Op.return).byte(Op.end);
  ext(6);
  get(E);
  i32(1).byte(Op.i32Sub);
  ext(7).byte(Op.i32Mul).byte(Op.i32Add);
  get(J).byte(Op.i32Add).byte(Op.i32Load8U).u32(0).u32(0);
  get(K);
  get(J).byte(Op.i32Add).byte(Op.i32Load8U).u32(0).u32(0);
  b.byte(Op.i32Ne).byte(Op.brIf).u32(1);
  get(J);
  i32(1).byte(Op.i32Add);
  set(J);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  get(IDX);
  i32(1).byte(Op.i32Add);
  ext(5).byte(Op.i32And);
  set(IDX);
  b.byte(Op.br).u32(0).byte(Op.end);
  b.byte(Op.unreachable);
  b.byte(Op.end); // $slow
  get(0);
  get(1).byte(Op.i64Or).byte(Op.i64Const).s32(32).byte(Op.i64ShrU).byte(Op.i64Eqz);
  b.byte(Op.if).byte(I64);
  get(0).byte(Op.i32WrapI64);
  get(1).byte(Op.i32WrapI64).byte(Op.call).u32(lookupI32).byte(Op.i64ExtendI32U);
  b.byte(Op.else);
  for (let r = 0; r < 5; r++) get(r);
  b.byte(Op.call).u32(generic).byte(Op.end);
  return b;
}

/** repeat(n, budget, r1…r5, r10): runs the entry n times (n ≥ 1) with a fresh budget each time. */
function repeatBody(run: number, gBudget: number, gDepth: number): Bytes {
  const b = new Bytes();
  const R0 = 8;
  b.byte(Op.loop).byte(VOID);
  b.byte(Op.localGet).u32(1).byte(Op.globalSet).u32(gBudget);
  b.byte(Op.i32Const).s32(0).byte(Op.globalSet).u32(gDepth);
  for (let a = 2; a <= 7; a++) b.byte(Op.localGet).u32(a);
  b.byte(Op.call).u32(run).byte(Op.localSet).u32(R0);
  b.byte(Op.localGet).u32(0).byte(Op.i32Const).s32(1).byte(Op.i32Sub).byte(Op.localTee).u32(0);
  b.byte(Op.i32Const).s32(0).byte(Op.i32GtS).byte(Op.brIf).u32(0);
  b.byte(Op.end);
  b.byte(Op.localGet).u32(R0);
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

/** A Wasm `loop` (re-entered by backward jumps to `open`) or `block` (left by forward jumps to `close`). */
interface Construct {
  /** block boundaries: opens before basic block `open`, closes before basic block `close` */
  open: number;
  close: number;
  loop: boolean;
}

/**
 * Structured control flow for the basic blocks of a function (in pc order): a loop from each
 * backward-jump target to after its last backward jump, a block from the first forward jump to
 * a target up to that target, moved (loops made longer, blocks opened earlier) until they nest.
 * Undefined when they cannot nest (a jump into a loop from before its head).
 */
function structure(edges: readonly { from: number; to: number }[]): Construct[] | undefined {
  const loops = new Map<number, Construct>();
  const blocks = new Map<number, Construct>();
  for (const { from, to } of edges) {
    if (to <= from) {
      const l = loops.get(to);
      if (l) l.close = Math.max(l.close, from + 1);
      else loops.set(to, { open: to, close: from + 1, loop: true });
    } else {
      const f = blocks.get(to);
      if (f) f.open = Math.min(f.open, from);
      else blocks.set(to, { open: from, close: to, loop: false });
    }
  }
  const all = [...loops.values(), ...blocks.values()];
  // outer first: by opening boundary, then the one closing later
  const outerFirst = (x: Construct, y: Construct) =>
    x.open - y.open || y.close - x.close || (x.loop ? 1 : 0) - (y.loop ? 1 : 0);
  // sweep in opening order with the stack of constructs still open; a construct closing after
  // the innermost open one crosses it: move one of them; sweep again until nothing moves
  for (;;) {
    all.sort(outerFirst);
    const open: Construct[] = [];
    let moved = false;
    for (const y of all) {
      while (open.length && open[open.length - 1]!.close <= y.open) open.pop();
      const x = open[open.length - 1];
      if (x && y.close > x.close) {
        moved = true;
        if (!y.loop) {
          y.open = x.open; // placed again by the next sweep
          continue;
        }
        if (!x.loop) return undefined;
        x.close = y.close;
      }
      open.push(y);
    }
    if (!moved) return all;
  }
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
  const b = c.b;
  b.byte(Op.globalGet).u32(c.gBudget).byte(Op.localSet).u32(BUD);
  const cfg = controlFlow(insns, blocks, blockOf, end);
  const plan = structure(cfg.edges);
  if (plan) emitStructured(prog, c, blocks, blockOf, end, cfg, plan);
  else {
    emitDispatched(prog, c, blocks, blockOf, end);
    b.byte(Op.i32Const).s32(end).byte(Op.i32Const).s32(STOP_END).byte(Op.call).u32(c.stop).byte(Op.unreachable);
  }
}

/** The basic blocks' successors, their layout (reverse postorder) and the edges between positions. */
interface ControlFlow {
  /** blocks in layout order; block number `blocks.length` stands for "past the end" (a stop) */
  order: number[];
  pos: Map<number, number>;
  /** the block reached by falling off the end of each block, if any */
  fall: (number | undefined)[];
  /** jumps and fallthroughs between layout positions */
  edges: { from: number; to: number }[];
}

function controlFlow(
  insns: readonly Insn[],
  blocks: readonly number[],
  blockOf: ReadonlyMap<number, number>,
  end: number,
): ControlFlow {
  const N = blocks.length;
  const succs: number[][] = [];
  const fall: (number | undefined)[] = [];
  for (let k = 0; k < N; k++) {
    const to = blocks[k + 1] ?? end;
    const last = to - 1;
    // the last slot may be the second half of an lddw (then the block ends in no jump)
    const i = last > blocks[k]! && insns[last - 1]!.code === LDDW ? undefined : insns[last]!;
    const s: number[] = [];
    let f: number | undefined = k + 1;
    if (i && isJump(i)) {
      const op = i.code & 0xf0;
      if (op === EXIT) f = undefined;
      else {
        s.push(blockOf.get(jumpTarget(last, i))!);
        if (op === JA) f = undefined;
      }
    }
    if (f !== undefined) s.push(f);
    succs.push(s);
    fall.push(f);
  }
  // reverse postorder from the entry: the successor visited last is laid out right after its block
  const post: number[] = [];
  const seen = new Uint8Array(N + 1);
  const stack: [number, number][] = [[0, 0]];
  seen[0] = 1;
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const s = top[0] < N ? succs[top[0]]! : [];
    if (top[1] < s.length) {
      const n = s[top[1]++]!;
      if (!seen[n]) {
        seen[n] = 1;
        stack.push([n, 0]);
      }
    } else {
      post.push(top[0]);
      stack.pop();
    }
  }
  const order = post.reverse();
  const endAt = order.indexOf(N);
  if (endAt >= 0) order.splice(endAt, 1);
  order.push(N);
  const pos = new Map(order.map((k, p) => [k, p]));
  const edges: { from: number; to: number }[] = [];
  for (const k of order) {
    if (k === N) continue;
    for (const n of succs[k]!) edges.push({ from: pos.get(k)!, to: pos.get(n)! });
  }
  return { order, pos, fall, edges };
}

/** Emits the instructions of basic block [from, to); `jump(j, pc, extra)` emits a jump to block j. */
function emitBlock(
  prog: PreparedProgram,
  c: Ctx,
  from: number,
  to: number,
  blockOf: ReadonlyMap<number, number>,
  jump: (j: number, pc: number, extra: number) => void,
  brDepth: (j: number, pc: number) => number | undefined,
): void {
  const b = c.b;
  const insns = prog.insns;
  for (let pc = from; pc < to; pc++) {
    const i = insns[pc]!;
    if (isJump(i)) {
      const op = i.code & 0xf0;
      if (op === EXIT) {
        b.byte(Op.localGet).u32(BUD).byte(Op.globalSet).u32(c.gBudget);
        b.byte(Op.localGet).u32(LOCAL_OF_REG[0]!).byte(Op.return);
        continue;
      }
      const j = blockOf.get(jumpTarget(pc, i))!;
      if (op === JA) {
        jump(j, pc, 0);
        continue;
      }
      condition(c, i);
      const direct = brDepth(j, pc);
      if (direct !== undefined) b.byte(Op.brIf).u32(direct);
      else {
        b.byte(Op.if).byte(VOID);
        jump(j, pc, 1);
        b.byte(Op.end);
      }
      continue;
    }
    compileInsn(prog, pc, i, c);
    if (i.code === LDDW) pc++;
  }
}

/**
 * Basic blocks in reverse postorder inside nested Wasm blocks and loops (see `structure`): every
 * jump is a direct br. Only jumps backward in the program (not in the layout) count against the
 * budget, as in the interpreter; every cycle has one.
 */
function emitStructured(
  prog: PreparedProgram,
  c: Ctx,
  blocks: readonly number[],
  blockOf: ReadonlyMap<number, number>,
  end: number,
  cfg: ControlFlow,
  plan: readonly Construct[],
): void {
  const b = c.b;
  const N = blocks.length;
  const stack: Construct[] = [];
  const loopAt = new Map<number, Construct>();
  const blockTo = new Map<number, Construct>();
  for (const x of plan) {
    if (x.loop) loopAt.set(x.open, x);
    else blockTo.set(x.close, x);
  }
  const depthOf = (x: Construct) => stack.length - 1 - stack.lastIndexOf(x);
  let next = 0;
  for (let p = 0; p < cfg.order.length; p++) {
    while (stack.length && stack[stack.length - 1]!.close === p) {
      stack.pop();
      b.byte(Op.end);
    }
    for (; next < plan.length && plan[next]!.open === p; next++) {
      stack.push(plan[next]!);
      b.byte(plan[next]!.loop ? Op.loop : Op.block).byte(VOID);
    }
    const k = cfg.order[p]!;
    if (k === N) {
      b.byte(Op.i32Const).s32(end).byte(Op.i32Const).s32(STOP_END).byte(Op.call).u32(c.stop).byte(Op.unreachable);
      continue;
    }
    /** br depth to the start of the block at layout position tp (from position p) */
    const brTo = (tp: number) => (tp > p ? depthOf(blockTo.get(tp)!) : depthOf(loopAt.get(tp)!));
    emitBlock(
      prog,
      c,
      blocks[k]!,
      blocks[k + 1] ?? end,
      blockOf,
      (j, pc, extra) => {
        if (jumpTarget(pc, prog.insns[pc]!) <= pc) budgetCheck(c, pc);
        b.byte(Op.br).u32(brTo(cfg.pos.get(j)!) + extra);
      },
      (j, pc) => {
        const tp = cfg.pos.get(j)!;
        return tp > p && jumpTarget(pc, prog.insns[pc]!) > pc ? depthOf(blockTo.get(tp)!) : undefined;
      },
    );
    const f = cfg.fall[k];
    if (f !== undefined && cfg.pos.get(f) !== p + 1) b.byte(Op.br).u32(brTo(cfg.pos.get(f)!));
  }
  while (stack.length) {
    stack.pop();
    b.byte(Op.end);
  }
}

/**
 * The fallback for control flow that does not nest: the basic blocks are nested Wasm blocks
 * inside one loop; a backward jump sets the block number and re-enters through a br_table.
 */
function emitDispatched(
  prog: PreparedProgram,
  c: Ctx,
  blocks: readonly number[],
  blockOf: ReadonlyMap<number, number>,
  end: number,
): void {
  const b = c.b;
  const N = blocks.length;
  b.byte(Op.loop).byte(VOID);
  for (let k = 0; k < N; k++) b.byte(Op.block).byte(VOID);
  b.byte(Op.localGet).u32(LBL).byte(Op.brTable).u32(N);
  for (let k = 0; k < N; k++) b.u32(k);
  b.u32(0);
  for (let k = 0; k < N; k++) {
    b.byte(Op.end);
    emitBlock(
      prog,
      c,
      blocks[k]!,
      blocks[k + 1] ?? end,
      blockOf,
      (j, pc, extra) => {
        if (j > k) {
          b.byte(Op.br).u32(j - (k + 1) + extra);
          return;
        }
        budgetCheck(c, pc);
        b.byte(Op.i32Const).s32(j).byte(Op.localSet).u32(LBL);
        b.byte(Op.br).u32(N - 1 - k + extra);
      },
      (j) => (j > k ? j - (k + 1) : undefined),
    );
  }
  b.byte(Op.end);
}

/** The budget lives in a local; the global is brought up to date around calls and at exit. */
function budgetCheck(c: Ctx, pc: number): void {
  const b = c.b;
  b.byte(Op.localGet).u32(BUD).byte(Op.i64Const).s32(1).byte(Op.i64Sub).byte(Op.localTee).u32(BUD);
  b.byte(Op.i64Const).s32(0).byte(Op.i64LtS).byte(Op.if).byte(VOID);
  b.byte(Op.localGet).u32(BUD).byte(Op.globalSet).u32(c.gBudget);
  b.byte(Op.i32Const).s32(pc).byte(Op.i32Const).s32(STOP_BUDGET).byte(Op.call).u32(c.stop).byte(Op.end);
}

const saveBudget = (c: Ctx) => c.b.byte(Op.localGet).u32(BUD).byte(Op.globalSet).u32(c.gBudget);
const loadBudget = (c: Ctx) => c.b.byte(Op.globalGet).u32(c.gBudget).byte(Op.localSet).u32(BUD);

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
  else b.byte(Op.i64Const).s32(i.imm);
  if (op === JSET) b.byte(Op.i64And).byte(Op.i64Eqz).byte(Op.i32Eqz);
  else b.byte(CMP64[op]!);
}

/** Pushes the checked i32 address of [reg + off]. */
function address(c: Ctx, reg: number, off: number, size: number, write: boolean, pc: number): void {
  const b = c.b;
  if (inFrame(reg, off, size)) {
    get(c, reg).byte(Op.i32WrapI64).byte(Op.i32Const).s32(off).byte(Op.i32Add);
    return;
  }
  const slot = c.slotOf.get(pc)!;
  get(c, reg);
  if (off) b.byte(Op.i64Const).s32(off).byte(Op.i64Add);
  b.byte(Op.localTee).u32(A64);
  if (!slot) {
    tableWalk(c, size, write, pc, 0);
    return;
  }
  b.byte(Op.i32Const).s32(0).byte(Op.i64Load).u32(3).u32(slot).byte(Op.i64Sub);
  b.byte(Op.i32Const)
    .s32(0)
    .byte(Op.i64Load)
    .u32(3)
    .u32(slot + 8)
    .byte(Op.i64LtU);
  b.byte(Op.if).byte(I32).byte(Op.localGet).u32(A64).byte(Op.i32WrapI64).byte(Op.else);
  tableWalk(c, size, write, pc, slot);
  b.byte(Op.end);
}

/**
 * The miss path of an access (address in A64): finds the region in the table, refills the
 * cache slot (unless 0) and pushes the i32 address; or calls fault, which does not return.
 * Inline, so the only call is one that never comes back (nothing is kept live across it).
 */
function tableWalk(c: Ctx, size: number, write: boolean, pc: number, slot: number): void {
  const b = c.b;
  const callFault = () => {
    b.byte(Op.i32Const).s32(pc).byte(Op.localGet).u32(A64).byte(Op.i32Const).s32(size);
    b.byte(Op.i32Const)
      .s32(write ? 1 : 0)
      .byte(Op.call)
      .u32(c.fault)
      .byte(Op.unreachable);
  };
  // addr + size must fit in 32 bits
  b.byte(Op.localGet)
    .u32(A64)
    .byte(Op.i64Const)
    .sNum(0xffffffff - size)
    .byte(Op.i64GtU);
  b.byte(Op.if).byte(VOID);
  callFault();
  b.byte(Op.end);
  b.byte(Op.i32Const)
    .s32(REGION_TABLE + 8)
    .byte(Op.localSet)
    .u32(WE);
  b.byte(Op.i32Const).s32(REGION_TABLE).byte(Op.i32Load).u32(2).u32(0).byte(Op.i32Const).s32(REGION_ENTRY);
  b.byte(Op.i32Mul)
    .byte(Op.i32Const)
    .s32(REGION_TABLE + 8)
    .byte(Op.i32Add)
    .byte(Op.localSet)
    .u32(WEND);
  b.byte(Op.block).byte(VOID).byte(Op.loop).byte(VOID);
  b.byte(Op.localGet).u32(WE).byte(Op.localGet).u32(WEND).byte(Op.i32GeU).byte(Op.if).byte(VOID);
  callFault();
  b.byte(Op.end);
  // start <= a && a + size <= end (&& writable)
  b.byte(Op.localGet).u32(A64).byte(Op.i32WrapI64).byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(0);
  b.byte(Op.i32GeU);
  b.byte(Op.localGet).u32(A64).byte(Op.i32WrapI64).byte(Op.i32Const).s32(size).byte(Op.i32Add);
  b.byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(4).byte(Op.i32LeU).byte(Op.i32And);
  if (write) b.byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(8).byte(Op.i32And);
  b.byte(Op.brIf).u32(1);
  b.byte(Op.localGet).u32(WE).byte(Op.i32Const).s32(REGION_ENTRY).byte(Op.i32Add).byte(Op.localSet).u32(WE);
  b.byte(Op.br).u32(0).byte(Op.end).byte(Op.end);
  if (slot) {
    b.byte(Op.i32Const).s32(0).byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(0).byte(Op.i64ExtendI32U);
    b.byte(Op.i64Store).u32(3).u32(slot);
    b.byte(Op.i32Const).s32(0).byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(4);
    b.byte(Op.localGet).u32(WE).byte(Op.i32Load).u32(2).u32(0).byte(Op.i32Sub);
    b.byte(Op.i32Const)
      .s32(size - 1)
      .byte(Op.i32Sub)
      .byte(Op.i64ExtendI32U)
      .byte(Op.i64Store)
      .u32(3)
      .u32(slot + 8);
  }
  b.byte(Op.localGet).u32(A64).byte(Op.i32WrapI64);
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
      b.byte(Op.i64Const).s32(i.imm).byte(STORES[size]!);
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
    if (size === 4) b.byte(Op.i64Const).sNum(0xffffffff).byte(Op.i64And);
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
    saveBudget(c);
    for (let r = 1; r <= 5; r++) get(c, r);
    get(c, 10).byte(Op.i64Const).s32(STACK_FRAME).byte(Op.i64Sub);
    b.byte(Op.call).u32(c.funcIndex.get(pc + i.imm + 1)!);
    set(c, 0);
    loadBudget(c);
    b.byte(Op.globalGet).u32(c.gDepth).byte(Op.i32Const).s32(1).byte(Op.i32Sub).byte(Op.globalSet).u32(c.gDepth);
    return;
  }
  b.byte(Op.i32Const).s32(pc).byte(Op.globalSet).u32(c.gPc);
  if (c.gFp >= 0) get(c, 10).byte(Op.globalSet).u32(c.gFp);
  saveBudget(c);
  const generic = () => {
    if (i.code & SRC_X) get(c, i.dst);
    for (let r = 1; r <= 5; r++) get(c, r);
    b.byte(Op.call).u32(i.code & SRC_X ? c.callx : c.helpers.get(i.imm)!);
  };
  if (!(i.code & SRC_X) && i.imm === MAP_LOOKUP_ELEM && c.mlookup >= 0) {
    for (let r = 1; r <= 5; r++) get(c, r);
    b.byte(Op.call).u32(c.mlookup);
  } else if (!(i.code & SRC_X) && i.imm === MAP_LOOKUP_ELEM) {
    // map and key below 2^32: the i32 import (no BigInt at the boundary); else the i64 one
    get(c, 1);
    get(c, 2).byte(Op.i64Or).byte(Op.i64Const).s32(32).byte(Op.i64ShrU).byte(Op.i64Eqz);
    b.byte(Op.if).byte(I64);
    get(c, 1).byte(Op.i32WrapI64);
    get(c, 2).byte(Op.i32WrapI64).byte(Op.call).u32(c.lookupI32).byte(Op.i64ExtendI32U);
    b.byte(Op.else);
    generic();
    b.byte(Op.end);
  } else generic();
  set(c, 0);
  loadBudget(c);
}

function src64(c: Ctx, i: Insn): void {
  if (i.code & SRC_X) get(c, i.src);
  else c.b.byte(Op.i64Const).s32(i.imm);
}
function src32(c: Ctx, i: Insn): void {
  if (i.code & SRC_X) get(c, i.src).byte(Op.i32WrapI64);
  else c.b.byte(Op.i32Const).s32(i.imm);
}

function bswap(c: Ctx, d: number, bits: number): void {
  const b = c.b;
  if (bits === 16) {
    get(c, d).byte(Op.i64Const).s32(0xff).byte(Op.i64And).byte(Op.i64Const).s32(8).byte(Op.i64Shl);
    get(c, d).byte(Op.i64Const).s32(8).byte(Op.i64ShrU).byte(Op.i64Const).s32(0xff).byte(Op.i64And);
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
    b.byte(Op.localGet).u32(T1).byte(Op.i64Const).s32(32).byte(Op.i64Rotl);
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
      b.byte(Op.i64Const).s32(0);
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
  const zero = () => (w ? b.byte(Op.i64Const).s32(0) : b.byte(Op.i32Const).s32(0));
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
    if (w) b.byte(Op.i64Const).s32(-1).byte(Op.i64Eq);
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
      .sNum(i.imm === 16 ? 0xffff : 0xffffffff)
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
