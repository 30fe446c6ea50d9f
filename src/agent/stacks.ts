// Stacks as symbols, for what the agent answers: the stacks of a stack trace map's dump, stack
// ids in the keys and values of other maps' dumps (bcc profile's and offcputime's counts), and
// the stacks of events the CLI asks about (POST /v1/instances/{name}/stacks). The symbols
// themselves come from src/symbols (kallsyms, the process's mappings and its files' ELF symbols).
import { BpfMap } from 'kbpf/bpf';
import { InvalidError } from '../errors.js';
import { PID_FIELDS, STACK_ID, stackSpace } from '../symbols/fields.js';
import { symbols } from '../symbols/index.js';
import type { InstanceView } from './instance-view.js';

/** Stacks one request may ask about. */
export const MAX_STACK_REQUESTS = 4096;

/** One stack to symbolize: addresses, or the id of a stack in one of the instance's stack trace maps. */
export interface StackRequest {
  /** the process user addresses are in */
  pid?: number;
  addresses?: unknown[];
  map?: string;
  id?: number;
}

interface Dump {
  name: string;
  type: string;
  entries: [unknown, unknown][];
}

/** u64s of a stack trace map's value, as the dump has it: hex of its bytes, or a list of numbers. */
function stackAddresses(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (typeof v !== 'string' || !/^([0-9a-f]{16})+$/.test(v)) return undefined;
  const b = Buffer.from(v, 'hex');
  return Array.from({ length: b.length / 8 }, (_, i) => b.readBigUInt64LE(8 * i));
}

/** A 4-byte key as the dump has it (hex of its bytes without BTF) as its number. */
function stackKey(k: unknown): unknown {
  return typeof k === 'string' && /^[0-9a-f]{8}$/.test(k) ? Buffer.from(k, 'hex').readUInt32LE(0) : k;
}

/** Reads stacks by id from an instance's pinned stack trace maps, each map opened once. */
class StackMaps {
  private readonly open = new Map<string, BpfMap | undefined>();

  constructor(
    private readonly names: readonly string[],
    private readonly pinOf: (map: string) => string | undefined,
  ) {}

  get any(): string | undefined {
    return this.names.length === 1 ? this.names[0] : undefined;
  }

  addresses(map: string, id: number): unknown[] | undefined {
    if (!this.open.has(map)) {
      const pin = this.names.includes(map) ? this.pinOf(map) : undefined;
      let m: BpfMap | undefined;
      try {
        m = pin ? BpfMap.fromPin(pin) : undefined;
      } catch {
        m = undefined;
      }
      this.open.set(map, m);
    }
    const m = this.open.get(map);
    if (!m || !Number.isInteger(id) || id < 0 || id > 0xffffffff) return undefined;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(id);
    const raw = m.lookupRaw(key);
    return raw ? stackAddresses(raw.toString('hex')) : undefined;
  }

  close(): void {
    for (const m of this.open.values()) m?.close();
    this.open.clear();
  }
}

