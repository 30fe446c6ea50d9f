// User-space eBPF: the interpreter and the eBPF→WebAssembly compiler, sharing one checked
// memory, maps and helpers (docs/vm.md).
export { assemble } from './asm.js';
export {
  type ContextResult,
  PACKET_HELPERS,
  PACKET_PROGRAM_TYPES,
  type PacketInput,
  type PacketResult,
  runContext,
  runPacket,
} from './ctx.js';
export {
  type LoadedVmObject,
  type LoadObjectOptions,
  loadVmObject,
  type ObjectProgram,
  readVmObject,
  type VmObjectSpec,
} from './elf.js';
export { ENGINES, type EngineName } from './engine.js';
export { VmFault, VmLoadError } from './errors.js';
export { decodeProgram, encodeProgram, type Insn } from './insn.js';
export { type MapSpec, VmMap, VmPerfEventArray, VmProgArray, VmRingbuf, VmValueMap } from './maps.js';
export { taskHelpers, type VmTask } from './task-helpers.js';
export { Vm, type VmOptions } from './vm.js';
export { compileToWasm } from './wasm/compiler.js';
