// The Wasm host: wasm-bpf guests (their host ABI over kbpf's runtime), each in its own process
// with its memory limit, CPU budget and capability manifest; guests as packages.
export * from './abi.js';
export { attachTargetName, CapabilityCheck, declaredCapabilities, mergeCapabilities } from './capabilities.js';
export { embeddedObjects } from './embedded.js';
export { type GuestPackage, type GuestPackageOptions, guestPackage, guestPackageName } from './guest-package.js';
export { DEFAULT_LIMITS, type GuestEnd, type GuestOptions, GuestProcess, GuestSpares } from './guest-process.js';
export type { HostEvent } from './host.js';
export { limitMemory } from './memory-limit.js';
