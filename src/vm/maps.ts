// User-space maps. Values live in the VM memory (one region per map for its whole slot pool),
// so a pointer from bpf_map_lookup_elem is an ordinary checked address. The host reads and
// writes them through the same objects (get/set/delete/keys), as it would a kernel map.
import type { MapType } from 'kbpf/bpf';
import { VmLoadError } from './errors.js';
import { INDEX_ARRAY, INDEX_HASH, MapIndex } from './map-index.js';
import { MAP_HANDLE_BASE, MAP_HANDLE_STRIDE, MAX_MAPS, type Region, type VmMemory } from './memory.js';

export const ENOENT = 2;
export const E2BIG = 7;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export interface MapSpec {
  name: string;
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** `.rodata`: the program may not write it */
  readOnly?: boolean;
  /** initial contents of entry 0 (global data sections) */
  initial?: Uint8Array;
  /** BTF type ids of the key and value in the object's BTF, when it has them */
  btfKey?: number;
  btfValue?: number;
}

export interface VmRecord {
  cpu: number;
  data: Uint8Array;
}

export const MAP_TYPES_SUPPORTED: readonly MapType[] = [
  'array',
  'percpu_array',
  'hash',
  'percpu_hash',
  'lru_hash',
  'ringbuf',
  'perf_event_array',
  'prog_array',
];

const align8 = (n: number) => (n + 7) & ~7;
const keyOf = (k: Uint8Array) => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');

export abstract class VmMap {
  /** the address a program gets for the map (`lddw rX, map`); never dereferenceable */
  readonly handle: number;
  constructor(
    readonly mem: VmMemory,
    readonly spec: MapSpec,
    readonly index: number,
  ) {
    this.handle = MAP_HANDLE_BASE + index * MAP_HANDLE_STRIDE;
  }
  get name(): string {
    return this.spec.name;
  }
  /** Address of the value for `key` (for the current CPU), 0 when there is none. */
  lookupAddr(_key: Uint8Array, _cpu: number): number {
    return 0;
  }
  /** 0 or a negative errno, as the helper returns. */
  updateFrom(_key: Uint8Array, _value: Uint8Array, _flags: number, _cpu: number): number {
    return -EINVAL;
  }
  deleteKey(_key: Uint8Array): number {
    return -EINVAL;
  }
}

/** array, percpu array, hash, percpu hash and LRU hash: slots of values in the VM memory. */
export class VmValueMap extends VmMap {
  readonly stride: number;
  readonly cpus: number;
  readonly base: number;
  readonly region: Region;
  readonly #slots = new Map<string, number>();
  readonly #free: number[] = [];
  readonly isArray: boolean;
  /** what compiled code reads to look keys up itself (not for LRU maps: a lookup reorders them) */
  readonly lookupIndex?: MapIndex;

  /** `cpu`: the CPU programs of this VM run on (for the index of per-CPU maps) */
  constructor(mem: VmMemory, spec: MapSpec, index: number, cpus: number, cpu = 0) {
    super(mem, spec, index);
    this.isArray = spec.type === 'array' || spec.type === 'percpu_array';
    this.cpus = spec.type.startsWith('percpu') ? cpus : 1;
    this.stride = align8(spec.valueSize) * this.cpus;
    const size = Math.max(8, this.stride * spec.maxEntries);
    this.base = mem.alloc(size);
    this.region = mem.addRegion(this.base, size, 'map', spec.name, !spec.readOnly);
    if (this.isArray && spec.keySize !== 4) throw new VmLoadError(`map ${spec.name}: array keys are 4 bytes`);
    if (!this.isArray) for (let i = spec.maxEntries - 1; i >= 0; i--) this.#free.push(i);
    if (spec.initial) mem.u8.set(spec.initial.subarray(0, spec.valueSize), this.base);
    if (spec.type !== 'lru_hash')
      this.lookupIndex = new MapIndex(mem, this.handle, {
        kind: this.isArray ? INDEX_ARRAY : INDEX_HASH,
        keySize: spec.keySize,
        maxEntries: spec.maxEntries,
        valueBase: this.base,
        stride: this.stride,
        cpuOffset: this.cpus > 1 ? (cpu % this.cpus) * align8(spec.valueSize) : 0,
      });
  }

