// Minimal ELF64 reader for BPF object files: section headers, section bytes and the
// symbol table. Enough to pull `.BTF` out of a `.bpf.o` and to list SEC() names and symbols.
// Also the file type and loadable segments of executables and shared libraries, which USDT
// attachment needs to turn a probe's address into a file offset (src/bpf/usdt).
import { KbpfError } from '../../errors.js';
import { Btf } from './btf.js';
import { ElfError } from './errors.js';

const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const SHT_DYNSYM = 11;
const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const SHN_ABS = 0xfff1;
const SHN_COMMON = 0xfff2;
const SHN_XINDEX = 0xffff;
/** Largest NOBITS section (.bss) read as zeros: a BPF map value is far smaller. */
const MAX_NOBITS_SIZE = 1 << 26;

export interface ElfSection {
  readonly index: number;
  readonly name: string;
  /** sh_type: 1 PROGBITS, 2 SYMTAB, 3 STRTAB, 8 NOBITS, 9 REL, ... */
  readonly type: number;
  readonly flags: bigint;
  /** sh_addr: where the section is in memory (0 in relocatable objects) */
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  readonly entsize: number;
}

export type ElfSymbolType = 'NOTYPE' | 'OBJECT' | 'FUNC' | 'SECTION' | 'FILE' | 'COMMON' | 'TLS' | `OTHER(${number})`;
export type ElfSymbolBind = 'LOCAL' | 'GLOBAL' | 'WEAK' | `OTHER(${number})`;

export interface ElfSymbol {
  readonly name: string;
  /** Name of the section the symbol is defined in; '' for undefined, absolute and common symbols. */
  readonly section: string;
  readonly sectionIndex: number;
  /** Offset inside the section (object files are relocatable). */
  readonly value: number;
  readonly size: number;
  readonly type: ElfSymbolType;
  readonly bind: ElfSymbolBind;
}

const SYM_TYPES: readonly ElfSymbolType[] = ['NOTYPE', 'OBJECT', 'FUNC', 'SECTION', 'FILE', 'COMMON', 'TLS'];
const SYM_BINDS: readonly ElfSymbolBind[] = ['LOCAL', 'GLOBAL', 'WEAK'];

interface ElfFile {
  buf: Uint8Array;
  dv: DataView;
  le: boolean;
  sections: ElfSection[];
}

/** Runs a read of `buf`, turning out-of-bounds reads of a malformed file into an ElfError. */
function guarded<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof KbpfError) throw err;
    throw new ElfError(`ELF: malformed file (${(err as Error).message})`, { cause: err });
  }
}

function open(buf: Uint8Array): ElfFile {
  if (buf.byteLength < 64 || buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) {
    throw new ElfError('ELF: not an ELF file');
  }
  if (buf[4] !== 2) throw new ElfError('ELF: only ELF64 is supported');
  if (buf[5] !== 1 && buf[5] !== 2) throw new ElfError(`ELF: bad data encoding ${buf[5]}`);
  const le = buf[5] === 1;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { buf, dv, le, sections: readSectionHeaders(buf, dv, le) };
}

function u64(dv: DataView, at: number, le: boolean): number {
  const v = dv.getBigUint64(at, le);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`ELF: value 0x${v.toString(16)} too large`);
  return Number(v);
}

