// The one memory of a VM: a WebAssembly.Memory shared by both engines, the regions a program may
// touch (stack, ctx, packet, map values, ringbuf reservations, given memory) and the region
// table both engines check every access against. Pointers are addresses in this memory.
import { VmFault } from './errors.js';

const PAGE = 65536;
/** The first page is never a region: NULL and small offsets fault. */
export const GUARD_END = PAGE;
/** Region table in the guard page: u32 count at TABLE, entries (start, end, flags) from TABLE + 8. */
export const REGION_TABLE = 0x100;
export const REGION_ENTRY = 12;
export const MAX_REGIONS = 256;
/** Map handles (what `lddw rX, map` gives) are addresses in the guard page: never dereferenceable. */
export const MAP_HANDLE_BASE = 0x8000;
export const MAP_HANDLE_STRIDE = 16;
export const MAX_MAPS = (GUARD_END - MAP_HANDLE_BASE) / MAP_HANDLE_STRIDE;
/**
 * Subprogram handles (what `lddw rX, callback` gives, for bpf_loop) are this plus the function's
 * first instruction: above the 32-bit memory, never dereferenceable and never a map.
 */
export const FUNC_HANDLE_BASE = 0x1_0000_0000n;

export type RegionKind = 'stack' | 'ctx' | 'packet' | 'map' | 'ringbuf' | 'given';

export interface Region {
  start: number;
  end: number;
  writable: boolean;
  kind: RegionKind;
  name: string;
}

export class VmMemory {
  readonly memory: WebAssembly.Memory;
  readonly #regions: Region[] = [];
  #top = GUARD_END;
  /** the access caches of compiled programs: [start, end) areas zeroed when a region goes */
  readonly #caches: [number, number][] = [];
  #dv: DataView;
  #u8: Uint8Array;

  constructor(initialBytes = 1 << 20) {
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((GUARD_END + initialBytes) / PAGE), maximum: 65536 });
    this.#dv = new DataView(this.memory.buffer);
    this.#u8 = new Uint8Array(this.memory.buffer);
    this.#writeTable();
  }

  /** A DataView of the whole memory (renewed after the memory grows). */
  get dv(): DataView {
    if (this.#dv.buffer !== this.memory.buffer) this.#refresh();
    return this.#dv;
  }

  get u8(): Uint8Array {
    if (this.#u8.buffer !== this.memory.buffer) this.#refresh();
    return this.#u8;
  }

  #refresh(): void {
    this.#dv = new DataView(this.memory.buffer);
    this.#u8 = new Uint8Array(this.memory.buffer);
  }

  /** Reserves `size` bytes (zeroed, 8-byte aligned) for the life of the VM; not yet a region. */
  alloc(size: number): number {
    const at = this.#top;
    const end = at + Math.max(8, (size + 7) & ~7);
    if (end > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((end - this.memory.buffer.byteLength) / PAGE));
      this.#refresh();
    }
    this.#top = end;
    return at;
  }

  /**
   * Reserves the access cache slots of a compiled program (not a region: programs cannot touch
   * them); they are zeroed whenever a region is removed or moved, so no cache outlives its region.
   */
  allocCache(size: number): number {
    const at = this.alloc(size);
    this.#caches.push([at, at + size]);
    return at;
  }

  #dropCaches(): void {
    const u8 = this.u8;
    for (const [s, e] of this.#caches) u8.fill(0, s, e);
  }

  get regions(): readonly Region[] {
    return this.#regions;
  }

  addRegion(start: number, size: number, kind: RegionKind, name: string, writable = true): Region {
    if (this.#regions.length >= MAX_REGIONS) throw new VmFault(`too many memory regions (${MAX_REGIONS})`);
    const r: Region = { start, end: start + size, writable, kind, name };
    this.#regions.push(r);
    this.#writeTable(this.#regions.length - 1);
    return r;
  }

  removeRegion(r: Region): void {
    const i = this.#regions.indexOf(r);
    if (i >= 0) {
      this.#regions.splice(i, 1);
      this.#writeTable(i);
      this.#dropCaches();
    }
  }

  /** Changes a region's bounds (e.g. the packet after xdp_adjust_head). */
  resizeRegion(r: Region, start: number, end: number): void {
    if (r.start === start && r.end === end) return;
    r.start = start;
    r.end = end;
    this.#writeTable(Math.max(0, this.#regions.indexOf(r)));
    this.#dropCaches();
  }

  /** Writes the count and the entries from `from` on (the ones before it are unchanged). */
  #writeTable(from = 0): void {
    const dv = this.dv;
    const regions = this.#regions;
    dv.setUint32(REGION_TABLE, regions.length, true);
    for (let i = from; i < regions.length; i++) {
      const r = regions[i]!;
      const at = REGION_TABLE + 8 + i * REGION_ENTRY;
      dv.setUint32(at, r.start, true);
      dv.setUint32(at + 4, r.end, true);
      dv.setUint32(at + 8, r.writable ? 1 : 0, true);
    }
  }

  /** The region holding [addr, addr+size), or undefined. */
  find(addr: number, size: number): Region | undefined {
    const regions = this.#regions;
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i]!;
      if (addr >= r.start && addr + size <= r.end) return r;
    }
    return undefined;
  }

  /**
   * Checks an access of `size` bytes at `addr` (a 64-bit register value); returns the address as
   * a number. Throws a VmFault (without instruction index; the engine adds it).
   */
  check(addr: bigint, size: number, write: boolean): number {
    if (addr >= 0x1_0000_0000n) throw fault(addr, size, write, 'outside memory');
    const a = Number(addr);
    const r = this.find(a, size);
    if (!r) throw fault(addr, size, write, 'outside every region');
    if (write && !r.writable) throw fault(addr, size, write, `region ${r.name} is read-only`);
    return a;
  }

  /** `check` for an address already known to be below 2^32 (same faults). */
  checkN(a: number, size: number, write: boolean): number {
    const r = this.find(a, size);
    if (!r) throw fault(BigInt(a), size, write, 'outside every region');
    if (write && !r.writable) throw fault(BigInt(a), size, write, `region ${r.name} is read-only`);
    return a;
  }

  /** A checked copy of bytes (for helpers reading program memory). */
  read(addr: bigint, size: number): Uint8Array {
    if (size === 0) return new Uint8Array(0);
    const a = this.check(addr, size, false);
    return this.u8.slice(a, a + size);
  }

  /** A checked view of bytes the program may write (for helpers writing program memory). */
  writable(addr: bigint, size: number): Uint8Array {
    if (size === 0) return new Uint8Array(0);
    const a = this.check(addr, size, true);
    return this.u8.subarray(a, a + size);
  }
}

export function fault(addr: bigint, size: number, write: boolean, why: string): VmFault {
  return new VmFault(`${write ? 'write' : 'read'} of ${size} byte(s) at 0x${addr.toString(16)}: ${why}`);
}
