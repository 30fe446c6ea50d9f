// Runs programs compiled to WebAssembly: compiles each PreparedProgram once, instantiates it on
// the VM's memory with the VM's helpers (the same host functions the interpreter calls), and
// calls its `run` export. Faults raised in Wasm come back through `env.fault` / `env.stop` with
// the instruction index and are the same VmFaults the interpreter throws.
import { type Engine, MAX_FRAMES, type RunContext, STACK_FRAME } from '../engine.js';
import { VmFault } from '../errors.js';
import { type Callback, HELPERS, type HelperEnv, lookupI32 } from '../helpers.js';
import { callbackOf, type PreparedProgram } from '../program.js';
import {
  cacheSlots,
  callbackExportName,
  compileToWasm,
  helperImportName,
  STOP_BUDGET,
  STOP_DEPTH,
} from './compiler.js';

interface Compiled {
  run: (...args: bigint[]) => bigint;
  repeat: (n: number, budget: bigint, ...args: bigint[]) => bigint;
  budget: WebAssembly.Global;
  depth: WebAssembly.Global;
  pc: WebAssembly.Global;
  /** r10 at the helper call in progress (programs with callbacks) */
  fp?: WebAssembly.Global;
  /** the callbacks' exports, by first instruction */
  callbacks: Map<number, (...args: bigint[]) => bigint>;
}

const u64 = (v: bigint) => BigInt.asUintN(64, v);

/** The imports of a compiled module for a VM: its memory, fault handlers and helpers. */
export function wasmImports(ctx: RunContext, prog: PreparedProgram, pcOf: () => number): WebAssembly.Imports {
  const env: Record<string, WebAssembly.ImportValue> = {
    memory: ctx.mem.memory,
    fault: (pc: number, addr: bigint, size: number, write: number) => {
      try {
        ctx.mem.check(u64(addr), size, write !== 0);
      } catch (e) {
        throw e instanceof VmFault ? e.at(pc) : e;
      }
      throw new VmFault(`bad access at 0x${u64(addr).toString(16)}`, pc);
    },
    stop: (pc: number, why: number) => {
      if (why === STOP_BUDGET) throw new VmFault('budget of backward jumps exhausted (runaway loop?)', pc);
      if (why === STOP_DEPTH) throw new VmFault(`call depth over ${MAX_FRAMES} frames`, pc);
      throw new VmFault('ran past the last instruction', pc);
    },
  };
  const call = (id: number, a: bigint, b: bigint, c: bigint, d: bigint, e: bigint): bigint => {
    const h = ctx.helper(id);
    if (!h) throw new VmFault(`call of unknown helper ${id}`, pcOf());
    try {
      return h(ctx.env, u64(a), u64(b), u64(c), u64(d), u64(e));
    } catch (err) {
      if (err instanceof VmFault) throw err.at(pcOf());
      throw err;
    }
  };
  for (const id of prog.helpers)
    env[helperImportName(id)] = (a: bigint, b: bigint, c: bigint, d: bigint, e: bigint) => call(id, a, b, c, d, e);
  if (prog.helpers.includes(1))
    env.map_lookup_elem_i32 = (map: number, key: number) => {
      try {
        return lookupI32(ctx.env, map >>> 0, key >>> 0);
      } catch (err) {
        if (err instanceof VmFault) throw err.at(pcOf());
        throw err;
      }
    };
  if (prog.callx)
    env.callx = (id: bigint, a: bigint, b: bigint, c: bigint, d: bigint, e: bigint) =>
      call(Number(BigInt.asUintN(32, id)), a, b, c, d, e);
  return { env };
}

export class WasmEngine implements Engine {
  readonly name = 'wasm' as const;
  readonly #compiled = new WeakMap<PreparedProgram, Compiled>();
  /** Microseconds spent compiling (module bytes + WebAssembly.Module), for the benchmark. */
  compileMicros = 0;

  compile(ctx: RunContext, prog: PreparedProgram): Compiled {
    let c = this.#compiled.get(prog);
    if (c) return c;
    const t0 = process.hrtime.bigint();
    const slots = 16 * cacheSlots(prog);
    const cacheAt = ctx.mem.allocCache(slots);
    const module = new WebAssembly.Module(
      compileToWasm(prog, {
        cacheAt,
        cacheEnd: cacheAt + slots,
        inlineLookup: ctx.helper(1) === HELPERS.get(1),
      }) as Uint8Array<ArrayBuffer>,
    );
    this.compileMicros += Number(process.hrtime.bigint() - t0) / 1000;
    let pcGlobal: WebAssembly.Global | undefined;
    const instance = new WebAssembly.Instance(
      module,
      wasmImports(ctx, prog, () => Number(pcGlobal?.value ?? 0)),
    );
    const ex = instance.exports as Record<string, unknown>;
    pcGlobal = ex.pc as WebAssembly.Global;
    c = {
      run: ex.run as Compiled['run'],
      repeat: ex.repeat as Compiled['repeat'],
      budget: ex.budget as WebAssembly.Global,
      depth: ex.depth as WebAssembly.Global,
      pc: pcGlobal,
      callbacks: new Map(prog.callbacks.map((f) => [f, ex[callbackExportName(f)] as (...args: bigint[]) => bigint])),
    };
    if (ex.fp) c.fp = ex.fp as WebAssembly.Global;
    this.#compiled.set(prog, c);
    return c;
  }

  run(ctx: RunContext, prog: PreparedProgram, args: readonly bigint[], fp: bigint, repeat = 1): bigint {
    const c = this.compile(ctx, prog);
    c.budget.value = BigInt(ctx.budget);
    c.depth.value = 0;
    const [a = 0n, b = 0n, d = 0n, e = 0n, f = 0n] = args;
    const env = ctx.env;
    const outerCallback = env.callback;
    if (prog.callbacks.length) env.callback = (handle) => this.#callback(c, prog, handle, outerCallback);
    try {
      if (repeat > 1) return u64(c.repeat(repeat, BigInt(ctx.budget), a, b, d, e, f, fp));
      return u64(c.run(a, b, d, e, f, fp));
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) throw new VmFault(`wasm trap: ${e.message}`, undefined, { cause: e });
      throw e;
    } finally {
      ctx.budget = Number(c.budget.value);
      env.callback = outerCallback;
    }
  }

  /** A callback of the compiled program, called in the frame below the helper call in progress. */
  #callback(c: Compiled, prog: PreparedProgram, handle: bigint, outer: HelperEnv['callback']): Callback {
    const target = callbackOf(prog, handle);
    const fn = target === undefined ? undefined : c.callbacks.get(target);
    if (!fn) return outer(handle);
    const depth = (c.depth.value as number) + 1;
    if (depth >= MAX_FRAMES) throw new VmFault(`call depth over ${MAX_FRAMES} frames`);
    const fp = (c.fp!.value as bigint) - BigInt(STACK_FRAME);
    return (r1, r2) => {
      const budget = (c.budget.value as bigint) - 1n;
      c.budget.value = budget;
      if (budget < 0n) throw new VmFault('budget of backward jumps exhausted (runaway loop?)');
      c.depth.value = depth;
      try {
        return u64(fn(r1, r2, 0n, 0n, 0n, fp));
      } finally {
        c.depth.value = depth - 1;
      }
    };
  }
}
