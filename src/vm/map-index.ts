// The in-memory index of array and hash maps, so compiled code can look keys up without calling
// the host: a descriptor at the map's handle (in the guard page) and, for hash maps, an
// open-addressing probe table of slot numbers and a copy of each slot's key. The host keeps it
// in step with the map (VmValueMap); the JavaScript Map of keys stays the source of truth.
//
// At the handle h:   u32 kind (0: ask the host, 1: array, 2: hash), u32 key size, u32 ext
// At ext (32 bytes): u32 max_entries, value base, slot stride, CPU offset, table, mask, keys,
//                    key stride
// Table entries are u32 slot + 1 (0 = empty), linear probing from keyHash(key) & mask; deletion
// shifts entries back, so a probe stops at the first empty entry.
import type { VmMemory } from './memory.js';

export const INDEX_HOST = 0;
export const INDEX_ARRAY = 1;
export const INDEX_HASH = 2;
export const EXT_SIZE = 32;

/** The key hash both the host and compiled code compute (32-bit words, then the tail bytes). */
export function keyHash(u8: Uint8Array, at: number, len: number): number {
  let h = (0x9e3779b9 ^ len) | 0;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const w = u8[at + i]! | (u8[at + i + 1]! << 8) | (u8[at + i + 2]! << 16) | (u8[at + i + 3]! << 24);
    h = Math.imul(h ^ w, 0x85ebca6b);
    h ^= h >>> 15;
  }
  for (; i < len; i++) {
    h = Math.imul(h ^ u8[at + i]!, 0xc2b2ae35);
    h ^= h >>> 13;
  }
  h ^= h >>> 16;
  return h >>> 0;
}

export interface IndexLayout {
  kind: number;
  keySize: number;
  maxEntries: number;
  valueBase: number;
  stride: number;
  cpuOffset: number;
}

/** A map's descriptor and (for hash maps) its probe table and key copies in the VM memory. */
export class MapIndex {
  readonly ext: number;
  readonly table: number;
  readonly mask: number;
  readonly keys: number;
  readonly keyStride: number;

  constructor(
    readonly mem: VmMemory,
    handle: number,
    readonly layout: IndexLayout,
  ) {
    this.ext = mem.alloc(EXT_SIZE);
    const hash = layout.kind === INDEX_HASH;
    let cap = 8;
    while (hash && cap < 2 * layout.maxEntries) cap *= 2;
    this.mask = cap - 1;
    this.keyStride = (layout.keySize + 7) & ~7;
    this.table = hash ? mem.alloc(4 * cap) : 0;
    this.keys = hash ? mem.alloc(this.keyStride * layout.maxEntries) : 0;
    const dv = mem.dv;
    dv.setUint32(handle, layout.kind, true);
    dv.setUint32(handle + 4, layout.keySize, true);
    dv.setUint32(handle + 8, this.ext, true);
    const f = [
      layout.maxEntries,
      layout.valueBase,
      layout.stride,
      layout.cpuOffset,
      this.table,
      this.mask,
      this.keys,
      this.keyStride,
    ];
    for (const [i, v] of f.entries()) dv.setUint32(this.ext + 4 * i, v, true);
  }

  #home(slot: number): number {
    return keyHash(this.mem.u8, this.keys + slot * this.keyStride, this.layout.keySize) & this.mask;
  }

  /** A new key in `slot`. */
  insert(slot: number, key: Uint8Array): void {
    if (this.layout.kind !== INDEX_HASH) return;
    this.mem.u8.set(key.subarray(0, this.layout.keySize), this.keys + slot * this.keyStride);
    const dv = this.mem.dv;
    let i = this.#home(slot);
    while (dv.getUint32(this.table + 4 * i, true) !== 0) i = (i + 1) & this.mask;
    dv.setUint32(this.table + 4 * i, slot + 1, true);
  }

  /** The key in `slot` is gone. */
  remove(slot: number): void {
    if (this.layout.kind !== INDEX_HASH) return;
    const dv = this.mem.dv;
    const at = (i: number) => this.table + 4 * i;
    let i = this.#home(slot);
    for (let n = 0; dv.getUint32(at(i), true) !== slot + 1; n++) {
      if (n > this.mask) return;
      i = (i + 1) & this.mask;
    }
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const e = dv.getUint32(at(j), true);
      if (e === 0) break;
      const home = this.#home(e - 1);
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        dv.setUint32(at(i), e, true);
        i = j;
      }
    }
    dv.setUint32(at(i), 0, true);
  }
}