function stackMapNames(view: InstanceView): string[] {
  return (view.spec?.maps ?? []).filter((m) => m.type === 'stack_trace').map((m) => m.name);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

const isKernelStack = (field: string): boolean => stackSpace(field) === 'kernel';

/**
 * A key or value object with its stack id fields, its nested structs' too (offcputime's value
 * holds its key), as the frames of their stacks; ids < 0 (bpf_get_stackid's errors) stay.
 */
function withStacks(v: unknown, maps: StackMaps, pid: number | undefined, depth = 0): unknown {
  if (!isObject(v) || depth > 4) return v;
  let out: Record<string, unknown> | undefined;
  for (const [k, x] of Object.entries(v)) {
    let to: unknown = x;
    if (isObject(x)) to = withStacks(x, maps, pidOf(x) ?? pid, depth + 1);
    else if (STACK_ID.test(k.toLowerCase()) && typeof x === 'number' && x >= 0 && maps.any) {
      const addrs = maps.addresses(maps.any, x);
      if (addrs) to = symbols.frames(addrs, isKernelStack(k) ? undefined : pid);
    }
    if (to === x) continue;
    out ??= { ...v };
    out[k] = to;
  }
  return out ?? v;
}

/** The process a key or value names: its tgid, pid, tid or pid_tgid field, or a nested struct's. */
function pidOf(...objs: unknown[]): number | undefined {
  for (const name of PID_FIELDS)
    for (const o of objs) {
      const p = isObject(o) ? o[name] : undefined;
      if (typeof p === 'number' && p > 0) return p;
    }
  // bpf_get_current_pid_tgid() as it is (futexctn's key): the process in its upper half
  for (const o of objs) {
    const p = isObject(o) ? o.pid_tgid : undefined;
    if (typeof p === 'number' && p >= 2 ** 32) return Math.floor(p / 2 ** 32);
  }
  const nested = objs.flatMap((o) => (isObject(o) ? Object.values(o).filter(isObject) : []));
  return nested.length ? pidOf(...nested) : undefined;
}

/** The user stack ids an object (and its nested structs) holds. */
function userStackIds(o: unknown, out: number[] = [], depth = 0): number[] {
  if (!isObject(o) || depth > 4) return out;
  for (const [k, x] of Object.entries(o)) {
    if (isObject(x)) userStackIds(x, out, depth + 1);
    else if (STACK_ID.test(k.toLowerCase()) && !isKernelStack(k) && typeof x === 'number' && x >= 0) out.push(x);
  }
  return out;
}

/**
 * Map dumps with stacks as symbols: a stack trace map's values as their frames (user addresses
 * in the process that another dumped map's key names with the stack's id, else in hex: the map
 * does not say whose they are), stack ids in other maps' keys and values as the frames of their
 * stacks, user ones in the key's process.
 */
export function symbolizeDumps<D extends Dump>(
  view: InstanceView,
  pinOf: (map: string) => string | undefined,
  dumps: D[],
): D[] {
  const names = stackMapNames(view);
  if (names.length === 0) return dumps;
  const maps = new StackMaps(names, pinOf);
  // the process of each user stack id other maps' keys and values name (bcc profile's counts)
  const owners = new Map<number, number>();
  for (const d of dumps)
    for (const kv of d.entries) {
      const pid = pidOf(...kv);
      if (pid) for (const id of [...userStackIds(kv[0]), ...userStackIds(kv[1])]) owners.set(id, pid);
    }
  try {
    return dumps.map((d) => {
      if (d.type === 'stack_trace')
        return {
          ...d,
          entries: d.entries.map(([k, v]): [unknown, unknown] => {
            const addrs = stackAddresses(v);
            const id = stackKey(k);
            return [id, addrs ? symbols.frames(addrs, typeof id === 'number' ? owners.get(id) : undefined) : v];
          }),
        };
      if (!maps.any) return d;
      return {
        ...d,
        entries: d.entries.map(([k, v]): [unknown, unknown] => {
          const pid = pidOf(k, v);
          return [withStacks(k, maps, pid), withStacks(v, maps, pid)];
        }),
      };
    });
  } finally {
    maps.close();
  }
}

/** The frames of each stack asked about (empty for an id the map does not hold). */
export function symbolizeStacks(
  view: InstanceView,
  pinOf: (map: string) => string | undefined,
  requests: readonly StackRequest[],
): string[][] {
  if (requests.length > MAX_STACK_REQUESTS)
    throw new InvalidError(`at most ${MAX_STACK_REQUESTS} stacks at once, not ${requests.length}`);
  const maps = new StackMaps(stackMapNames(view), pinOf);
  try {
    return requests.map((r) => {
      const addrs = r.map !== undefined && r.id !== undefined ? maps.addresses(r.map, r.id) : r.addresses;
      return addrs ? symbols.frames(addrs, r.pid) : [];
    });
  } finally {
    maps.close();
  }
}
