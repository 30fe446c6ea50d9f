// What an engine is given to run a program: the VM's memory, its helpers and the run's budget.
// Both engines (interpreter.ts, wasm/engine.ts) implement Engine on this host interface.
import type { Helper, HelperEnv } from './helpers.js';
import type { VmMemory } from './memory.js';
import type { PreparedProgram } from './program.js';

export type EngineName = 'interpreter' | 'wasm';
export const ENGINES: readonly EngineName[] = ['interpreter', 'wasm'];

export interface RunContext {
  readonly mem: VmMemory;
  readonly env: HelperEnv;
  /** the helper for an id (resolved at load, so present for every id the program calls) */
  helper(id: number): Helper | undefined;
  /** backward jumps allowed before the run is stopped as runaway; engines count it down */
  budget: number;
}

export interface Engine {
  readonly name: EngineName;
  /**
   * Runs `prog` from its entry with r1…r5 = args and r10 = fp; returns r0. With `repeat` > 1
   * (only for programs without tail calls) it runs that many times on the same memory, each run
   * with the full budget, and returns the last r0 — as BPF_PROG_TEST_RUN's repeat does.
   */
  run(ctx: RunContext, prog: PreparedProgram, args: readonly bigint[], fp: bigint, repeat?: number): bigint;
}

export const STACK_FRAME = 512;
export const MAX_FRAMES = 8;
