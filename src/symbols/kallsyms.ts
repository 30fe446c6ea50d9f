// Kernel addresses as symbols, from /proc/kallsyms: read once, sorted, searched by binary search.
// Reading it needs root (kptr_restrict shows everyone else zeros, and then nothing resolves).
import { readFileSync } from 'node:fs';
import { floorIndex } from './search.js';

/** Addresses at or above this are the kernel's (x86-64 and arm64 with 48-bit or larger VAs). */
export const KERNEL_ADDRESS_MIN = 0xffff800000000000n;

/** Re-read after this long when an address does not resolve (a module loaded meanwhile). */
const RELOAD_MS = 60_000;

export interface KernelSymbol {
  name: string;
  /** the module's name, or '' for vmlinux */
  module: string;
  offset: bigint;
}

/** The kernel's text symbols, sorted by address. */
export class KernelSymbols {
  private addrs = new BigUint64Array(0);
  private names: string[] = [];
  private modules: string[] = [];
  private loadedAt = -Infinity;

  constructor(private readonly path = '/proc/kallsyms') {}

  /** The symbol `addr` is in, or undefined (no kallsyms, addresses hidden, or before the first). */
  lookup(addr: bigint): KernelSymbol | undefined {
    if (this.loadedAt === -Infinity) this.load();
    let found = this.find(addr);
    if (!found && Date.now() - this.loadedAt > RELOAD_MS) {
      this.load();
      found = this.find(addr);
    }
    return found;
  }

  private find(addr: bigint): KernelSymbol | undefined {
    const a = this.addrs;
    const lo = floorIndex(a, addr);
    if (lo < 0) return undefined;
    return { name: this.names[lo]!, module: this.modules[lo]!, offset: addr - a[lo]! };
  }

  private load(): void {
    this.loadedAt = Date.now();
    let text: string;
    try {
      text = readFileSync(this.path, 'latin1');
    } catch {
      return;
    }
    const rows: { addr: bigint; name: string; module: string }[] = [];
    for (const line of text.split('\n')) {
      // ADDRESS TYPE NAME [MODULE]; text symbols only (t, T, w, W)
      const sp1 = line.indexOf(' ');
      const type = line[sp1 + 1];
      if (sp1 < 0 || (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W')) continue;
      const rest = line.slice(sp1 + 3);
      const tab = rest.indexOf('\t');
      const addr = BigInt(`0x${line.slice(0, sp1)}`);
      if (addr === 0n) continue; // hidden by kptr_restrict
      rows.push({
        addr,
        name: tab < 0 ? rest : rest.slice(0, tab),
        module: tab < 0 ? '' : rest.slice(tab + 1).replace(/^\[|\]$/g, ''),
      });
    }
    rows.sort((x, y) => (x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : 0));
    this.addrs = BigUint64Array.from(rows.map((r) => r.addr));
    this.names = rows.map((r) => r.name);
    this.modules = rows.map((r) => r.module);
  }
}
