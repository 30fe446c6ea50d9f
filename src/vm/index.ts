// User-space eBPF: the interpreter and the eBPF→WebAssembly compiler, sharing one checked
// memory, maps and helpers (docs/vm.md).
export { assemble } from './asm.js';
export { type PacketInput, type PacketResult, runPacket } from './ctx.js';
export { loadVmObject, readVmObject, type VmObjectSpec } from './elf.js';
export { ENGINES, type EngineName } from './engine.js';
export { VmFault, VmLoadError } from './errors.js';
export { decodeProgram, encodeProgram, type Insn } from './insn.js';
export { type MapSpec, VmMap, VmPerfEventArray, VmProgArray, VmRingbuf, VmValueMap } from './maps.js';
export { Vm, type VmOptions } from './vm.js';
export { compileToWasm } from './wasm/compiler.js';