function readSectionHeaders(buf: Uint8Array, dv: DataView, le: boolean): ElfSection[] {
  const shoff = u64(dv, 0x28, le);
  const shentsize = dv.getUint16(0x3a, le);
  let shnum = dv.getUint16(0x3c, le);
  let shstrndx = dv.getUint16(0x3e, le);
  if (shoff === 0) return [];
  if (shentsize < 64) throw new ElfError(`ELF: bad section header size ${shentsize}`);
  // Huge section counts/indices live in section 0 (ELF extended numbering).
  if (shnum === 0) shnum = u64(dv, shoff + 0x20, le);
  if (shstrndx === SHN_XINDEX) shstrndx = dv.getUint32(shoff + 0x28, le);
  if (shoff + shnum * shentsize > buf.byteLength) throw new ElfError('ELF: section headers past end of file');

  const raw = Array.from({ length: shnum }, (_, index) => {
    const at = shoff + index * shentsize;
    return {
      index,
      nameOff: dv.getUint32(at, le),
      type: dv.getUint32(at + 4, le),
      flags: dv.getBigUint64(at + 8, le),
      addr: u64(dv, at + 0x10, le),
      offset: u64(dv, at + 0x18, le),
      size: u64(dv, at + 0x20, le),
      link: dv.getUint32(at + 0x28, le),
      info: dv.getUint32(at + 0x2c, le),
      entsize: u64(dv, at + 0x38, le),
    };
  });
  for (const s of raw) {
    if (s.type !== SHT_NOBITS && s.offset + s.size > buf.byteLength)
      throw new ElfError(`ELF: section ${s.index} past end of file`);
    if (s.type === SHT_NOBITS && s.size > MAX_NOBITS_SIZE)
      throw new ElfError(
        `ELF: section ${s.index} is ${s.size} bytes of zeros, more than the ${MAX_NOBITS_SIZE} allowed`,
      );
  }
  const names = raw[shstrndx];
  const nameOf = (off: number): string => (names ? cString(buf, names.offset + off, names.offset + names.size) : '');
  return raw.map(({ nameOff, ...s }) => ({ ...s, name: nameOf(nameOff) }));
}

function cString(buf: Uint8Array, start: number, limit: number): string {
  if (start >= limit) return '';
  let end = buf.indexOf(0, start);
  if (end < 0 || end > limit) end = limit;
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('utf8');
}

function sectionBytes(f: ElfFile, s: ElfSection): Uint8Array {
  // .bss occupies no file bytes: its contents are zeros.
  return s.type === SHT_NOBITS ? new Uint8Array(s.size) : f.buf.subarray(s.offset, s.offset + s.size);
}

/** A PT_LOAD program header: a piece of the file mapped at `vaddr`. */
export interface ElfSegment {
  readonly vaddr: number;
  readonly memsz: number;
  readonly offset: number;
  readonly executable: boolean;
}

const PT_LOAD = 1;
const PF_X = 1;

/** The file's e_type (1 relocatable, 2 executable, 3 shared object or PIE) and its PT_LOAD segments. */
export function readElfSegments(buf: Uint8Array): { type: number; segments: ElfSegment[] } {
  return guarded(() => {
    const f = open(buf);
    const { dv, le } = f;
    const phoff = u64(dv, 0x20, le);
    const phentsize = dv.getUint16(0x36, le);
    const phnum = dv.getUint16(0x38, le);
    if (phnum && phentsize < 56) throw new ElfError(`ELF: bad program header size ${phentsize}`);
    if (phoff + phnum * phentsize > buf.byteLength) throw new ElfError('ELF: program headers past end of file');
    const segments: ElfSegment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (dv.getUint32(at, le) !== PT_LOAD) continue;
      segments.push({
        executable: (dv.getUint32(at + 4, le) & PF_X) !== 0,
        offset: u64(dv, at + 8, le),
        vaddr: u64(dv, at + 0x10, le),
        memsz: u64(dv, at + 0x28, le),
      });
    }
    return { type: dv.getUint16(0x10, le), segments };
  });
}

/**
 * A copy of `buf` whose sections named in `renames` have the new name, each a prefix of the old
 * one (the name is cut short in the section-name table, so any other name sharing its tail is
 * cut the same way). Undefined when no section has a name to change.
 */
export function truncateElfSectionNames(buf: Uint8Array, renames: ReadonlyMap<string, string>): Uint8Array | undefined {
  return guarded(() => {
    const f = open(buf);
    const shoff = u64(f.dv, 0x28, f.le);
    const shentsize = f.dv.getUint16(0x3a, f.le);
    let shstrndx = f.dv.getUint16(0x3e, f.le);
    if (shstrndx === SHN_XINDEX) shstrndx = f.dv.getUint32(shoff + 0x28, f.le);
    const strtab = f.sections[shstrndx];
    let out: Uint8Array | undefined;
    for (const s of f.sections) {
      const to = renames.get(s.name);
      if (to === undefined || !strtab) continue;
      if (!s.name.startsWith(to)) throw new ElfError(`ELF: cannot rename section ${s.name} to ${to}`);
      out ??= Uint8Array.from(buf);
      const nameOff = f.dv.getUint32(shoff + s.index * shentsize, f.le);
      out[strtab.offset + nameOff + to.length] = 0;
    }
    return out;
  });
}

