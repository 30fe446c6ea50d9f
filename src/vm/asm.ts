// An assembler for the eBPF text syntax the bpf_conformance suite's test files use
// (`mov32 %r0, 1`, `ldxw %r1, [%r2+4]`, `jne %r0, 15, label`, `lock fetch add [%r10-8], %r1`,
// `call local f`, `lddw %r0, 0x…`): our own tests are written in it, and the suite driver
// assembles the suite's files with it.
import { InvalidError } from '../errors.js';
import {
  ALU,
  ALU64,
  ATOMIC_CMPXCHG,
  ATOMIC_FETCH,
  ATOMIC_XCHG,
  CALL,
  END,
  EXIT,
  type Insn,
  JMP,
  JMP32,
  LDDW,
  LDX,
  MODE_ATOMIC,
  MODE_MEM,
  MODE_MEMSX,
  PSEUDO_CALL,
  SIZE_B,
  SIZE_DW,
  SIZE_H,
  SIZE_W,
  SRC_X,
  ST,
  STX,
} from './insn.js';

const ALU_OPS: Record<string, number> = {
  add: 0x00,
  sub: 0x10,
  mul: 0x20,
  div: 0x30,
  sdiv: 0x30,
  or: 0x40,
  and: 0x50,
  lsh: 0x60,
  rsh: 0x70,
  neg: 0x80,
  mod: 0x90,
  smod: 0x90,
  xor: 0xa0,
  mov: 0xb0,
  movsx: 0xb0,
  arsh: 0xc0,
};
const JMP_OPS: Record<string, number> = {
  jeq: 0x10,
  jgt: 0x20,
  jge: 0x30,
  jset: 0x40,
  jne: 0x50,
  jsgt: 0x60,
  jsge: 0x70,
  jlt: 0xa0,
  jle: 0xb0,
  jslt: 0xc0,
  jsle: 0xd0,
};
const SIZES: Record<string, number> = { b: SIZE_B, h: SIZE_H, w: SIZE_W, dw: SIZE_DW };
const ATOMIC: Record<string, number> = { add: 0x00, or: 0x40, and: 0x50, xor: 0xa0 };

function reg(s: string | undefined): number {
  const m = /^%r(\d+)$/.exec(s ?? '');
  if (!m || Number(m[1]) > 10) throw new InvalidError(`invalid register: ${s}`);
  return Number(m[1]);
}

function num(s: string | undefined): bigint {
  if (s === undefined) throw new InvalidError('missing operand');
  const neg = s.startsWith('-');
  const body = neg || s.startsWith('+') ? s.slice(1) : s;
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(body)) throw new InvalidError(`invalid number: ${s}`);
  const v = BigInt(body);
  return neg ? -v : v;
}

function imm32(s: string | undefined): number {
  const v = num(s);
  if (v < -(2n ** 31n) || v > 2n ** 32n - 1n) throw new InvalidError(`immediate out of 32-bit range: ${s}`);
  return Number(BigInt.asIntN(32, v));
}

function off16(s: string): number {
  const v = num(s);
  if (v < -(2n ** 15n) || v > 2n ** 16n - 1n) throw new InvalidError(`offset out of 16-bit range: ${s}`);
  return Number(BigInt.asIntN(16, v));
}

function memOperand(s: string | undefined): { reg: number; off: number } {
  const m = /^\[(%r\d+)\s*([+-]\s*(?:0x[0-9a-f]+|\d+))?\]$/i.exec(s ?? '');
  if (!m) throw new InvalidError(`invalid memory operand: ${s}`);
  return { reg: reg(m[1]), off: m[2] ? off16(m[2].replace(/\s+/g, '')) : 0 };
}

const insn = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });

/** Assembles text into instructions; labels (`name:`) and `exit` as a label for the first exit. */
export function assemble(text: string): Insn[] {
  const out: Insn[] = [];
  const labels = new Map<string, number>();
  const fixups: { at: number; label: string; field: 'off' | 'imm'; line: number }[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, lineNo) => {
    const line = raw
      .replace(/#.*$/, '')
      .replace(/\/\/.*$/, '')
      .trim();
    if (!line) return;
    const [mnemonic, ...rest] = line.split(/\s+/);
    const ops = rest
      .join(' ')
      .split(/,\s*|\s+(?![^[]*\])/)
      .map((s) => s.trim())
      .filter(Boolean);
    const m = mnemonic!;
    try {
      if (m.endsWith(':')) {
        labels.set(m.slice(0, -1), out.length);
        return;
      }
      if (m === 'exit' && !labels.has('exit')) labels.set('exit', out.length);
      const target = (s: string | undefined, field: 'off' | 'imm'): number => {
        if (s === undefined) throw new InvalidError('missing jump target');
        if (/^[+-]/.test(s)) return field === 'off' ? off16(s) : imm32(s);
        fixups.push({ at: out.length, label: s, field, line: lineNo + 1 });
        return 0;
      };
      out.push(...encodeOne(m, ops, target));
    } catch (e) {
      throw new InvalidError(`line ${lineNo + 1}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  });
  for (const f of fixups) {
    const at = labels.get(f.label);
    if (at === undefined) throw new InvalidError(`line ${f.line}: invalid label: ${f.label}`);
    out[f.at]![f.field] = at - f.at - 1;
  }
  return out;
}

function encodeOne(m: string, ops: string[], target: (s: string | undefined, f: 'off' | 'imm') => number): Insn[] {
  const need = (k: number) => {
    if (ops.length !== k) throw new InvalidError(`invalid number of operands for ${m}`);
  };
  if (m === 'lddw') {
    need(2);
    const v = BigInt.asUintN(64, num(ops[1]));
    return [
      insn(LDDW, reg(ops[0]), 0, 0, Number(BigInt.asIntN(32, v & 0xffffffffn))),
      insn(0, 0, 0, 0, Number(BigInt.asIntN(32, v >> 32n))),
    ];
  }
  let mm: RegExpExecArray | null = /^ldx(s?)(b|h|w|dw)$/.exec(m);
  if (mm) {
    need(2);
    const { reg: src, off } = memOperand(ops[1]);
    return [insn(LDX | (mm[1] ? MODE_MEMSX : MODE_MEM) | SIZES[mm[2]!]!, reg(ops[0]), src, off)];
  }
  mm = /^st(x?)(b|h|w|dw)$/.exec(m);
  if (mm) {
    need(2);
    const { reg: dst, off } = memOperand(ops[0]);
    if (mm[1]) return [insn(STX | MODE_MEM | SIZES[mm[2]!]!, dst, reg(ops[1]), off)];
    return [insn(ST | MODE_MEM | SIZES[mm[2]!]!, dst, 0, off, imm32(ops[1]))];
  }
  if (m === 'lock') {
    const fetch = ops[0] === 'fetch';
    const rest = fetch ? ops.slice(1) : ops;
    if (rest.length !== 3) throw new InvalidError('invalid number of operands for lock');
    const op = /^(add|or|and|xor|xchg|cmpxchg)(32)?$/.exec(rest[0]!);
    if (!op) throw new InvalidError(`invalid mnemonic: lock ${rest[0]}`);
    const { reg: dst, off } = memOperand(rest[1]);
    const imm =
      op[1] === 'xchg'
        ? ATOMIC_XCHG
        : op[1] === 'cmpxchg'
          ? ATOMIC_CMPXCHG
          : ATOMIC[op[1]!]! | (fetch ? ATOMIC_FETCH : 0);
    return [insn(STX | MODE_ATOMIC | (op[2] ? SIZE_W : SIZE_DW), dst, reg(rest[2]), off, imm)];
  }
  mm = /^(be|le|swap|bswap)(16|32|64)$/.exec(m);
  if (mm) {
    need(1);
    const code = mm[1] === 'le' ? ALU | END : mm[1] === 'be' ? ALU | END | SRC_X : ALU64 | END;
    return [insn(code, reg(ops[0]), 0, 0, Number(mm[2]))];
  }
  if (m === 'exit') {
    need(0);
    return [insn(JMP | EXIT)];
  }
  if (m === 'ja') {
    need(1);
    return [insn(JMP, 0, 0, target(ops[0], 'off'))];
  }
  if (m === 'ja32' || m === 'gotol') {
    need(1);
    return [insn(JMP32, 0, 0, 0, target(ops[0], 'imm'))];
  }
  if (m === 'call') {
    if (ops.length === 1) ops.unshift('helper');
    need(2);
    if (ops[0] === 'local') return [insn(JMP | CALL, 0, PSEUDO_CALL, 0, target(ops[1], 'imm'))];
    if (ops[0] === 'runtime') return [insn(JMP | CALL, 0, 2, 0, imm32(ops[1]))];
    if (ops[0] !== 'helper') throw new InvalidError('invalid call mode');
    if (ops[1]!.startsWith('%')) return [insn(JMP | CALL | SRC_X, reg(ops[1]))];
    return [insn(JMP | CALL, 0, 0, 0, imm32(ops[1]))];
  }
  mm = /^(j[a-z]+?)(32)?$/.exec(m);
  if (mm && JMP_OPS[mm[1]!] !== undefined) {
    need(3);
    const code = (mm[2] ? JMP32 : JMP) | JMP_OPS[mm[1]!]!;
    const off = target(ops[2], 'off');
    if (ops[1]!.startsWith('%')) return [insn(code | SRC_X, reg(ops[0]), reg(ops[1]), off)];
    return [insn(code, reg(ops[0]), 0, off, imm32(ops[1]))];
  }
  mm = /^([a-z]+?)(8|16|32)?(32|64)?$/.exec(m);
  if (mm) {
    const name = mm[1]!;
    let width = 0;
    let cls = ALU64;
    if (name === 'movsx') {
      width = Number(mm[2]);
      cls = mm[3] === '32' ? ALU : ALU64;
    } else {
      if (mm[3] || (mm[2] && !mm[3])) {
        const w = mm[3] ?? mm[2];
        if (mm[2] && mm[3]) throw new InvalidError(`invalid mnemonic: ${m}`);
        cls = w === '32' ? ALU : w === '64' ? ALU64 : -1;
        if (cls < 0) throw new InvalidError(`invalid mnemonic: ${m}`);
      }
    }
    const op = ALU_OPS[name];
    if (op === undefined) throw new InvalidError(`invalid mnemonic: ${m}`);
    const signed = name === 'sdiv' || name === 'smod';
    if (name === 'neg') {
      need(1);
      return [insn(cls | op, reg(ops[0]))];
    }
    need(2);
    const off = signed ? 1 : width;
    if (ops[1]!.startsWith('%')) return [insn(cls | op | SRC_X, reg(ops[0]), reg(ops[1]), off)];
    return [insn(cls | op, reg(ops[0]), 0, off, imm32(ops[1]))];
  }
  throw new InvalidError(`invalid mnemonic: ${m}`);
}