  #slot(key: Uint8Array, touch: boolean): number | undefined {
    if (this.isArray) {
      const i = new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true);
      return i < this.spec.maxEntries ? i : undefined;
    }
    const k = keyOf(key);
    const s = this.#slots.get(k);
    if (s !== undefined && touch && this.spec.type === 'lru_hash') {
      this.#slots.delete(k);
      this.#slots.set(k, s);
    }
    return s;
  }

  #addr(slot: number, cpu: number): number {
    return this.base + slot * this.stride + (this.cpus > 1 ? (cpu % this.cpus) * align8(this.spec.valueSize) : 0);
  }

  /** lookupAddr with the key read in place at `keyAddr` (checked by the caller). */
  lookupAt(keyAddr: number, cpu: number): number {
    if (this.isArray) {
      const i = this.mem.dv.getUint32(keyAddr, true);
      return i < this.spec.maxEntries ? this.#addr(i, cpu) : 0;
    }
    return this.lookupAddr(this.mem.u8.subarray(keyAddr, keyAddr + this.spec.keySize), cpu);
  }

  override lookupAddr(key: Uint8Array, cpu: number): number {
    const s = this.#slot(key, true);
    return s === undefined ? 0 : this.#addr(s, cpu);
  }

  override updateFrom(key: Uint8Array, value: Uint8Array, flags: number, cpu: number): number {
    if (flags > BPF_EXIST) return -EINVAL;
    let s = this.#slot(key, true);
    if (this.isArray) {
      if (s === undefined) return -E2BIG;
      if (flags === BPF_NOEXIST) return -EEXIST;
    } else if (s === undefined) {
      if (flags === BPF_EXIST) return -ENOENT;
      s = this.#free.pop();
      if (s === undefined && this.spec.type === 'lru_hash') {
        const oldest = this.#slots.keys().next();
        if (!oldest.done) {
          s = this.#slots.get(oldest.value);
          this.#slots.delete(oldest.value);
        }
      }
      if (s === undefined) return -E2BIG;
      this.#slots.set(keyOf(key), s);
      this.lookupIndex?.insert(s, key);
      this.mem.u8.fill(0, this.#addr(s, 0), this.#addr(s, 0) + this.stride);
    } else if (flags === BPF_NOEXIST) return -EEXIST;
    this.mem.u8.set(value.subarray(0, this.spec.valueSize), this.#addr(s, cpu));
    return 0;
  }

  override deleteKey(key: Uint8Array): number {
    if (this.isArray) return -EINVAL;
    const k = keyOf(key);
    const s = this.#slots.get(k);
    if (s === undefined) return -ENOENT;
    this.#slots.delete(k);
    this.lookupIndex?.remove(s);
    this.#free.push(s);
    return 0;
  }

  // Host side.

  /** The value (of CPU `cpu` for per-CPU maps), a copy; undefined when absent. */
  get(key: Uint8Array, cpu = 0): Uint8Array | undefined {
    const a = this.lookupAddr(key, cpu);
    return a ? this.mem.u8.slice(a, a + this.spec.valueSize) : undefined;
  }

  /** Every CPU's value of a per-CPU map (one element for other maps). */
  getAll(key: Uint8Array): Uint8Array[] | undefined {
    if (!this.get(key)) return undefined;
    return Array.from({ length: this.cpus }, (_, c) => this.get(key, c)!);
  }

  set(key: Uint8Array, value: Uint8Array, flags = BPF_ANY): void {
    const rc = this.updateFrom(key, value, flags, 0);
    if (rc) throw new VmLoadError(`map ${this.name}: update failed (errno ${-rc})`);
    for (let c = 1; c < this.cpus; c++) this.updateFrom(key, value, BPF_EXIST, c);
  }

  delete(key: Uint8Array): boolean {
    return this.deleteKey(key) === 0;
  }

  /** Keys present (array maps: every index). */
  keys(): Uint8Array[] {
    if (this.isArray)
      return Array.from({ length: this.spec.maxEntries }, (_, i) => {
        const k = new Uint8Array(4);
        new DataView(k.buffer).setUint32(0, i, true);
        return k;
      });
    return [...this.#slots.keys()].map((k) => new Uint8Array(Buffer.from(k, 'latin1')));
  }
}

/** ringbuf: reservations are regions of its data area; submitted records are kept for the host. */
export class VmRingbuf extends VmMap {
  readonly base: number;
  #head = 0;
  readonly #pending = new Map<number, Region>();
  readonly records: VmRecord[] = [];
  constructor(mem: VmMemory, spec: MapSpec, index: number) {
    super(mem, spec, index);
    this.base = mem.alloc(spec.maxEntries);
  }
  reserve(size: number): number {
    if (this.#pending.size === 0) this.#head = 0;
    if (size <= 0 || this.#head + size > this.spec.maxEntries) return 0;
    const at = this.base + this.#head;
    this.#head += align8(size);
    this.mem.u8.fill(0, at, at + size);
    this.#pending.set(at, this.mem.addRegion(at, size, 'ringbuf', `${this.name} reservation`));
    return at;
  }
  /** Ends a reservation: the record is kept (submit) or dropped (discard). False when `at` is none. */
  finish(at: number, keep: boolean, cpu: number): boolean {
    const r = this.#pending.get(at);
    if (!r) return false;
    this.#pending.delete(at);
    this.mem.removeRegion(r);
    if (keep) this.records.push({ cpu, data: this.mem.u8.slice(r.start, r.end) });
    return true;
  }
  output(data: Uint8Array, cpu: number): number {
    if (data.length > this.spec.maxEntries) return -E2BIG;
    this.records.push({ cpu, data: data.slice() });
    return 0;
  }
  /** Records submitted so far, removed from the map. */
  drain(): VmRecord[] {
    return this.records.splice(0);
  }
  /** Reservations neither submitted nor discarded (the verifier would have refused the program). */
  get outstanding(): number {
    return this.#pending.size;
  }
  abandon(): void {
    for (const at of [...this.#pending.keys()]) this.finish(at, false, 0);
  }
}

/** perf event array: records the program output, for the host. */
export class VmPerfEventArray extends VmMap {
  readonly records: VmRecord[] = [];
  output(data: Uint8Array, cpu: number): number {
    this.records.push({ cpu, data: data.slice() });
    return 0;
  }
  drain(): VmRecord[] {
    return this.records.splice(0);
  }
}

/** prog array: program names by index, for bpf_tail_call; filled by the host. */
export class VmProgArray extends VmMap {
  readonly slots: (string | undefined)[];
  constructor(mem: VmMemory, spec: MapSpec, index: number) {
    super(mem, spec, index);
    this.slots = new Array(spec.maxEntries).fill(undefined);
  }
  setProgram(index: number, program: string | undefined): void {
    if (index < 0 || index >= this.slots.length) throw new VmLoadError(`map ${this.name}: index ${index} out of range`);
    this.slots[index] = program;
  }
}

/** A map of a type the engine lacks, in a lenient load: it exists, and a helper on it faults. */
export class VmStubMap extends VmMap {}

export function createMap(mem: VmMemory, spec: MapSpec, index: number, cpus = 1, cpu = 0): VmMap {
  if (index >= MAX_MAPS) throw new VmLoadError(`too many maps (at most ${MAX_MAPS})`);
  switch (spec.type) {
    case 'array':
    case 'percpu_array':
    case 'hash':
    case 'percpu_hash':
    case 'lru_hash':
      return new VmValueMap(mem, spec, index, cpus, cpu);
    case 'ringbuf':
      return new VmRingbuf(mem, spec, index);
    case 'perf_event_array':
      return new VmPerfEventArray(mem, spec, index);
    case 'prog_array':
      return new VmProgArray(mem, spec, index);
    default:
      throw new VmLoadError(`map ${spec.name}: type ${spec.type} is not supported in user space`, {
        unsupported: true,
        hint: `supported: ${MAP_TYPES_SUPPORTED.join(', ')}`,
      });
  }
}
