// What this kernel supports, as data: program types, map types, helpers (per program type), and
// the hooks that need more than a type (kprobes, fentry, tcx, sockmap links, uprobes, ...).
// The CLI's `doctor` prints this.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { libbpf } from './ffi/libbpf.js';
import { PROG_TYPES, MAP_TYPES, HELPER_NAMES, progType } from './constants.js';
import { captureLibbpfLog } from './ffi/print.js';

export type Support = 'yes' | 'no' | 'unknown';

export interface HookSupport {
  supported: Support;
  detail: string;
}

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
  const { result } = captureLibbpfLog(() => PROG_TYPES.map((name, i) => [name, i === 0 ? 'no' : probe(libbpf.probeProgType(i, null))] as const));
  for (const [name, s] of result) if (name !== 'unspec') out[name] = s;
  return out;
}

export function probeMapTypes(): Record<string, Support> {
  const out: Record<string, Support> = {};
  const { result } = captureLibbpfLog(() => MAP_TYPES.map((name, i) => [name, i === 0 ? 'no' : probe(libbpf.probeMapType(i, null))] as const));
  for (const [name, s] of result) if (name !== 'unspec') out[name] = s;
  return out;
}

/** Helpers a program type may call (about 200 tiny verifier runs: call when needed). */
export function probeHelpers(programType: string): string[] {
  const type = progType.value(programType);
  const { result } = captureLibbpfLog(() => HELPER_NAMES.map((name, id) => (id > 0 && libbpf.probeHelper(type, id, null) === 1 ? name : null)));
  return result.filter((n): n is string => n !== null);
}

/** Tries to load and attach a real fentry program: the only honest fentry probe. */
async function probeFentry(): Promise<HookSupport> {
  const objPath = fileURLToPath(new URL('./probes/fentry.bpf.o', import.meta.url));
  if (!existsSync(objPath)) return { supported: 'unknown', detail: 'probe object not built' };
  const { BpfObject } = await import('./object.js');
  const { attachAuto } = await import('./link/tracing.js');
  let obj: import('./object.js').BpfObject | undefined;
  try {
    obj = BpfObject.open(objPath, { name: 'kbpf_probe_fentry' });
    obj.load();
    attachAuto(obj.program('probe_fentry')).close();
    return { supported: 'yes', detail: 'fentry program loaded and attached' };
  } catch (e) {
    return { supported: 'no', detail: (e as Error).message.split('\n')[0] ?? 'failed' };
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
    uprobe: pmu('uprobe') ? { supported: 'yes', detail: 'uprobe PMU present' } : { supported: 'no', detail: 'no uprobe PMU' },
    tracepoint: tracefs || pmu('tracepoint')
      ? { supported: 'yes', detail: 'tracepoint PMU present' }
      : { supported: 'no', detail: 'no tracefs' },
    fentry: await probeFentry(),
    tcx: atLeast(6, 6) ? { supported: 'yes', detail: 'kernel >= 6.6' } : { supported: 'no', detail: 'tcx needs kernel 6.6; clsact is used instead' },
    sockmap_link: atLeast(6, 10) ? { supported: 'yes', detail: 'kernel >= 6.10' } : { supported: 'no', detail: 'sockmap links need kernel 6.10' },
    cgroup_v2: existsSync('/sys/fs/cgroup/unified/cgroup.controllers') || existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? { supported: 'yes', detail: 'cgroup2 mounted' }
      : { supported: 'no', detail: 'cgroup2 not mounted' },
    bpf_link_update: atLeast(5, 7) ? { supported: 'yes', detail: 'kernel >= 5.7' } : { supported: 'no', detail: 'needs kernel 5.7' },
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
