// kbpf's eBPF runtime: libbpf through koffi, typed by BTF.
export { BpfObject, type OpenOptions, type GlobalVariable } from './object.js';
export { Program } from './program.js';
export { BpfMap, numPossibleCpus, type MapSpec, type UpdateFlag } from './map.js';
export { BpfError, VerifierError, UnsupportedError, errnoName, errnoText } from './errors.js';
export { Link } from './link/link.js';
export { attachCgroup } from './link/cgroup.js';
export { attachSockmap } from './link/sockmap.js';
export { attachXdp, type XdpMode } from './link/xdp.js';
export { attachTc, attachTcx, attachTcClsact, TcFilter, type TcDirection } from './link/tc.js';
export { attachTracepoint, attachRawTracepoint, attachUprobe, attachKprobe, attachAuto, type UprobeTarget } from './link/tracing.js';
export { ifindexOf, inNetns } from './link/netdev.js';
export { testRun, testRunAsync, type TestRunOptions, type TestRunResult } from './testrun.js';
export { probeFeatures, probeProgramTypes, probeMapTypes, probeHelpers, probeHooks, type KernelFeatures } from './features.js';
export { progInfo, mapInfo, linkInfo, listIds, infoOfId, type ProgInfo, type MapInfo, type LinkInfo } from './info.js';
export { ensureBpffs, ensureTracefs, BPFFS } from './mounts.js';
export { loadKernelBtfById } from './btf-kernel.js';
export { setLibbpfDebug } from './ffi/print.js';
export * from './btf/index.js';
