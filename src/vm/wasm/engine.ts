// Runs programs compiled to WebAssembly: compiles each PreparedProgram once, instantiates it on
// the VM's memory with the VM's helpers, and calls it.
import type { Engine, RunContext } from '../engine.js';
import type { PreparedProgram } from '../program.js';

export class WasmEngine implements Engine {
  readonly name = 'wasm' as const;
  run(_ctx: RunContext, _prog: PreparedProgram, _args: readonly bigint[], _fp: bigint): bigint {
    throw new Error('not yet');
  }
}
