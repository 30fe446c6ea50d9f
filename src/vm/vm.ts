// A VM: one memory, its maps and programs, and the engine that runs them. Both engines run
// the same PreparedProgram on the same memory with the same helpers; `run` handles tail calls.
import { randomInt } from 'node:crypto';
import { InvalidError, NotFoundError } from '../errors.js';
import { type Engine, type EngineName, MAX_FRAMES, type RunContext, STACK_FRAME } from './engine.js';
import { VmFault, VmLoadError } from './errors.js';
import { type Callback, HELPERS, type Helper, type HelperEnv, TailCall } from './helpers.js';
import type { Insn } from './insn.js';
import { interpreterEngine } from './interpreter.js';
import { createMap, type MapSpec, type VmMap, VmRingbuf, VmStubMap } from './maps.js';
import { MAX_MAPS, type Region, type RegionKind, VmMemory } from './memory.js';
import { type PreparedProgram, prepareProgram } from './program.js';
import { WasmEngine } from './wasm/engine.js';

export interface VmOptions {
  engine?: EngineName;
  /** CPUs of per-CPU maps (default 1) */
  cpus?: number;
  /** the CPU programs run on (bpf_get_smp_processor_id) */
  cpu?: number;
  /** backward jumps allowed per run (default 100 million) */
  budget?: number;
  now?: () => bigint;
  random?: () => number;
  trace?: (line: string) => void;
  /** accept `callx reg` (conformance suite) */
  allowCallx?: boolean;
  /** helpers of the program type, by id (they take precedence) */
  helpers?: ReadonlyMap<number, Helper>;
}

export const DEFAULT_BUDGET = 100_000_000;
const TAIL_CALL = 12;

export class Vm implements HelperEnv, RunContext {
  readonly mem: VmMemory;
  readonly maps: VmMap[] = [];
  readonly programs = new Map<string, PreparedProgram>();
  readonly stack: Region;
  readonly cpu: number;
  readonly cpus: number;
  readonly engine: Engine;
  readonly traceLines: string[] = [];
  tailCalls = 0;
  /** what bpf_set_retval set in the last run (0 when it did not) */
  retval = 0;
  /** set by the engine running a program with callbacks (bpf_loop) */
  callback: (handle: bigint) => Callback = (handle) => {
    throw new VmFault(`0x${handle.toString(16)} is not a callback of the running program`);
  };
  budget: number;
  readonly #opts: VmOptions;

  constructor(opts: VmOptions = {}) {
    this.#opts = opts;
    this.mem = new VmMemory();
    this.cpu = opts.cpu ?? 0;
    this.cpus = opts.cpus ?? 1;
    this.budget = opts.budget ?? DEFAULT_BUDGET;
    const size = STACK_FRAME * MAX_FRAMES;
    this.stack = this.mem.addRegion(this.mem.alloc(size), size, 'stack', 'stack');
    this.engine = opts.engine === 'wasm' ? new WasmEngine() : interpreterEngine;
  }

  /** The helpers' view of this VM (itself). */
  get env(): HelperEnv {
    return this;
  }

  /** The frame pointer of the first frame (r10 at entry). */
  get stackTop(): number {
    return this.stack.end;
  }

  now(): bigint {
    return this.#opts.now ? this.#opts.now() : process.hrtime.bigint();
  }
  random(): number {
    return this.#opts.random ? this.#opts.random() : randomInt(0, 2 ** 32 - 1);
  }
  trace(line: string): void {
    this.traceLines.push(line);
    this.#opts.trace?.(line);
  }

  helper(id: number): Helper | undefined {
    return this.#opts.helpers?.get(id) ?? HELPERS.get(id);
  }

  addMap(spec: MapSpec): VmMap {
    if (this.maps.some((m) => m.name === spec.name)) throw new InvalidError(`map ${spec.name} already exists`);
    const m = createMap(this.mem, spec, this.maps.length, this.cpus, this.cpu);
    this.maps.push(m);
    return m;
  }

  /** A stand-in for a map of a type the engine lacks (helpers on it fault). */
  addStubMap(spec: MapSpec): VmMap {
    if (this.maps.some((m) => m.name === spec.name)) throw new InvalidError(`map ${spec.name} already exists`);
    if (this.maps.length >= MAX_MAPS) throw new VmLoadError(`too many maps (at most ${MAX_MAPS})`);
    const m = new VmStubMap(this.mem, spec, this.maps.length);
    this.maps.push(m);
    return m;
  }

  map(name: string): VmMap {
    const m = this.maps.find((x) => x.name === name);
    if (!m)
      throw new NotFoundError(`no map ${name}`, { hint: `maps: ${this.maps.map((x) => x.name).join(', ') || 'none'}` });
    return m;
  }

  /** Checks and adds a program; lddw map pseudo loads refer to maps by their index in `maps`. */
  load(name: string, insns: readonly Insn[]): PreparedProgram {
    const p = prepareProgram(name, insns, {
      maps: this.maps,
      helper: (id) => this.helper(id),
      allowCallx: this.#opts.allowCallx,
    });
    this.programs.set(name, p);
    return p;
  }

  program(name: string): PreparedProgram {
    const p = this.programs.get(name);
    if (!p)
      throw new NotFoundError(`no program ${name}`, {
        hint: `programs: ${[...this.programs.keys()].join(', ') || 'none'}`,
      });
    return p;
  }

  /** Copies bytes into a new region of the memory (the ctx, a packet, a buffer); returns it. */
  give(bytes: Uint8Array | number, kind: RegionKind = 'given', name: string = kind, writable = true): Region {
    const size = typeof bytes === 'number' ? bytes : bytes.length;
    const at = this.mem.alloc(size);
    if (typeof bytes !== 'number') this.mem.u8.set(bytes, at);
    return this.mem.addRegion(at, size, kind, name, writable);
  }

  /**
   * Runs a program with r1…r5 = args; returns r0. Tail calls start the target with the same r1.
   * `repeat` runs it that many times on the same memory and returns the last r0, as
   * BPF_PROG_TEST_RUN's repeat does (compiled programs without tail calls loop inside Wasm).
   */
  run(name: string, args: readonly bigint[] = [], repeat = 1): bigint {
    let prog = this.program(name);
    const batch = repeat > 1 && this.engine.name === 'wasm' && !prog.helpers.includes(TAIL_CALL);
    if (repeat > 1 && !batch) {
      let r0 = 0n;
      for (let n = 0; n < repeat; n++) r0 = this.run(name, args);
      return r0;
    }
    this.tailCalls = 0;
    this.retval = 0;
    this.budget = this.#opts.budget ?? DEFAULT_BUDGET;
    try {
      for (;;) {
        try {
          return this.engine.run(this, prog, args, BigInt(this.stackTop), batch ? repeat : 1);
        } catch (e) {
          if (!(e instanceof TailCall)) throw e;
          prog = this.program(e.program);
          args = [args[0] ?? 0n];
        }
      }
    } catch (e) {
      if (e instanceof VmFault || e instanceof VmLoadError) throw e;
      throw new VmFault(`program ${prog.name} failed: ${e instanceof Error ? e.message : String(e)}`, undefined, {
        cause: e,
      });
    } finally {
      for (const m of this.maps) if (m instanceof VmRingbuf && m.outstanding) m.abandon();
    }
  }
}
