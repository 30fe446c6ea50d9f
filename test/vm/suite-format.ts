// The bpf_conformance suite's `.data` test files (sections `-- asm`, `-- raw`, `-- mem`,
// `-- result`, `-- error`), read the way the suite's own parser reads them, and the conformance
// group a program belongs to (for pass counts per group).
import { assemble } from '../../src/vm/asm.js';
import { decodeProgram, encodeProgram, type Insn } from '../../src/vm/insn.js';

export interface SuiteTest {
  insns: Insn[];
  memory: Uint8Array;
  result?: bigint;
  error?: string;
}

export function parseSuiteTest(text: string): SuiteTest | undefined {
  let state = '';
  const asm: string[] = [];
  const mem: string[] = [];
  const raw: string[] = [];
  let result = '';
  let error = '';
  for (let line of text.split('\n')) {
    line = line.replace(/\r$/, '');
    if (line.includes('#')) line = line.slice(0, line.indexOf('#'));
    if (line.includes('--')) {
      if (line.includes('asm')) state = 'asm';
      else if (line.includes('result')) state = 'result';
      else if (line.includes('mem')) state = 'mem';
      else if (line.includes('raw')) state = 'raw';
      else if (line.includes('no register offset') || line.includes(' c')) state = '';
      else if (line.includes('error')) state = 'error';
      else return undefined;
      continue;
    }
    if (!line) continue;
    if (state === 'asm') asm.push(line);
    else if (state === 'result') result = line.trim();
    else if (state === 'mem') mem.push(line);
    else if (state === 'error') error = line;
    else if (state === 'raw') raw.push(line);
  }
  if (!result && !error) return undefined;
  let insns: Insn[];
  if (raw.length) {
    const words = raw
      .join(' ')
      .trim()
      .split(/\s+/)
      .map((w) => BigInt.asUintN(64, BigInt(w)));
    const bytes = new Uint8Array(words.length * 8);
    const dv = new DataView(bytes.buffer);
    words.forEach((w, i) => {
      dv.setBigUint64(i * 8, w, true);
    });
    insns = decodeProgram(bytes);
  } else insns = assemble(asm.join('\n'));
  const memory = Uint8Array.from(
    mem
      .join(' ')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((b) => Number.parseInt(b, 16) & 0xff),
  );
  return { insns, memory, result: result ? BigInt.asUintN(64, BigInt(result)) : undefined, error: error || undefined };
}

/** The most demanding conformance group a program uses. */
export function groupOf(insns: readonly Insn[]): string {
  const has = (p: (i: Insn) => boolean) => insns.some(p);
  if (has((i) => i.code === 0x8d)) return 'callx';
  if (has((i) => i.code === 0xdb)) return 'atomic64';
  if (has((i) => i.code === 0xc3)) return 'atomic32';
  const divmul = (i: Insn) => [0x20, 0x30, 0x90].includes(i.code & 0xf0);
  if (has((i) => (i.code & 7) === 7 && divmul(i))) return 'divmul64';
  if (has((i) => (i.code & 7) === 4 && divmul(i))) return 'divmul32';
  if (has((i) => [0x20, 0x28, 0x30, 0x40, 0x48, 0x50].includes(i.code))) return 'packet';
  const wide = (i: Insn) => {
    const cls = i.code & 7;
    const op = i.code & 0xf0;
    const cond64 = cls === 5 && op !== 0x00 && op !== 0x80 && op !== 0x90;
    return (
      cls === 7 || cond64 || i.code === 0x18 || ((cls === 1 || cls === 2 || cls === 3) && (i.code & 0x18) === 0x18)
    );
  };
  return has(wide) ? 'base64' : 'base32';
}

export { encodeProgram };
