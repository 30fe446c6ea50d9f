// A deterministic generator of programs for the differential fuzz: straight-line ALU (64 and 32
// bit, every operation, register and immediate sources, byte swaps), forward conditional jumps,
// stack stores and loads. With `kernel`, only what the kernel's verifier accepts (immediate shift
// amounts below the width, no division by an immediate 0), and the result is kept in an array map at a slot it chooses (a map
// lookup, a null check, a store through the value pointer) before the low 32 bits are returned.

export interface RandomProgramOptions {
  /** verifier-accepted programs ending with a map store (the map is lddw #0, patched by the caller) */
  kernel?: boolean;
}

/** The instruction index of the map lddw in kernel programs is found by this placeholder constant. */
export const MAP_PLACEHOLDER = 0x7eadbeef;

export function* randomPrograms(seed: number, count: number, opts: RandomProgramOptions = {}): Generator<string> {
  let s = seed;
  const rnd = (n: number) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
  const ops = ['add', 'sub', 'mul', 'div', 'mod', 'or', 'and', 'xor', 'lsh', 'rsh', 'arsh', 'mov', 'sdiv', 'smod'];
  const imms = ['0', '1', '-1', '7', '31', '63', '0x7fffffff', '-2147483648', '255'];
  const shifts = new Set(['lsh', 'rsh', 'arsh']);
  const divisions = new Set(['div', 'mod', 'sdiv', 'smod']);
  for (let p = 0; p < count; p++) {
    const lines = [
      'lddw %r1, 0x8000000000000001',
      'mov %r2, -3',
      'mov32 %r3, 77',
      'lddw %r4, 0x123456789abcdef',
      'mov %r0, 1',
    ];
    for (let i = 0; i < 24; i++) {
      const d = `%r${rnd(5)}`;
      const w = rnd(2) ? '32' : '';
      const op = ops[rnd(ops.length)]!;
      let src = rnd(2) ? `%r${rnd(5)}` : imms[rnd(imms.length)]!;
      if (opts.kernel && shifts.has(op) && !src.startsWith('%')) src = String(rnd(w ? 32 : 64));
      if (opts.kernel && divisions.has(op) && src === '0') src = '7'; // by a register it may still be 0
      const k = rnd(10);
      if (k === 0) lines.push(`stxdw [%r10-${8 * (1 + rnd(4))}], ${d}`, `ldxw ${d}, [%r10-${8 * (1 + rnd(4))}]`);
      else if (k === 1) lines.push(`jsgt${w} ${d}, ${src}, +1`, `xor ${d}, 0x55`);
      else if (k === 2) lines.push(`${['be16', 'be32', 'le16', 'bswap64'][rnd(4)]} ${d}`);
      else lines.push(`${op}${w} ${d}, ${src}`);
    }
    for (let slot = 1; slot <= 4; slot++) lines.splice(1, 0, `stdw [%r10-${8 * slot}], ${slot}`);
    lines.push('add %r0, %r1', 'xor %r0, %r2', 'add %r0, %r3', 'xor %r0, %r4');
    if (opts.kernel)
      lines.push(
        'mov %r6, %r0',
        'mov %r7, %r6',
        'and %r7, 3',
        'stxw [%r10-44], %r7',
        'mov %r2, %r10',
        'add %r2, -44',
        `lddw %r1, ${MAP_PLACEHOLDER}`,
        'call 1',
        'jeq %r0, 0, +1',
        'stxdw [%r0+0], %r6',
        'mov %r0, %r6',
      );
    lines.push('exit');
    yield lines.join('\n');
  }
}
