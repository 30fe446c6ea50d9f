// A guest's memory limit, written into the module: the maximum of its (defined) linear memory is
// set to the limit, so a memory.grow past it fails inside the guest (malloc returns NULL) instead
// of taking memory from the node. Only the memory section's limits are rewritten; the rest of the
// module is kept byte for byte.
import { InvalidError } from '../errors.js';

export const PAGE_BYTES = 65536;

function readU32(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    if (i >= b.length) throw new InvalidError('the Wasm module is truncated');
    const byte = b[i++]!;
    v += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [v, i];
    shift += 7;
    if (shift > 35) throw new InvalidError('the Wasm module has a malformed LEB128 number');
  }
}

function u32(v: number): number[] {
  const out: number[] = [];
  do {
    let byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}

/**
 * Returns the module with its memory's maximum set to `maxPages` (lowered, never raised above a
 * smaller declared maximum). Throws Invalid when the module needs more pages at start.
 */
export function limitMemory(wasm: Uint8Array, maxPages: number): { module: Uint8Array; initialPages: number } {
  if (wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d)
    throw new InvalidError('not a WebAssembly module (no \\0asm header)');
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at]!;
    const [size, body] = readU32(wasm, at + 1);
    const end = body + size;
    if (end > wasm.length) throw new InvalidError('the Wasm module is truncated');
    if (id === 5) {
      const [count, first] = readU32(wasm, body);
      if (count !== 1) throw new InvalidError(`the Wasm module defines ${count} memories; a guest has one`);
      const flags = wasm[first]!;
      if (flags & ~1) throw new InvalidError('the guest memory is shared or 64-bit, which this host does not run');
      const [min, afterMin] = readU32(wasm, first + 1);
      let max = maxPages;
      if (flags & 1) max = Math.min(max, readU32(wasm, afterMin)[0]);
      if (min > max)
        throw new InvalidError(
          `the guest needs ${(min * PAGE_BYTES) / 2 ** 20} MiB of memory at start, more than its limit of ${(maxPages * PAGE_BYTES) / 2 ** 20} MiB`,
        );
      const newBody = [...u32(1), 1, ...u32(min), ...u32(max)];
      const section = [5, ...u32(newBody.length), ...newBody];
      const out = new Uint8Array(at + section.length + (wasm.length - end));
      out.set(wasm.subarray(0, at), 0);
      out.set(section, at);
      out.set(wasm.subarray(end), at + section.length);
      return { module: out, initialPages: min };
    }
    at = end;
  }
  return { module: wasm, initialPages: 0 };
}
