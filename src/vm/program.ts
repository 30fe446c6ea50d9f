// Preparing a program for the engines: checks what a user-space engine must refuse (unknown
// opcodes, jumps outside the program or their function, into an lddw, writes to r10, helpers it
// lacks) and resolves lddw pseudo loads (maps, map values) to plain 64-bit constants. Both
// engines run the same PreparedProgram.

import { VmLoadError } from './errors.js';
import { type Helper, helperName } from './helpers.js';
import {
  ADD as A_ADD,
  AND as A_AND,
  OR as A_OR,
  XOR as A_XOR,
  ALU,
  ALU64,
  ATOMIC_CMPXCHG,
  ATOMIC_FETCH,
  ATOMIC_XCHG,
  CALL,
  DIV,
  describe,
  END,
  EXIT,
  type Insn,
  JA,
  JMP,
  JMP32,
  JSLE,
  LD,
  LDDW,
  LDX,
  MOD,
  MODE_ATOMIC,
  MODE_MEM,
  MODE_MEMSX,
  MOV,
  NEG,
  PSEUDO_CALL,
  PSEUDO_FUNC,
  PSEUDO_MAP_FD,
  PSEUDO_MAP_VALUE,
  SIZE_DW,
  SIZE_W,
  SRC_X,
  ST,
} from './insn.js';
import { type VmMap, VmValueMap } from './maps.js';
import { FUNC_HANDLE_BASE } from './memory.js';

export interface PreparedProgram {
  readonly name: string;
  readonly insns: readonly Insn[];
  /** the 64-bit constant of each lddw, at its first slot */
  readonly imm64: ReadonlyMap<number, bigint>;
  /** first instruction of each function, ascending; [0] is the entry */
  readonly funcs: readonly number[];
  /** helper ids called by `call imm` */
  readonly helpers: readonly number[];
  /** uses `callx` (call the helper whose id is in a register) */
  readonly callx: boolean;
  /** functions whose address a pseudo-func lddw takes (bpf_loop callbacks), ascending */
  readonly callbacks: readonly number[];
}

export interface PrepareOptions {
  maps?: readonly VmMap[];
  /** the helper for an id, or undefined when the engine lacks it */
  helper: (id: number) => Helper | undefined;
  /** accept `callx reg` (the conformance suite's register call of a helper id) */
  allowCallx?: boolean;
}

const ATOMIC_OPS = new Set([
  A_ADD,
  A_ADD | ATOMIC_FETCH,
  A_OR,
  A_OR | ATOMIC_FETCH,
  A_AND,
  A_AND | ATOMIC_FETCH,
  A_XOR,
  A_XOR | ATOMIC_FETCH,
  ATOMIC_XCHG,
  ATOMIC_CMPXCHG,
]);

function bad(pc: number, i: Insn | undefined, why: string, unsupported = false): VmLoadError {
  return new VmLoadError(`insn ${pc}${i ? ` (${describe(i)})` : ''}: ${why}`, { unsupported });
}

/** Why an instruction is not valid, or undefined when it is (register checks apart). */
function opcodeProblem(i: Insn, allowCallx: boolean): string | undefined {
  const cls = i.code & 7;
  const op = i.code & 0xf0;
  const x = (i.code & SRC_X) !== 0;
  switch (cls) {
    case ALU:
    case ALU64: {
      if (op > END) return 'unknown ALU operation';
      if (op === NEG && (x || i.src || i.imm)) return 'neg takes no source';
      if (op === END) {
        if (cls === ALU64 && x) return 'unknown byte swap';
        if (![16, 32, 64].includes(i.imm)) return `byte swap width ${i.imm}`;
        return undefined;
      }
      if (op === DIV || op === MOD) {
        if (i.off !== 0 && i.off !== 1) return `reserved offset ${i.off}`;
      } else if (op === MOV && x) {
        const ok = cls === ALU64 ? [0, 8, 16, 32] : [0, 8, 16];
        if (!ok.includes(i.off)) return `movsx width ${i.off}`;
      } else if (i.off !== 0) return `reserved offset ${i.off}`;
      if (!x && i.src) return 'reserved source register';
      return undefined;
    }
    case JMP:
    case JMP32: {
      if (op === CALL) {
        if (cls !== JMP) return 'unknown jump operation';
        if (x) return allowCallx ? undefined : 'callx is not supported';
        return i.src === 0 || i.src === PSEUDO_CALL ? undefined : 'kfunc calls are not supported';
      }
      if (op === EXIT) return cls === JMP && !x ? undefined : 'unknown jump operation';
      if (op === JA) return x ? 'unknown jump operation' : undefined;
      return op > JSLE || op === CALL ? 'unknown jump operation' : undefined;
    }
    case LD:
      return i.code === LDDW ? undefined : 'legacy packet loads (ld_abs/ld_ind) are not supported';
    case LDX:
      if ((i.code & 0xe0) === MODE_MEM) return undefined;
      if ((i.code & 0xe0) === MODE_MEMSX && (i.code & 0x18) !== SIZE_DW) return undefined;
      return 'unknown load mode';
    case ST:
      return (i.code & 0xe0) === MODE_MEM ? undefined : 'unknown store mode';
    default:
      if ((i.code & 0xe0) === MODE_MEM) return undefined;
      if ((i.code & 0xe0) === MODE_ATOMIC) {
        const sz = i.code & 0x18;
        if (sz !== SIZE_W && sz !== SIZE_DW) return 'atomic of 1 or 2 bytes';
        return ATOMIC_OPS.has(i.imm) ? undefined : `unknown atomic operation 0x${i.imm.toString(16)}`;
      }
      return 'unknown store mode';
  }
}

