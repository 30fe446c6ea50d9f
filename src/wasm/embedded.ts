// The BPF objects a Wasm guest carries: wasm-bpf guests (and ours) embed each compiled BPF ELF
// object as a byte array in the module's data, and hand it to wasm_load_bpf_object at run time.
// Finding them lets a bare .wasm be described (its programs and maps) and its capability
// manifest default to what they declare.

const EM_BPF = 247;
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const MAX_OBJECTS = 16;

const MAX_IMAGE = 256 * 1024 * 1024;

function leb(b: Uint8Array, at: number, signed = false): [number, number] {
  let v = 0;
  let shift = 0;
  let i = at;
  let byte: number;
  do {
    if (i >= b.length || shift > 35) throw new Error('malformed LEB128');
    byte = b[i++]!;
    v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  if (signed && byte & 0x40) v -= 2 ** shift;
  return [v, i];
}

/**
 * The guest's memory as its active data segments lay it out at start. Compilers split data in
 * segments (Go's linker leaves out runs of zeros), so an embedded object is whole only there.
 */
export function initialMemory(wasm: Uint8Array): Uint8Array | undefined {
  const segments: { offset: number; bytes: Uint8Array }[] = [];
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at]!;
    const [size, body] = leb(wasm, at + 1);
    if (id === 11) {
      let [count, i] = leb(wasm, body);
      while (count-- > 0) {
        const [flags, afterFlags] = leb(wasm, i);
        i = afterFlags;
        if (flags === 1) {
          const [len, data] = leb(wasm, i);
          i = data + len;
          continue;
        }
        if (flags === 2) i = leb(wasm, i)[1];
        if (wasm[i] !== 0x41) return undefined; // only i32.const offsets
        const [offset, afterOffset] = leb(wasm, i + 1, true);
        if (wasm[afterOffset] !== 0x0b) return undefined;
        const [len, data] = leb(wasm, afterOffset + 1);
        segments.push({ offset, bytes: wasm.subarray(data, data + len) });
        i = data + len;
      }
    }
    at = body + size;
  }
  const end = Math.max(0, ...segments.map((s) => s.offset + s.bytes.length));
  if (end === 0 || end > MAX_IMAGE) return undefined;
  const image = new Uint8Array(end);
  for (const s of segments) image.set(s.bytes, s.offset);
  return image;
}

/** The ELF objects for BPF (64-bit, little-endian, EM_BPF) the guest carries in its data. */
export function embeddedObjects(wasm: Uint8Array): Uint8Array[] {
  let image: Uint8Array | undefined;
  try {
    image = initialMemory(wasm);
  } catch {
    image = undefined;
  }
  return findObjects(image ?? wasm);
}

function findObjects(wasm: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(wasm.buffer, wasm.byteOffset, wasm.byteLength);
  let i = 0;
  while (out.length < MAX_OBJECTS) {
    i = wasm.indexOf(ELF_MAGIC[0]!, i);
    if (i < 0 || i + 64 > wasm.length) break;
    if (
      wasm[i + 1] === ELF_MAGIC[1] &&
      wasm[i + 2] === ELF_MAGIC[2] &&
      wasm[i + 3] === ELF_MAGIC[3] &&
      wasm[i + 4] === 2 && // ELFCLASS64
      wasm[i + 5] === 1 && // little-endian
      view.getUint16(i + 18, true) === EM_BPF
    ) {
      const shoff = Number(view.getBigUint64(i + 0x28, true));
      const shentsize = view.getUint16(i + 0x3a, true);
      const shnum = view.getUint16(i + 0x3c, true);
      const size = shoff + shentsize * shnum;
      if (shentsize === 64 && shnum > 0 && size > 64 && i + size <= wasm.length) {
        out.push(wasm.slice(i, i + size));
        i += size;
        continue;
      }
    }
    i += 1;
  }
  return out;
}