/** Section headers, in file order (index 0 is the null section). */
export function readElfSectionHeaders(buf: Uint8Array): ElfSection[] {
  return guarded(() => open(buf).sections);
}

/** Section name → contents (views into `buf`; NOBITS sections read as zeros). First of duplicate names wins. */
export function readElfSections(buf: Uint8Array): Map<string, Uint8Array> {
  return guarded(() => sectionsOf(buf));
}

function sectionsOf(buf: Uint8Array): Map<string, Uint8Array> {
  const f = open(buf);
  const out = new Map<string, Uint8Array>();
  for (const s of f.sections) {
    if (s.index === 0 || out.has(s.name)) continue;
    out.set(s.name, sectionBytes(f, s));
  }
  return out;
}

/** Entries of `.symtab`, or of `.dynsym` (a shared library's exports), without the null symbol 0. */
export function readElfSymbols(buf: Uint8Array, table: 'symtab' | 'dynsym' = 'symtab'): ElfSymbol[] {
  return guarded(() => symbolsOf(open(buf), table === 'symtab' ? SHT_SYMTAB : SHT_DYNSYM));
}

function symbolsOf(f: ElfFile, type = SHT_SYMTAB): ElfSymbol[] {
  const symtab = f.sections.find((s) => s.type === type);
  if (!symtab) return [];
  const strtab = f.sections[symtab.link];
  if (!strtab) throw new ElfError(`ELF: ${symtab.name} has no string table`);
  if (symtab.offset + symtab.size > f.buf.byteLength) throw new ElfError('ELF: .symtab past end of file');
  if (strtab.offset + strtab.size > f.buf.byteLength) throw new ElfError('ELF: .strtab past end of file');
  const entsize = symtab.entsize || 24;
  if (entsize < 24) throw new ElfError(`ELF: symbol entry size ${entsize} is smaller than 24`);
  const out: ElfSymbol[] = [];
  for (let at = symtab.offset + entsize; at + 24 <= symtab.offset + symtab.size; at += entsize) {
    out.push(readSymbol(f, at, strtab));
  }
  return out;
}

function readSymbol(f: ElfFile, at: number, strtab: ElfSection): ElfSymbol {
  const { dv, le } = f;
  const info = f.buf[at + 4];
  const shndx = dv.getUint16(at + 6, le);
  const special =
    shndx === SHN_UNDEF ||
    (shndx >= SHN_LORESERVE && (shndx === SHN_ABS || shndx === SHN_COMMON || shndx === SHN_XINDEX));
  return {
    name: cString(f.buf, strtab.offset + dv.getUint32(at, le), strtab.offset + strtab.size),
    section: special ? '' : (f.sections[shndx]?.name ?? ''),
    sectionIndex: shndx,
    value: u64(dv, at + 8, le),
    size: u64(dv, at + 16, le),
    type: SYM_TYPES[info & 0xf] ?? `OTHER(${info & 0xf})`,
    bind: SYM_BINDS[info >> 4] ?? `OTHER(${info >> 4})`,
  };
}

/**
 * The `.BTF` of a BPF object file, with DATASEC sizes and variable offsets filled in from the
 * ELF section sizes and symbols (compilers leave them 0; libbpf fixes them up the same way).
 * Returns undefined when the object has no `.BTF`.
 */
export function readObjectBtf(buf: Uint8Array, base?: Btf): Btf | undefined {
  return guarded(() => objectBtf(buf, base));
}

function objectBtf(buf: Uint8Array, base?: Btf): Btf | undefined {
  const f = open(buf);
  const btfSection = f.sections.find((s) => s.name === '.BTF');
  if (!btfSection) return undefined;
  const btf = Btf.parse(sectionBytes(f, btfSection), base);
  const symbols = symbolsOf(f);
  for (let id = btf.startId; id < btf.typeCount; id++) {
    const t = btf.type(id);
    if (t.kind !== 'DATASEC') continue;
    const sec = f.sections.find((s) => s.name === t.name);
    if (!sec) continue; // e.g. extern `.kconfig` / `.ksyms`: no ELF section, libbpf lays them out itself
    const offsets = new Map<string, number>();
    for (const sym of symbols)
      if (sym.sectionIndex === sec.index && sym.type === 'OBJECT') offsets.set(sym.name, sym.value);
    btf.fixDatasec(t.name, sec.size, offsets);
  }
  return btf;
}