/** Writes dst (so dst may not be r10): ALU, LDX, LDDW. */
function writesDst(i: Insn): boolean {
  const cls = i.code & 7;
  return cls === ALU || cls === ALU64 || cls === LDX || i.code === LDDW;
}

export function prepareProgram(name: string, insns: readonly Insn[], opts: PrepareOptions): PreparedProgram {
  const n = insns.length;
  if (n === 0) throw new VmLoadError(`program ${name}: no instructions`);
  const second = new Set<number>();
  const imm64 = new Map<number, bigint>();
  const helpers = new Set<number>();
  const funcStarts = new Set<number>([0]);
  const callbacks = new Set<number>();
  let callx = false;
  const out = insns.map((i) => ({ ...i }));

  for (let pc = 0; pc < n; pc++) {
    const i = out[pc]!;
    if (second.has(pc)) continue;
    const problem = opcodeProblem(i, opts.allowCallx ?? false);
    if (problem) throw bad(pc, i, problem, problem.includes('not supported'));
    if (i.dst > 10 || i.src > 10) throw bad(pc, i, 'register out of range');
    if (i.dst === 10 && writesDst(i)) throw bad(pc, i, 'r10 is read-only');
    if (i.code === LDDW) {
      const next = out[pc + 1];
      if (next?.code !== 0 || next.dst || next.src || next.off) throw bad(pc, i, 'lddw without its second half');
      second.add(pc + 1);
      if (i.src === PSEUDO_FUNC) {
        const t = pc + i.imm + 1;
        if (t < 0 || t >= n || next.imm) throw bad(pc, i, `callback ${t} outside the program`);
        funcStarts.add(t);
        callbacks.add(t);
        imm64.set(pc, funcHandle(t));
        continue;
      }
      imm64.set(pc, resolveLddw(pc, i, next, opts.maps ?? []));
      continue;
    }
    const cls = i.code & 7;
    if ((cls === JMP || cls === JMP32) && (i.code & 0xf0) === CALL) {
      if (i.code & SRC_X) {
        callx = true;
      } else if (i.src === PSEUDO_CALL) {
        const t = pc + i.imm + 1;
        if (t < 0 || t >= n) throw bad(pc, i, `call target ${t} outside the program`);
        funcStarts.add(t);
      } else {
        if (!opts.helper(i.imm))
          throw bad(pc, i, `${helperName(i.imm)} is not available in the user-space engine`, true);
        helpers.add(i.imm);
      }
    }
  }
  const funcs = [...funcStarts].sort((a, b) => a - b);
  for (const f of funcs) if (second.has(f)) throw bad(f, undefined, 'call into the middle of an lddw');
  const funcOf = (pc: number) => {
    let f = 0;
    for (const s of funcs) if (s <= pc) f = s;
    return f;
  };
  const funcEnd = (f: number) => funcs.find((s) => s > f) ?? n;

  for (let pc = 0; pc < n; pc++) {
    const i = out[pc]!;
    if (second.has(pc)) continue;
    const cls = i.code & 7;
    if (cls !== JMP && cls !== JMP32) continue;
    const op = i.code & 0xf0;
    if (op === CALL || op === EXIT) continue;
    const t = pc + 1 + (cls === JMP32 && op === JA ? i.imm : i.off);
    const f = funcOf(pc);
    if (t < f || t >= funcEnd(f)) throw bad(pc, i, `jump to ${t} outside its function`);
    if (second.has(t)) throw bad(pc, i, 'jump into the middle of an lddw');
  }
  for (const f of funcs) {
    const last = funcEnd(f) - 1;
    const i = out[second.has(last) ? last - 1 : last]!;
    const cls = i.code & 7;
    const op = i.code & 0xf0;
    const ends = (cls === JMP || cls === JMP32) && (op === EXIT || op === JA);
    if (!ends) throw bad(last, i, 'the last instruction of a function must be exit or a jump');
  }
  return {
    name,
    insns: out,
    imm64,
    funcs,
    helpers: [...helpers],
    callx,
    callbacks: [...callbacks].sort((a, b) => a - b),
  };
}

/** What a pseudo-func lddw of the function starting at `pc` gives (a callback handle). */
export function funcHandle(pc: number): bigint {
  return FUNC_HANDLE_BASE + BigInt(pc);
}

/** The function a callback handle names, or undefined when it is not one of the program's callbacks. */
export function callbackOf(prog: PreparedProgram, handle: bigint): number | undefined {
  const pc = handle - FUNC_HANDLE_BASE;
  return pc >= 0n && pc < BigInt(prog.insns.length) && prog.callbacks.includes(Number(pc)) ? Number(pc) : undefined;
}

function resolveLddw(pc: number, i: Insn, next: Insn, maps: readonly VmMap[]): bigint {
  const plain = (BigInt(next.imm >>> 0) << 32n) | BigInt(i.imm >>> 0);
  if (i.src === 0) return plain;
  const m = maps[i.imm];
  if (i.src === PSEUDO_MAP_FD) {
    if (!m) throw bad(pc, i, `no map ${i.imm}`);
    return BigInt(m.handle);
  }
  if (i.src === PSEUDO_MAP_VALUE) {
    if (!(m instanceof VmValueMap) || !m.isArray) throw bad(pc, i, `map ${i.imm} has no direct value`);
    if (next.imm < 0 || next.imm >= m.spec.valueSize) throw bad(pc, i, `offset ${next.imm} outside the value`);
    return BigInt(m.base + next.imm);
  }
  throw bad(pc, i, `lddw pseudo source ${i.src} is not supported`, true);
}
