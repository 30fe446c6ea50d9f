// A program compiled to a standalone WebAssembly module for any Wasm host (docs/vm.md,
// "Exported modules"): the module the Wasm engine runs, compiled with every map lookup asked of
// the host, plus a custom section `kbpf.abi` (JSON) with the memory layout the code was compiled
// for — the stack, the access caches, each map's handle and value storage, the helpers it imports
// — so a host written from the documentation alone can lay out the memory and run it.

import { PACKET_HELPERS } from './ctx.js';
import { loadVmObject } from './elf.js';
import { VmLoadError } from './errors.js';
import { helperName } from './helpers.js';
import { VmValueMap } from './maps.js';
import { MAP_HANDLE_BASE, MAP_HANDLE_STRIDE, MAX_REGIONS, REGION_ENTRY, REGION_TABLE } from './memory.js';
import { funcHandle } from './program.js';
import { taskHelpers } from './task-helpers.js';
import { Vm } from './vm.js';
import { cacheSlots, callbackExportName, compileToWasm, helperImportName } from './wasm/compiler.js';

export const ABI_SECTION = 'kbpf.abi';
export const ABI_VERSION = 1;

export interface ExportedMap {
  name: string;
  type: string;
  /** what the program gets for the map (`lddw rX, map`) and passes to helpers: 0x8000 + 16·index */
  handle: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** value maps: the address of slot 0 of the value storage (slot i at values + i·stride) */
  values?: number;
  stride?: number;
  readOnly?: boolean;
  /** initial bytes of slot 0 (global data sections), hex */
  initial?: string;
}

export interface ExportAbi {
  version: number;
  program: string;
  /** program type (xdp, sched_cls, socket_filter, …) and the struct its ctx points to */
  type: string;
  ctxType?: string;
  /** pages (64 KiB) the imported memory needs at least */
  minPages: number;
  /** region table: u32 count at `at`, then `entrySize`-byte entries (u32 start, u32 end, u32 writable) from at + 8 */
  regionTable: { at: number; entrySize: number; max: number };
  /** the stack region: r10 at entry is `end` (8 frames of 512 bytes below it) */
  stack: { start: number; end: number };
  /** the access caches: zero at first, zeroed again whenever a region is removed or shrinks */
  cache: { at: number; size: number };
  /** the host may put the ctx, the packet and anything else from here on */
  heapBase: number;
  maps: ExportedMap[];
  /** the helpers the module imports as env.<import>(r1…r5: i64) → i64 */
  helpers: { id: number; name: string; import: string }[];
  /** env.map_lookup_elem_i32(handle: i32, key: i32) → i32 is imported too */
  lookupI32: boolean;
  /**
   * bpf_loop callbacks: `handle` is what the program passes as the callback, `export` the
   * function to call as (r1…r5: i64, r10: i64) → i64 with r10 = the global `fp` − 512 and the
   * global `depth` one more (absent when the program has none)
   */
  callbacks?: { handle: string; export: string }[];
}

function leb(n: number): number[] {
  const out: number[] = [];
  let v = n;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

function customSection(name: string, payload: Uint8Array): Uint8Array {
  const n = new TextEncoder().encode(name);
  const body = [...leb(n.length), ...n, ...payload];
  return Uint8Array.from([0, ...leb(body.length), ...body]);
}

/** The standalone module of `program` in a BPF object, with its ABI. */
export function exportWasmModule(object: Uint8Array, program: string): { module: Uint8Array; abi: ExportAbi } {
  const vm = new Vm({ engine: 'interpreter', helpers: new Map([...PACKET_HELPERS, ...taskHelpers({})]) });
  const loaded = loadVmObject(vm, object, { lenient: true });
  const why = loaded.unloadable.get(program);
  if (why) throw why;
  const spec = loaded.programs.find((p) => p.name === program);
  if (!spec)
    throw new VmLoadError(`no program ${program} (programs: ${loaded.programs.map((p) => p.name).join(', ')})`);
  const prog = vm.program(program);
  const size = 16 * cacheSlots(prog);
  const cacheAt = vm.mem.allocCache(size);
  const code = compileToWasm(prog, { cacheAt, cacheEnd: cacheAt + size, inlineLookup: false });
  const heapBase = vm.mem.alloc(8);
  const maps: ExportedMap[] = vm.maps.map((m, i) => {
    const e: ExportedMap = {
      name: m.name,
      type: m.spec.type,
      handle: MAP_HANDLE_BASE + i * MAP_HANDLE_STRIDE,
      keySize: m.spec.keySize,
      valueSize: m.spec.valueSize,
      maxEntries: m.spec.maxEntries,
    };
    if (m instanceof VmValueMap) {
      e.values = m.base;
      e.stride = m.stride;
      if (m.spec.readOnly) e.readOnly = true;
      if (m.spec.initial) e.initial = Buffer.from(m.spec.initial).toString('hex');
    }
    return e;
  });
  const abi: ExportAbi = {
    version: ABI_VERSION,
    program,
    type: spec.type,
    ...(spec.ctxType ? { ctxType: spec.ctxType } : {}),
    minPages: Math.ceil(heapBase / 65536) + 16,
    regionTable: { at: REGION_TABLE, entrySize: REGION_ENTRY, max: MAX_REGIONS },
    stack: { start: vm.stack.start, end: vm.stack.end },
    cache: { at: cacheAt, size },
    heapBase,
    maps,
    helpers: prog.helpers.map((id) => ({ id, name: helperName(id), import: helperImportName(id) })),
    lookupI32: prog.helpers.includes(1),
    ...(prog.callbacks.length
      ? {
          callbacks: prog.callbacks.map((pc) => ({
            handle: `0x${funcHandle(pc).toString(16)}`,
            export: callbackExportName(pc),
          })),
        }
      : {}),
  };
  const section = customSection(ABI_SECTION, new TextEncoder().encode(JSON.stringify(abi)));
  const module = new Uint8Array(code.length + section.length);
  module.set(code);
  module.set(section, code.length);
  return { module, abi };
}
