// Stack addresses as `func+0xoff`: kernel addresses from /proc/kallsyms (`[module]` for a
// module's), user addresses from the process's mappings and its files' ELF symbols
// (`(binary)`). Lazy and cached: kallsyms is read on the first kernel address, a process's
// mappings on its first address (kept, so a process that exited still shows its files), a file's
// symbols on its first address in it. What does not resolve shows in hex, with the file when known.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { KERNEL_ADDRESS_MIN, KernelSymbols } from './kallsyms.js';
import { FileSymbols, fileKey, type Mapping, parseMaps } from './process.js';

export { KERNEL_ADDRESS_MIN } from './kallsyms.js';

/** Processes whose mappings are kept, and files whose symbols are. */
const MAX_PROCESSES = 1024;
const MAX_FILES = 64;
/** A process's mappings are read again when older than this (it may have exec'd or mapped more). */
const MAPS_STALE_MS = 1000;
/** A kernel address further than this past its symbol is past the symbol's end (in no symbol). */
const MAX_KERNEL_OFFSET = 0x100000n;

function hex(a: bigint): string {
  return `0x${a.toString(16)}`;
}

/** Least recently used first: a Map re-inserted on use. */
function touch<K, V>(m: Map<K, V>, k: K, v: V, max: number): V {
  m.delete(k);
  m.set(k, v);
  if (m.size > max) m.delete(m.keys().next().value as K);
  return v;
}

/** An integer address from a decoded value: number, bigint or decimal/hex string. */
export function addressOf(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt.asUintN(64, BigInt(v));
  if (typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v)) return BigInt.asUintN(64, BigInt(v));
  return undefined;
}

export class Symbolizer {
  readonly kernel: KernelSymbols;
  private readonly processes = new Map<number, { maps: Mapping[]; at: number }>();
  private readonly files = new Map<string, FileSymbols | undefined>();
  /** a file's path → the identity it had when last read */
  private readonly lastKey = new Map<string, string>();

  constructor(private readonly proc = '/proc') {
    this.kernel = new KernelSymbols(`${proc}/kallsyms`);
  }

  /**
   * The frames of a stack: each address as `func+0xoff`, `func+0xoff [module]`,
   * `func+0xoff (binary)`, or hex. Zero entries (the unused end of a fixed-size stack) are dropped.
   * User addresses need `pid` (the process the stack was taken in).
   */
  frames(addresses: readonly unknown[], pid?: number): string[] {
    const out: string[] = [];
    for (const v of addresses) {
      const a = addressOf(v);
      if (a === undefined) {
        out.push(String(v));
        continue;
      }
      if (a === 0n) continue;
      out.push(a >= KERNEL_ADDRESS_MIN ? this.kernelFrame(a) : this.userFrame(a, pid));
    }
    return out;
  }

  kernelFrame(a: bigint): string {
    const s = this.kernel.lookup(a);
    if (!s || s.offset > MAX_KERNEL_OFFSET) return hex(a);
    return `${s.name}+0x${s.offset.toString(16)}${s.module ? ` [${s.module}]` : ''}`;
  }

  userFrame(a: bigint, pid: number | undefined): string {
    if (pid === undefined || pid <= 0 || a > BigInt(Number.MAX_SAFE_INTEGER)) return hex(a);
    const addr = Number(a);
    const m = this.mapping(pid, addr);
    if (!m?.path) return hex(a); // not mapped, or anonymous memory (a JIT's code)
    const name = m.path.startsWith('[') ? m.path : basename(m.path.replace(/ \(deleted\)$/, ''));
    const file = m.path.startsWith('/') ? this.fileSymbols(pid, m.path) : undefined;
    const elf = file?.addressOf(addr - m.start + m.offset);
    const sym = elf !== undefined ? file!.lookup(elf) : undefined;
    return `${sym ?? hex(a)} (${name})`;
  }

  private mapping(pid: number, addr: number): Mapping | undefined {
    const find = (maps: Mapping[]): Mapping | undefined => maps.find((m) => addr >= m.start && addr < m.end);
    const known = this.processes.get(pid);
    const hit = known && find(known.maps);
    if (known && Date.now() - known.at < MAPS_STALE_MS) return hit;
    let text: string;
    try {
      text = readFileSync(`${this.proc}/${pid}/maps`, 'utf8');
    } catch {
      return hit; // exited: what was known of it
    }
    const maps = touch(this.processes, pid, { maps: parseMaps(text), at: Date.now() }, MAX_PROCESSES).maps;
    return find(maps);
  }

  private fileSymbols(pid: number, path: string): FileSymbols | undefined {
    const real = `${this.proc}/${pid}/root${path.replace(/ \(deleted\)$/, '')}`;
    // a process that exited has no root to read through: the file as it was last read, if it was
    const key = fileKey(real) ?? this.lastKey.get(path);
    if (key === undefined) return undefined;
    this.lastKey.set(path, key);
    if (this.lastKey.size > MAX_FILES * 4) this.lastKey.delete(this.lastKey.keys().next().value as string);
    if (this.files.has(key)) return touch(this.files, key, this.files.get(key), MAX_FILES);
    return touch(this.files, key, FileSymbols.read(real), MAX_FILES);
  }
}

/** The one symbolizer of this process (its caches are shared by every caller). */
export const symbols = new Symbolizer();
