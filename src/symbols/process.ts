// User addresses as symbols: the process's /proc/PID/maps says which file an address is in and
// at what file offset; the file's PT_LOAD segments turn that into the ELF address its .symtab
// and .dynsym symbols are at. Files are read through /proc/PID/root, so a container's binaries
// resolve too; their symbols are kept per file (device, inode and change time).
import { readFileSync, statSync } from 'node:fs';
import { type ElfSegment, readElfSegments, readElfSymbols } from 'kbpf/bpf';
import { floorIndex } from './search.js';

/** Files larger than this are not read for symbols (their addresses show with the file's name). */
const MAX_ELF_BYTES = 512 * 1024 * 1024;

export interface Mapping {
  start: number;
  end: number;
  /** file offset of `start` */
  offset: number;
  path: string;
}

/** The file-backed executable mappings of /proc/PID/maps text. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    // start-end perms offset dev inode   path
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line);
    if (!m || m[3]![2] !== 'x') continue;
    const path = m[5]!;
    out.push({
      start: Number.parseInt(m[1]!, 16),
      end: Number.parseInt(m[2]!, 16),
      offset: Number.parseInt(m[4]!, 16),
      path,
    });
  }
  return out;
}

/** A file's function symbols, sorted by ELF address. */
export class FileSymbols {
  private readonly addrs: Float64Array;
  private readonly sizes: Float64Array;
  private readonly names: string[];

  constructor(
    readonly segments: readonly ElfSegment[],
    syms: { name: string; value: number; size: number }[],
  ) {
    // at one address, a public name before its aliases (getpid before __getpid)
    syms.sort((a, b) => a.value - b.value || Number(a.name.startsWith('_')) - Number(b.name.startsWith('_')));
    this.addrs = Float64Array.from(syms.map((s) => s.value));
    this.sizes = Float64Array.from(syms.map((s) => s.size));
    this.names = syms.map((s) => s.name);
  }

  static read(path: string): FileSymbols | undefined {
    let buf: Buffer;
    try {
      if (statSync(path).size > MAX_ELF_BYTES) return undefined;
      buf = readFileSync(path);
    } catch {
      return undefined;
    }
    try {
      const { segments } = readElfSegments(buf);
      const seen = new Set<string>();
      const syms: { name: string; value: number; size: number }[] = [];
      for (const table of ['symtab', 'dynsym'] as const)
        for (const s of readElfSymbols(buf, table)) {
          if (s.type !== 'FUNC' || !s.value || !s.name) continue;
          const key = `${s.name}@${s.value}`;
          if (seen.has(key)) continue;
          seen.add(key);
          syms.push({ name: s.name, value: s.value, size: s.size });
        }
      return new FileSymbols(segments, syms);
    } catch {
      return undefined; // not an ELF file (a JIT's memory file, a deleted file's replacement)
    }
  }

  /** The ELF address of a file offset, through the executable segment that maps it. */
  addressOf(fileOffset: number): number | undefined {
    for (const s of this.segments)
      if (fileOffset >= s.offset && fileOffset < s.offset + s.memsz) return fileOffset - s.offset + s.vaddr;
    return undefined;
  }

  /** `func+0xoff` of an ELF address, or undefined outside every function. */
  lookup(addr: number): string | undefined {
    const a = this.addrs;
    const lo = floorIndex(a, addr);
    if (lo < 0) return undefined;
    // among symbols at the same address, one whose size covers addr
    let i = lo;
    while (i > 0 && a[i - 1] === a[lo]) i--;
    for (let j = i; j <= lo; j++) {
      const off = addr - a[j]!;
      if (off < this.sizes[j]! || (this.sizes[j] === 0 && off < 0x1000))
        return `${this.names[j]}+0x${off.toString(16)}`;
    }
    return undefined;
  }
}

/** The identity of a file, so a replaced binary is read again. */
export function fileKey(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}:${st.ctimeMs}`;
  } catch {
    return undefined;
  }
}
