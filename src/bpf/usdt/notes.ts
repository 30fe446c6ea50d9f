// USDT probes of an executable or shared library: the SystemTap SDT notes (`.note.stapsdt`,
// owner "stapsdt", type 3) that <sys/sdt.h> and DTrace-style providers leave in the binary.
// Each note gives the probe's address, the address `.stapsdt.base` had when the note was
// written (prelink moves sections: the difference is added back), an optional semaphore (a
// counter the program checks before computing arguments; the kernel raises it while a uprobe
// with that reference counter is attached) and the argument specs ("-4@%edi 8@-8(%rbp)").
// A uprobe takes a file offset, so addresses become offsets through the PT_LOAD segment that
// maps them.

import { NotFoundError } from '../../errors.js';
import { type ElfSegment, readElfSectionHeaders, readElfSegments } from '../btf/elf.js';
import { ElfError } from '../btf/errors.js';

const NOTE_SECTION = '.note.stapsdt';
const BASE_SECTION = '.stapsdt.base';
const NT_STAPSDT = 3;
const ET_EXEC = 2;
const ET_DYN = 3;

export interface UsdtProbe {
  provider: string;
  name: string;
  /** the argument specs, space separated, as the note has them */
  args: string;
  /** the probe's virtual address (after the prelink adjustment) */
  address: number;
  /** the file offset a uprobe attaches at */
  offset: number;
  /** the file offset of the semaphore (reference counter), 0 when the probe has none */
  semaphoreOffset: number;
}

function segmentOf(segments: ElfSegment[], addr: number): ElfSegment | undefined {
  return segments.find((s) => s.vaddr <= addr && addr < s.vaddr + s.memsz);
}

function cString(buf: Uint8Array, at: number, end: number): [string, number] {
  const z = buf.indexOf(0, at);
  if (z < 0 || z >= end) throw new ElfError(`ELF: unterminated string in ${NOTE_SECTION}`);
  return [Buffer.from(buf.buffer, buf.byteOffset + at, z - at).toString('utf8'), z + 1];
}

/**
 * Every USDT probe of the ELF file `buf` (`file` names it in errors). A file without
 * `.note.stapsdt` has none; a note whose address no segment maps is malformed.
 */
export function readUsdtProbes(buf: Uint8Array, file: string): UsdtProbe[] {
  const { type, segments } = readElfSegments(buf);
  if (type !== ET_EXEC && type !== ET_DYN)
    throw new ElfError(`${file} is not an executable or a shared library (ELF type ${type})`);
  const sections = readElfSectionHeaders(buf);
  const notes = sections.find((s) => s.name === NOTE_SECTION);
  if (!notes) return [];
  const base = sections.find((s) => s.name === BASE_SECTION)?.addr ?? 0;
  const le = buf[5] === 1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = notes.offset + notes.size;
  const out: UsdtProbe[] = [];
  const align4 = (n: number) => (n + 3) & ~3;
  for (let at = notes.offset; at + 12 <= end; ) {
    const namesz = dv.getUint32(at, le);
    const descsz = dv.getUint32(at + 4, le);
    const ntype = dv.getUint32(at + 8, le);
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (next > end) throw new ElfError(`${file}: ${NOTE_SECTION} has a note past its end`);
    at = next;
    const owner = Buffer.from(buf.buffer, buf.byteOffset + nameAt, Math.max(0, namesz - 1)).toString('latin1');
    if (ntype !== NT_STAPSDT || owner !== 'stapsdt') continue;
    if (descsz < 24 + 3) throw new ElfError(`${file}: a ${NOTE_SECTION} note is too short`);
    const word = (i: number) => Number(dv.getBigUint64(descAt + i * 8, le));
    const [loc, noteBase, sema] = [word(0), word(1), word(2)];
    const descEnd = descAt + descsz;
    const [provider, afterProvider] = cString(buf, descAt + 24, descEnd);
    const [name, afterName] = cString(buf, afterProvider, descEnd);
    const [args] = afterName < descEnd ? cString(buf, afterName, descEnd) : [''];
    const shift = base && noteBase ? base - noteBase : 0;
    const address = loc + shift;
    const seg = segmentOf(segments, address);
    if (!seg?.executable)
      throw new ElfError(
        `${file}: USDT probe ${provider}:${name} at 0x${address.toString(16)} is in no executable segment`,
      );
    let semaphoreOffset = 0;
    if (sema) {
      // semaphores live in .probes, which prelink does not move
      const s = segmentOf(segments, sema);
      if (!s || s.executable)
        throw new ElfError(
          `${file}: the semaphore of USDT probe ${provider}:${name} at 0x${sema.toString(16)} is in no data segment`,
        );
      semaphoreOffset = sema - s.vaddr + s.offset;
    }
    out.push({ provider, name, args, address, offset: address - seg.vaddr + seg.offset, semaphoreOffset });
  }
  return out;
}

/** The sites of probe PROVIDER:NAME in `buf`; refused (NotFound) listing what the file has. */
export function usdtSites(buf: Uint8Array, file: string, provider: string, name: string): UsdtProbe[] {
  const probes = readUsdtProbes(buf, file);
  const sites = probes.filter((p) => p.provider === provider && p.name === name);
  if (sites.length) return sites;
  const known = [...new Set(probes.map((p) => `${p.provider}:${p.name}`))];
  throw new NotFoundError(
    probes.length
      ? `${file} has no USDT probe ${provider}:${name} (it has ${known.slice(0, 20).join(', ')}${known.length > 20 ? ', …' : ''})`
      : `${file} has no USDT probes (no ${NOTE_SECTION} section: it was built without <sys/sdt.h> probes)`,
  );
}
