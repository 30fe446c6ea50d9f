// The sizes of the records a program writes into each ring buffer or perf event array, read from
// its bytecode: the constant size argument of bpf_ringbuf_reserve, bpf_ringbuf_output and
// bpf_perf_event_output, with the map their map argument was loaded from (the ld_imm64's
// relocation against the map's symbol). A struct of that size defined by the package is the
// event's record type when nothing better says so.
import { readElfSectionHeaders, readElfSections, readElfSymbols } from 'kbpf/bpf';

const SHF_EXECINSTR = 4n;
const SHT_REL = 9;

/** helper id → [map argument register, size argument register] */
const OUTPUT_HELPERS = new Map<number, [number, number]>([
  [25, [2, 5]], // bpf_perf_event_output(ctx, map, flags, data, size)
  [130, [1, 3]], // bpf_ringbuf_output(map, data, size, flags)
  [131, [1, 2]], // bpf_ringbuf_reserve(map, size, flags)
]);

type Reg = { map?: string; imm?: number } | undefined;

/** map name → record sizes seen written to it (constant sizes only). */
export function recordSizes(object: Uint8Array): Map<string, Set<number>> {
  return scanSizes(object).maps;
}

/** section → the constant sizes its bpf_seq_write calls write (an iterator's binary records). */
export function seqWriteSizes(object: Uint8Array): Map<string, Set<number>> {
  return scanSizes(object).sections;
}

const SEQ_WRITE = 127; // bpf_seq_write(seq, data, len)

function add(m: Map<string, Set<number>>, key: string, size: number): void {
  const set = m.get(key) ?? new Set<number>();
  set.add(size);
  m.set(key, set);
}

function scanSizes(object: Uint8Array): { maps: Map<string, Set<number>>; sections: Map<string, Set<number>> } {
  const out = new Map<string, Set<number>>();
  const sections = new Map<string, Set<number>>();
  const headers = readElfSectionHeaders(object);
  const bytes = readElfSections(object);
  const symbols = readElfSymbols(object);
  for (const sec of headers) {
    if ((sec.flags & SHF_EXECINSTR) === 0n || sec.size === 0) continue;
    const code = bytes.get(sec.name);
    if (!code) continue;
    // instruction offset → the map symbol an ld_imm64 there is relocated against
    const mapAt = new Map<number, string>();
    for (const rel of headers) {
      if (rel.type !== SHT_REL || rel.info !== sec.index) continue;
      const r = bytes.get(rel.name);
      if (!r) continue;
      const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
      for (let at = 0; at + 16 <= r.byteLength; at += 16) {
        const offset = Number(dv.getBigUint64(at, true));
        const sym = symbols[Number(dv.getBigUint64(at + 8, true) >> 32n) - 1];
        if (sym?.section === '.maps' || sym?.section === 'maps') mapAt.set(offset, sym.name);
      }
    }
    const dv = new DataView(code.buffer, code.byteOffset, code.byteLength);
    const regs: Reg[] = new Array(11).fill(undefined);
    for (let at = 0; at + 8 <= code.byteLength; at += 8) {
      const op = code[at]!;
      const dst = code[at + 1]! & 0xf;
      const src = code[at + 1]! >> 4;
      const imm = dv.getInt32(at + 4, true);
      if (op === 0x18) {
        // ld_imm64: two slots
        regs[dst] = mapAt.has(at) ? { map: mapAt.get(at) } : undefined;
        at += 8;
        continue;
      }
      if (op === 0xb7 || op === 0xb4)
        regs[dst] = { imm }; // mov dst, imm (64 / 32 bit)
      else if (op === 0xbf || op === 0xbc)
        regs[dst] = regs[src]; // mov dst, src
      else if (op === 0x85) {
        const helper = src === 0 ? OUTPUT_HELPERS.get(imm) : undefined;
        if (helper) {
          const map = regs[helper[0]]?.map;
          const size = regs[helper[1]]?.imm;
          if (map && size !== undefined && size > 0) add(out, map, size);
        }
        const written = src === 0 && imm === SEQ_WRITE ? regs[3]?.imm : undefined;
        if (written !== undefined && written > 0) add(sections, sec.name, written);
        for (let r = 0; r <= 5; r++) regs[r] = undefined;
      } else if ((op & 0x07) === 0x07 || (op & 0x07) === 0x04 || (op & 0x07) === 0x01 || (op & 0x07) === 0x00)
        regs[dst] = undefined; // other ALU ops and loads write dst
    }
  }
  return { maps: out, sections };
}
