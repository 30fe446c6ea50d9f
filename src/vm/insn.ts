// eBPF instructions: decoding the 8-byte encoding, opcode fields, and a short disassembly for
// error messages.

export interface Insn {
  /** opcode byte */
  code: number;
  dst: number;
  src: number;
  /** signed 16-bit offset */
  off: number;
  /** signed 32-bit immediate */
  imm: number;
}

// Instruction classes (code & 7).
export const LD = 0x00;
export const LDX = 0x01;
export const ST = 0x02;
export const STX = 0x03;
export const ALU = 0x04;
export const JMP = 0x05;
export const JMP32 = 0x06;
export const ALU64 = 0x07;

// Sizes (code & 0x18) and modes (code & 0xe0) of loads and stores.
export const SIZE_W = 0x00;
export const SIZE_H = 0x08;
export const SIZE_B = 0x10;
export const SIZE_DW = 0x18;
export const MODE_IMM = 0x00;
export const MODE_ABS = 0x20;
export const MODE_IND = 0x40;
export const MODE_MEM = 0x60;
export const MODE_MEMSX = 0x80;
export const MODE_ATOMIC = 0xc0;

/** Source operand bit: register (X) rather than immediate (K). */
export const SRC_X = 0x08;

// ALU operations (code & 0xf0).
export const ADD = 0x00;
export const SUB = 0x10;
export const MUL = 0x20;
export const DIV = 0x30;
export const OR = 0x40;
export const AND = 0x50;
export const LSH = 0x60;
export const RSH = 0x70;
export const NEG = 0x80;
export const MOD = 0x90;
export const XOR = 0xa0;
export const MOV = 0xb0;
export const ARSH = 0xc0;
export const END = 0xd0;

// Jump operations (code & 0xf0).
export const JA = 0x00;
export const JEQ = 0x10;
export const JGT = 0x20;
export const JGE = 0x30;
export const JSET = 0x40;
export const JNE = 0x50;
export const JSGT = 0x60;
export const JSGE = 0x70;
export const CALL = 0x80;
export const EXIT = 0x90;
export const JLT = 0xa0;
export const JLE = 0xb0;
export const JSLT = 0xc0;
export const JSLE = 0xd0;

// Atomic operations (imm of STX|ATOMIC).
export const ATOMIC_FETCH = 0x01;
export const ATOMIC_XCHG = 0xe0 | ATOMIC_FETCH;
export const ATOMIC_CMPXCHG = 0xf0 | ATOMIC_FETCH;

/** lddw: LD | IMM | DW. */
export const LDDW = LD | MODE_IMM | SIZE_DW;

// lddw src values (pseudo loads).
export const PSEUDO_MAP_FD = 1;
export const PSEUDO_MAP_VALUE = 2;
/** the address of a subprogram (a bpf_loop callback): imm is the offset of its first instruction, as a call's */
export const PSEUDO_FUNC = 4;
// call src values.
export const PSEUDO_CALL = 1;
export const PSEUDO_KFUNC_CALL = 2;

export const INSN_SIZE = 8;

/** Bytes per size field value. */
export function sizeBytes(code: number): 1 | 2 | 4 | 8 {
  switch (code & 0x18) {
    case SIZE_B:
      return 1;
    case SIZE_H:
      return 2;
    case SIZE_W:
      return 4;
    default:
      return 8;
  }
}

export function decodeProgram(bytes: Uint8Array): Insn[] {
  if (bytes.length % INSN_SIZE) throw new RangeError(`program length ${bytes.length} is not a multiple of 8`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let at = 0; at < bytes.length; at += INSN_SIZE) {
    const regs = bytes[at + 1]!;
    out.push({
      code: bytes[at]!,
      dst: regs & 0xf,
      src: regs >> 4,
      off: dv.getInt16(at + 2, true),
      imm: dv.getInt32(at + 4, true),
    });
  }
  return out;
}

export function encodeProgram(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * INSN_SIZE);
  const dv = new DataView(out.buffer);
  insns.forEach((i, n) => {
    const at = n * INSN_SIZE;
    out[at] = i.code;
    out[at + 1] = (i.dst & 0xf) | ((i.src & 0xf) << 4);
    dv.setInt16(at + 2, i.off, true);
    dv.setInt32(at + 4, i.imm, true);
  });
  return out;
}

const ALU_NAMES: Record<number, string> = {
  [ADD]: 'add',
  [SUB]: 'sub',
  [MUL]: 'mul',
  [DIV]: 'div',
  [OR]: 'or',
  [AND]: 'and',
  [LSH]: 'lsh',
  [RSH]: 'rsh',
  [NEG]: 'neg',
  [MOD]: 'mod',
  [XOR]: 'xor',
  [MOV]: 'mov',
  [ARSH]: 'arsh',
  [END]: 'end',
};
const JMP_NAMES: Record<number, string> = {
  [JA]: 'ja',
  [JEQ]: 'jeq',
  [JGT]: 'jgt',
  [JGE]: 'jge',
  [JSET]: 'jset',
  [JNE]: 'jne',
  [JSGT]: 'jsgt',
  [JSGE]: 'jsge',
  [CALL]: 'call',
  [EXIT]: 'exit',
  [JLT]: 'jlt',
  [JLE]: 'jle',
  [JSLT]: 'jslt',
  [JSLE]: 'jsle',
};

/** A short human form of an instruction, e.g. `ldxw r0, [r1+4]` (for messages, not for parsing). */
export function describe(i: Insn): string {
  const cls = i.code & 7;
  const hex = `0x${i.code.toString(16).padStart(2, '0')}`;
  const sz = { 1: 'b', 2: 'h', 4: 'w', 8: 'dw' }[sizeBytes(i.code)];
  const mem = (r: number) => `[r${r}${i.off < 0 ? i.off : `+${i.off}`}]`;
  switch (cls) {
    case ALU:
    case ALU64: {
      const name = `${ALU_NAMES[i.code & 0xf0] ?? hex}${cls === ALU ? '32' : ''}`;
      return `${name} r${i.dst}, ${i.code & SRC_X ? `r${i.src}` : i.imm}`;
    }
    case JMP:
    case JMP32: {
      const name = `${JMP_NAMES[i.code & 0xf0] ?? hex}${cls === JMP32 ? '32' : ''}`;
      if ((i.code & 0xf0) === EXIT) return 'exit';
      if ((i.code & 0xf0) === CALL) return `call ${i.src === PSEUDO_CALL ? `local ${i.imm}` : i.imm}`;
      return `${name} r${i.dst}, ${i.code & SRC_X ? `r${i.src}` : i.imm}, ${i.off}`;
    }
    case LD:
      return i.code === LDDW ? `lddw r${i.dst}, ${i.imm}` : `ld ${hex}`;
    case LDX:
      return `ldx${(i.code & 0xe0) === MODE_MEMSX ? 's' : ''}${sz} r${i.dst}, ${mem(i.src)}`;
    case ST:
      return `st${sz} ${mem(i.dst)}, ${i.imm}`;
    default:
      return (i.code & 0xe0) === MODE_ATOMIC
        ? `atomic${sz} ${mem(i.dst)}, r${i.src}`
        : `stx${sz} ${mem(i.dst)}, r${i.src}`;
  }
}
