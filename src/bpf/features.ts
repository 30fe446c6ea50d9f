// What this kernel supports, as data: program types, map types, helpers (per program type), and
// the hooks that need more than a type (kprobes, fentry, tcx, sockmap links, uprobes, ...).
// The CLI's `doctor` prints this.

import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { archInfo } from './arch.js';
import { attachType, HELPER_NAMES, MAP_TYPES, PROG_TYPES, progType } from './constants.js';
import { BpfError, errnoText } from './errors.js';
import { addressOf, koffi } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import { libc } from './ffi/libc.js';
import { captureLibbpfLog } from './ffi/print.js';
import { type HookSupport, hookSupport, type Support } from './hook-support.js';

export type { HookSupport, Support };

export interface KernelFeatures {
  kernel: string;
  btf: boolean;
  jit: boolean;
  unprivilegedBpf: boolean;
  libbpf: string;
  programTypes: Record<string, Support>;
  mapTypes: Record<string, Support>;
  hooks: Record<string, HookSupport>;
}

function probe(ret: number): Support {
  return ret === 1 ? 'yes' : ret === 0 ? 'no' : 'unknown';
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(major: number, minor: number): boolean {
  const [a, b] = kernelVersion();
  return a > major || (a === major && b >= minor);
}

export function probeProgramTypes(): Record<string, Support> {
  const out: Record<string, Support> = {};
  const { result } = captureLibbpfLog(() =>
    PROG_TYPES.map((name, i) => [name, i === 0 ? 'no' : probe(libbpf.probeProgType(i, null))] as const),
  );
  for (const [name, s] of result) if (name !== 'unspec') out[name] = s;
  // newer than libbpf 1.1, which cannot probe it: the hook's own probe loads one
  if (out.netfilter === 'unknown') out.netfilter = hookSupport('netfilter').supported;
  return out;
}

export function probeMapTypes(): Record<string, Support> {
  const out: Record<string, Support> = {};
  const { result } = captureLibbpfLog(() =>
    MAP_TYPES.map((name, i) => [name, i === 0 ? 'no' : probe(libbpf.probeMapType(i, null))] as const),
  );
  for (const [name, s] of result) if (name !== 'unspec') out[name] = s;
  return out;
}

// libbpf 1.1's libbpf_probe_bpf_helper() only knows the verifier's old wording ("unknown func");
// kernels since 6.x say "program of this type cannot use helper", which libbpf 1.1 takes for
// support, so it reports every helper for every type. We run the same tiny program (call helper;
// exit) through BPF_PROG_LOAD ourselves and read the verifier's answer.
const BPF_PROG_LOAD = 5;
const PROG_LOAD_ATTR_SIZE = 72; // up to expected_attach_type
const HELPER_LOG_SIZE = 4096;
const UNSUPPORTED_HELPER = /invalid func |unknown func |program of this type cannot use helper /;
/** Attach types some program types need to load at all (as libbpf's own probes set them). */
const PROBE_ATTACH_TYPE: Record<string, string> = {
  cgroup_sock_addr: 'cgroup_inet4_connect',
  cgroup_sockopt: 'cgroup_getsockopt',
  sk_lookup: 'sk_lookup',
  lirc_mode2: 'lirc_mode2',
  netfilter: 'netfilter',
};
/** Types that cannot load without an attach target: their helpers cannot be probed this way. */
const UNPROBEABLE = new Set(['tracing', 'ext', 'lsm', 'struct_ops']);

/** Helpers a program type may call (about 200 tiny verifier runs: call when needed). */
export function probeHelpers(programType: string): string[] {
  const type = progType.value(programType);
  if (UNPROBEABLE.has(programType)) return [];
  const insns = koffi.alloc('uint8_t', 16);
  const license = koffi.alloc('uint8_t', 4);
  const log = koffi.alloc('uint8_t', HELPER_LOG_SIZE);
  try {
    const code = new Uint8Array(koffi.view(insns, 16));
    const codeView = new DataView(code.buffer, code.byteOffset, 16);
    code.set([0x85, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); // call imm; exit
    new Uint8Array(koffi.view(license, 4)).set([0x47, 0x50, 0x4c, 0]); // "GPL"
    const logBytes = new Uint8Array(koffi.view(log, HELPER_LOG_SIZE));
    const attr = Buffer.alloc(PROG_LOAD_ATTR_SIZE);
    attr.writeUInt32LE(type, 0);
    attr.writeUInt32LE(2, 4);
    attr.writeBigUInt64LE(addressOf(insns), 8);
    attr.writeBigUInt64LE(addressOf(license), 16);
    attr.writeUInt32LE(1, 24); // log_level
    attr.writeUInt32LE(HELPER_LOG_SIZE, 28);
    attr.writeBigUInt64LE(addressOf(log), 32);
    const attach = PROBE_ATTACH_TYPE[programType];
    if (attach) attr.writeUInt32LE(attachType.value(attach), 68);
    const out: string[] = [];
    HELPER_NAMES.forEach((name, id) => {
      if (id === 0) return;
      codeView.setInt32(4, id, true);
      logBytes[0] = 0;
      const fd = Number(libc.bpf(archInfo().sysBpf, BPF_PROG_LOAD, attr, PROG_LOAD_ATTR_SIZE));
      if (fd >= 0) {
        libc.close(fd);
        out.push(name);
        return;
      }
      const end = logBytes.indexOf(0);
      const text = Buffer.from(logBytes.subarray(0, end < 0 ? HELPER_LOG_SIZE : end)).toString('latin1');
      // any other refusal (arguments, context) means the verifier got past the helper check
      if (!UNSUPPORTED_HELPER.test(text)) out.push(name);
    });
    return out;
  } finally {
    koffi.free(insns);
    koffi.free(license);
    koffi.free(log);
  }
}

/** Tries to load and attach a real fentry program: the only honest fentry probe. */
async function probeFentry(): Promise<HookSupport> {
  const objPath = fileURLToPath(new URL('./probes/fentry.bpf.o', import.meta.url));
  if (!existsSync(objPath)) return { supported: 'unknown', detail: 'probe object not built' };
  const { BpfObject } = await import('./object.js');
  const { attachAuto } = await import('./link/tracing.js');
  let obj: import('./object.js').BpfObject | undefined;
  let stage = 'open';
  try {
    obj = BpfObject.open(objPath, { name: 'kbpf_probe_fentry' });
    stage = 'load';
    obj.load();
    stage = 'attach';
    attachAuto(obj.program('probe_fentry')).close();
    return { supported: 'yes', detail: 'fentry program loaded and attached' };
  } catch (e) {
    const why =
      e instanceof BpfError && e.errno ? `${errnoText(e.errno)} (${e.code})` : (e as Error).message.split('\n')[0];
    return {
      supported: 'no',
      detail: `the kernel refused to ${stage} an fentry program on bpf_fentry_test1: ${why}; use tracepoints instead`,
    };
  } finally {
    obj?.close();
  }
}

export async function probeHooks(): Promise<Record<string, HookSupport>> {
  const pmu = (name: string) => existsSync(`/sys/bus/event_source/devices/${name}`);
  const tracefs = existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events');
  return {
    kprobe: pmu('kprobe')
      ? { supported: 'yes', detail: 'kprobe PMU present' }
      : { supported: 'no', detail: 'no kprobe PMU (CONFIG_KPROBES off): use tracepoints' },
    uprobe: pmu('uprobe')
      ? { supported: 'yes', detail: 'uprobe PMU present' }
      : { supported: 'no', detail: 'no uprobe PMU' },
    tracepoint:
      tracefs || pmu('tracepoint')
        ? { supported: 'yes', detail: 'tracepoint PMU present' }
        : { supported: 'no', detail: 'no tracefs' },
    fentry: await probeFentry(),
    tp_btf: hookSupport('tp_btf'),
    lsm: hookSupport('lsm'),
    iter: hookSupport('iter'),
    perf_event: hookSupport('perf_event'),
    raw_tracepoint: hookSupport('raw_tracepoint'),
    tcx: atLeast(6, 6)
      ? { supported: 'yes', detail: 'kernel >= 6.6' }
      : { supported: 'no', detail: 'tcx needs kernel 6.6; clsact is used instead' },
    sockmap_link: atLeast(6, 10)
      ? { supported: 'yes', detail: 'kernel >= 6.10' }
      : { supported: 'no', detail: 'sockmap links need kernel 6.10' },
    cgroup_v2:
      existsSync('/sys/fs/cgroup/unified/cgroup.controllers') || existsSync('/sys/fs/cgroup/cgroup.controllers')
        ? { supported: 'yes', detail: 'cgroup2 mounted' }
        : { supported: 'no', detail: 'cgroup2 not mounted' },
    bpf_link_update: atLeast(5, 7)
      ? { supported: 'yes', detail: 'kernel >= 5.7' }
      : { supported: 'no', detail: 'needs kernel 5.7' },
  };
}

export async function probeFeatures(): Promise<KernelFeatures> {
  return {
    kernel: release(),
    btf: existsSync('/sys/kernel/btf/vmlinux'),
    jit: readTrimmed('/proc/sys/net/core/bpf_jit_enable') === '1',
    unprivilegedBpf: readTrimmed('/proc/sys/kernel/unprivileged_bpf_disabled') === '0',
    libbpf: `${libbpf.majorVersion()}.${libbpf.minorVersion()}`,
    programTypes: probeProgramTypes(),
    mapTypes: probeMapTypes(),
    hooks: await probeHooks(),
  };
}
