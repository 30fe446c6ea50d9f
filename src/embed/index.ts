// eBPF programs as sandboxed plugins of a Node application (docs/embedding.md): a package's
// program (or an object file's) loaded into the user-space engine and called on the
// application's own data, with its maps readable and writable from the host. Nothing touches
// the kernel; every access the program makes is checked against its own memory.
//
//   const f = await loadUserspaceProgram('packetfilter:1.0.0', 'xdp_filter');
//   f.run(bytes).r0;                 // the verdict
//   f.map('blocked_src').set('10.0.0.9', 0);
//   f.events('events');              // decoded records
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Codec, codecFor } from 'kbpf/bpf';
import { DEFAULT_STATE_DIR } from '../agent/paths.js';
import { InvalidError, NotFoundError } from '../errors.js';
import { LayoutStore } from '../package/layout-store.js';
import { readPackageObjects } from '../package/package-objects.js';
import { globalVariable, mapCodecs, structCodec } from '../vm/codecs.js';
import { PACKET_HELPERS, PACKET_PROGRAM_TYPES, runContext, runPacket } from '../vm/ctx.js';
import { loadVmObject, type ObjectProgram, readVmObject } from '../vm/elf.js';
import type { EngineName } from '../vm/engine.js';
import { VmPerfEventArray, VmRingbuf, VmValueMap } from '../vm/maps.js';
import { taskHelpers, type VmTask } from '../vm/task-helpers.js';
import { Vm } from '../vm/vm.js';

export type { VmTask } from '../vm/task-helpers.js';

export interface UserspaceOptions {
  /** 'wasm' (default: compiled, fast) or 'interpreter' */
  engine?: EngineName;
  /** config variables (`const volatile` globals) by name, set before the first run */
  config?: Record<string, unknown>;
  /** what the bpf_get_current_* / socket cookie helpers answer */
  task?: VmTask;
  /** the local store to find a package reference in (default $KBPF_STATE_DIR/store or /var/lib/kbpf/store) */
  store?: string;
  /** backward jumps allowed per run (default 100 million) */
  budget?: number;
}

export interface RunResult {
  /** r0: the verdict or return value */
  r0: number;
  /** the packet after the run (packet programs) */
  data?: Uint8Array;
  /** the ctx after the run */
  ctx: Uint8Array;
}

/** A map of the program's object, BTF-typed: keys and values as the object's types decode them. */
export class UserspaceMap {
  readonly #m: VmValueMap;
  readonly #key: Codec;
  readonly #value: Codec;
  constructor(m: VmValueMap, codecs: { key: Codec; value: Codec }) {
    this.#m = m;
    this.#key = codecs.key;
    this.#value = codecs.value;
  }
  get name(): string {
    return this.#m.name;
  }
  get(key: unknown): unknown {
    const v = this.#m.get(this.#key.encode(key));
    return v && this.#value.decode(v, 0);
  }
  set(key: unknown, value: unknown): void {
    this.#m.set(this.#key.encode(key), this.#value.encode(value));
  }
  delete(key: unknown): boolean {
    return this.#m.delete(this.#key.encode(key));
  }
  /** [key, value] of every entry present (array maps: every index). */
  entries(): [unknown, unknown][] {
    return this.#m.keys().map((k) => [this.#key.decode(k, 0), this.#value.decode(this.#m.get(k)!, 0)]);
  }
}

export class UserspaceProgram {
  readonly #vm: Vm;
  readonly #btf;
  readonly #spec;
  readonly #eventTypes: ReadonlyMap<string, string>;
  constructor(
    vm: Vm,
    readonly program: ObjectProgram,
    spec: ReturnType<typeof readVmObject>,
    eventTypes: ReadonlyMap<string, string>,
  ) {
    this.#vm = vm;
    this.#spec = spec;
    this.#btf = spec.btf;
    this.#eventTypes = eventTypes;
  }

  get name(): string {
    return this.program.name;
  }
  /** program type: xdp, sched_cls, socket_filter, cgroup, … */
  get type(): string {
    return this.program.type;
  }

