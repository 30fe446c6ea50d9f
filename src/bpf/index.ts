// kbpf's eBPF runtime: libbpf through koffi, typed by BTF. This file is the runtime's public
// surface (package.json exports it as "kbpf/bpf"); the rest of kbpf imports the runtime from here.

export { archInfo, targetArchDefine } from './arch.js';
export * from './btf/index.js';
export { loadKernelBtfById } from './btf-kernel.js';
export {
  ATTACH_TYPES,
  type AttachType,
  HELPER_NAMES,
  LINK_TYPES,
  type LinkType,
  MAP_TYPES,
  type MapType,
  PROG_TYPES,
  type ProgType,
} from './constants.js';
export { BpfError, errnoName, errnoText, UnsupportedError, VerifierError } from './errors.js';
export {
  type KernelFeatures,
  probeFeatures,
  probeHelpers,
  probeHooks,
  probeMapTypes,
  probeProgramTypes,
} from './features.js';
export { limitMallocRetention } from './ffi/malloc.js';
export { setLibbpfDebug } from './ffi/print.js';
export { tryLockExclusive, unlock as unlockFile } from './file-lock.js';
export {
  type HookSupport,
  hookSupport,
  type KernelHook,
  kernelHasFunction,
  kernelHasTracepoint,
  onlineCpus,
} from './hook-support.js';
export { infoOfId, type LinkInfo, linkInfo, listIds, type MapInfo, mapInfo, type ProgInfo, progInfo } from './info.js';
export { attachCgroup, cgroupHookPrograms } from './link/cgroup.js';
export { attachIter, readIter, readIterBytes } from './link/iter.js';
export { Link } from './link/link.js';
export { ifindexOf, inNetns } from './link/netdev.js';
export { attachNetfilter, type NetfilterTarget, NF_FAMILIES, NF_HOOKS } from './link/netfilter.js';
export { attachNetns } from './link/netns.js';
export type { HookPosition, HookPrograms } from './link/order.js';
export {
  attachPerfEvent,
  DEFAULT_PERF_EVENT,
  DEFAULT_PERF_FREQUENCY,
  PERF_EVENTS,
  type PerfEventLinks,
  type PerfEventOptions,
} from './link/perf-event.js';
export { attachSockmap } from './link/sockmap.js';
export { attachStructOps, onlyStructOpsMap, switchStructOps, switchStructOpsBack } from './link/struct-ops.js';
export { attachTc, attachTcClsact, attachTcx, type TcDirection, TcFilter, tcxHookPrograms } from './link/tc.js';
export {
  attachAuto,
  attachKprobe,
  attachRawTracepoint,
  attachTracepoint,
  attachUprobe,
  type UprobeTarget,
} from './link/tracing.js';
export { attachUprobeMulti, type UprobeMultiTarget } from './link/uprobe-multi.js';
export { attachUsdt, type UsdtLinks, type UsdtTarget } from './link/usdt.js';
export { attachXdp, type XdpMode } from './link/xdp.js';
export { BpfMap, type MapSpec, numPossibleCpus, type UpdateFlag } from './map.js';
export { MAP_DELETE_ELEM, MAP_GET_NEXT_KEY, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, rawMapOperate } from './map-raw.js';
export { BPFFS, ensureBpffs, ensureTracefs } from './mounts.js';
export { BpfObject, type GlobalVariable, type OpenOptions } from './object.js';
export { type CapturedPacket, PACKET_OUTGOING, PacketSocket } from './packet-socket.js';
export * from './perf/index.js';
export { Poller, poller, type Watch } from './poller.js';
export { Program } from './program.js';
export { loadRawProgram, type RawProgramOptions } from './raw-program.js';
export * from './records/index.js';
export * from './ringbuf/index.js';
export { RunTimeStats } from './stats.js';
export { type TestRunOptions, type TestRunResult, testRun, testRunAsync } from './testrun.js';
export { parseUsdtArgs, type UsdtArg, usdtArchSupported } from './usdt/args.js';
export { readUsdtProbes, type UsdtProbe } from './usdt/notes.js';
export { USDT_IP_MAP, USDT_SPECS_MAP } from './usdt/specs.js';
export { waitReadableSync } from './wait.js';
