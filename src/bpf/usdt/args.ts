// USDT argument specs, as <sys/sdt.h> writes them into a probe's note: "SIZE@LOCATION",
// space separated, where SIZE is 1, 2, 4 or 8 bytes (negative: signed) and LOCATION is the
// assembler operand the compiler chose — a constant, a register, or memory at a register plus
// an offset. Each becomes what usdt.bpf.h's bpf_usdt_arg() reads: the kind, the register's
// offset in the uprobe's struct pt_regs, the constant or memory offset, and how many high bits
// to clear (or sign-extend) to get the value.
//
//   x86-64:  -4@%edi   8@-8(%rbp)   8@(%rsi)   4@$5   8@16(%rax,%rdx,8)
//   arm64:   -4@x1     8@[sp, 16]   8@[x0]     4@5

import { InvalidError } from '../../errors.js';

export type UsdtArgKind = 'const' | 'reg' | 'deref' | 'sib';

export interface UsdtArg {
  kind: UsdtArgKind;
  /** bytes: 1, 2, 4 or 8 */
  size: number;
  signed: boolean;
  /** offsetof(struct pt_regs, REG) of the register read (0 for a constant) */
  regOffset: number;
  /** the constant, or the memory offset from the register (two's complement in 64 bits) */
  value: bigint;
  /** sib only: the index register's pt_regs offset and log2 of its scale */
  indexRegOffset?: number;
  scaleShift?: number;
}

/** Most arguments a probe may have (BPF_USDT_MAX_ARG_CNT). */
export const USDT_MAX_ARGS = 12;

// struct pt_regs on x86-64: r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss
const X64_ORDER = ['r15', 'r14', 'r13', 'r12', 'bp', 'bx', 'r11', 'r10', 'r9', 'r8', 'ax', 'cx', 'dx', 'si', 'di'];
const X64_REGS = new Map<string, number>();
for (const [i, r] of X64_ORDER.entries()) {
  const off = i * 8;
  if (r.startsWith('r')) for (const suffix of ['', 'd', 'w', 'b']) X64_REGS.set(`${r}${suffix}`, off);
  else {
    // rax eax ax al; rsi esi si sil; rbp ebp bp bpl
    X64_REGS.set(`r${r}`, off).set(`e${r}`, off).set(r, off);
    X64_REGS.set(r.endsWith('x') ? `${r[0]}l` : `${r}l`, off);
  }
}
X64_REGS.set('rip', 128).set('eip', 128);
for (const r of ['rsp', 'esp', 'sp', 'spl']) X64_REGS.set(r, 152);

function x64Reg(name: string): number {
  const off = X64_REGS.get(name);
  if (off === undefined) throw new Error(`unknown register %${name}`);
  return off;
}

// struct user_pt_regs on arm64: regs[31], sp, pc, pstate
function arm64Reg(name: string): number {
  if (name === 'sp') return 31 * 8;
  const m = /^[xw](\d+)$/.exec(name);
  if (m && Number(m[1]) < 31) return Number(m[1]) * 8;
  throw new Error(`unknown register ${name}`);
}

const NUM = String.raw`[-+]?(?:0x[0-9a-fA-F]+|\d+)`;

function num(s: string): bigint {
  const neg = s.startsWith('-');
  const v = BigInt(s.replace(/^[-+]/, ''));
  return BigInt.asUintN(64, neg ? -v : v);
}

type Location = Omit<UsdtArg, 'size' | 'signed'>;

function x64Location(loc: string): Location {
  let m = new RegExp(`^\\$(${NUM})$`).exec(loc);
  if (m) return { kind: 'const', regOffset: 0, value: num(m[1]!) };
  m = /^%(\w+)$/.exec(loc);
  if (m) return { kind: 'reg', regOffset: x64Reg(m[1]!), value: 0n };
  m = new RegExp(`^(${NUM})?\\(%(\\w+)\\)$`).exec(loc);
  if (m) return { kind: 'deref', regOffset: x64Reg(m[2]!), value: m[1] ? num(m[1]) : 0n };
  m = new RegExp(`^(${NUM})?\\(%(\\w+),\\s*%(\\w+)(?:,\\s*([1248]))?\\)$`).exec(loc);
  if (m)
    return {
      kind: 'sib',
      regOffset: x64Reg(m[2]!),
      value: m[1] ? num(m[1]) : 0n,
      indexRegOffset: x64Reg(m[3]!),
      scaleShift: Math.log2(Number(m[4] ?? 1)),
    };
  throw new Error('not a constant, register or memory operand');
}

function arm64Location(loc: string): Location {
  let m = new RegExp(`^\\[(\\w+)(?:,\\s*#?(${NUM}))?\\]$`).exec(loc);
  if (m) return { kind: 'deref', regOffset: arm64Reg(m[1]!), value: m[2] ? num(m[2]) : 0n };
  m = new RegExp(`^#?(${NUM})$`).exec(loc);
  if (m) return { kind: 'const', regOffset: 0, value: num(m[1]!) };
  m = /^(\w+)$/.exec(loc);
  if (m) return { kind: 'reg', regOffset: arm64Reg(m[1]!), value: 0n };
  throw new Error('not a constant, register or memory operand');
}

const LOCATIONS: Record<string, (loc: string) => Location> = { x64: x64Location, arm64: arm64Location };

/** Whether kbpf reads USDT arguments on `arch` (Node's process.arch names). */
export function usdtArchSupported(arch: string = process.arch): boolean {
  return arch in LOCATIONS;
}

/**
 * The arguments of a probe from its note's spec string (`where` names the probe in errors).
 * Refuses (Invalid) an operand it cannot read, naming the argument.
 */
export function parseUsdtArgs(spec: string, where: string, arch: string = process.arch): UsdtArg[] {
  const location = LOCATIONS[arch];
  if (!location) throw new InvalidError(`${where}: kbpf reads USDT arguments on x64 and arm64, not ${arch}`);
  // arm64 memory operands have a space after the comma: "8@[sp, 16]"
  const parts = spec.trim() ? spec.trim().split(/\s+(?![^[(]*[\])])/) : [];
  if (parts.length > USDT_MAX_ARGS)
    throw new InvalidError(`${where} has ${parts.length} arguments; usdt.bpf.h reads at most ${USDT_MAX_ARGS}`);
  return parts.map((part, i) => {
    const m = /^(-?\d+)@(.+)$/.exec(part);
    const size = m ? Math.abs(Number(m[1])) : 0;
    if (!m || ![1, 2, 4, 8].includes(size))
      throw new InvalidError(`${where}: argument ${i} "${part}" is not SIZE@LOCATION with a size of 1, 2, 4 or 8`);
    try {
      return { ...location(m[2]!), size, signed: m[1]!.startsWith('-') };
    } catch (e) {
      throw new InvalidError(`${where}: argument ${i} "${part}": ${(e as Error).message}`);
    }
  });
}