  /**
   * Runs the program once. Packet programs (xdp, tc, socket filter) take the packet; other
   * types take their ctx struct, as bytes or as fields by name (encoded with the object's BTF).
   */
  run(input: Uint8Array | Record<string, unknown>, opts: { repeat?: number } = {}): RunResult {
    if (PACKET_PROGRAM_TYPES.includes(this.type)) {
      if (!(input instanceof Uint8Array)) throw new InvalidError(`${this.name} (${this.type}) takes a packet`);
      const r = runPacket(this.#vm, this.name, this.type, {
        data: input,
        ...(opts.repeat ? { repeat: opts.repeat } : {}),
      });
      return { r0: r.retval, data: r.data, ctx: r.ctx };
    }
    let bytes: Uint8Array;
    if (input instanceof Uint8Array) bytes = input;
    else {
      const codec = this.program.ctxType ? structCodec(this.#btf, this.program.ctxType) : undefined;
      if (!codec)
        throw new InvalidError(`${this.name}: the object has no BTF of its ctx struct: give the ctx as bytes`);
      bytes = codec.encode(input);
    }
    const r = runContext(this.#vm, this.name, bytes, opts.repeat);
    return { r0: Number(BigInt.asUintN(32, r.r0)), ctx: r.ctx };
  }

  /** The ctx after a run, decoded with the object's BTF. */
  decodeCtx(ctx: Uint8Array): unknown {
    const codec = this.program.ctxType ? structCodec(this.#btf, this.program.ctxType) : undefined;
    return codec ? codec.decode(ctx, 0) : ctx;
  }

  map(name: string): UserspaceMap {
    const m = this.#vm.map(name);
    if (!(m instanceof VmValueMap))
      throw new InvalidError(`map ${name} (${m.spec.type}) holds no values: read it with events()`);
    return new UserspaceMap(m, mapCodecs(m.spec, this.#btf));
  }

  /** The records a ring buffer or perf event array received since the last call, decoded. */
  events(name: string): unknown[] {
    const m = this.#vm.map(name);
    if (!(m instanceof VmRingbuf || m instanceof VmPerfEventArray))
      throw new InvalidError(`map ${name} (${m.spec.type}) is not a ring buffer or perf event array`);
    const type = this.#eventTypes.get(name);
    const codec = type ? structCodec(this.#btf, type) : undefined;
    return m.drain().map((r) => (codec ? codec.decode(r.data, 0) : r.data));
  }

  /** bpf_trace_printk lines since the last call. */
  trace(): string[] {
    return this.#vm.traceLines.splice(0);
  }

  /** The object's maps, by name and type. */
  get maps(): { name: string; type: string }[] {
    return this.#spec.maps.map((m) => ({ name: m.name, type: m.type }));
  }
}

interface Source {
  objects: { file: string; bytes: Uint8Array }[];
  eventTypes: Map<string, string>;
  defaults: Record<string, unknown>;
}

async function sourceOf(image: string | Uint8Array, opts: UserspaceOptions): Promise<Source> {
  const none = { eventTypes: new Map<string, string>(), defaults: {} };
  if (image instanceof Uint8Array) return { objects: [{ file: 'object', bytes: image }], ...none };
  if (image.endsWith('.o') && existsSync(image))
    return { objects: [{ file: image, bytes: readFileSync(image) }], ...none };
  const store = new LayoutStore(opts.store ?? join(process.env.KBPF_STATE_DIR ?? DEFAULT_STATE_DIR, 'store'));
  return readPackageObjects(store, image);
}

/**
 * Loads `program` of a package (a reference in the local store), an object file (a path ending
 * in .o) or object bytes into the user-space engine.
 */
export async function loadUserspaceProgram(
  image: string | Uint8Array,
  program: string,
  opts: UserspaceOptions = {},
): Promise<UserspaceProgram> {
  const [p] = await loadUserspacePrograms(image, [program], opts);
  return p!;
}

/**
 * Loads programs of one object of a package (default: every program of the first object) into
 * one VM: they share the object's maps, as they would in the kernel.
 */
export async function loadUserspacePrograms(
  image: string | Uint8Array,
  programs: readonly string[] | ((p: ObjectProgram) => boolean),
  opts: UserspaceOptions = {},
): Promise<UserspaceProgram[]> {
  const src = await sourceOf(image, opts);
  const wanted = (p: ObjectProgram) => (typeof programs === 'function' ? programs(p) : programs.includes(p.name));
  for (const o of src.objects) {
    const spec = readVmObject(o.bytes);
    const chosen = spec.programs.filter(wanted);
    if (!chosen.length) continue;
    const vm = new Vm({
      engine: opts.engine ?? 'wasm',
      helpers: new Map([...PACKET_HELPERS, ...taskHelpers(opts.task ?? {})]),
      ...(opts.budget ? { budget: opts.budget } : {}),
    });
    const loaded = loadVmObject(vm, o.bytes, { lenient: true });
    // a program the engine cannot load fails here, naming what it lacks
    for (const p of chosen) {
      const why = loaded.unloadable.get(p.name);
      if (why) throw why;
    }
    const config = { ...src.defaults, ...opts.config };
    for (const [name, value] of Object.entries(config)) {
      const g = globalVariable(spec.btf, name);
      if (!g || !spec.btf) {
        if (opts.config && name in opts.config) throw new NotFoundError(`config ${name}: no such global variable`);
        continue;
      }
      const m = vm.map(g.section) as VmValueMap;
      vm.mem.u8.set(codecFor(spec.btf, g.typeId).encode(value), m.base + g.offset);
    }
    return chosen.map((p) => new UserspaceProgram(vm, p, spec, src.eventTypes));
  }
  const what = typeof programs === 'function' ? 'no program of that kind' : `no program ${programs.join(', ')}`;
  throw new NotFoundError(`${what} in ${typeof image === 'string' ? image : 'the object'}`);
}
