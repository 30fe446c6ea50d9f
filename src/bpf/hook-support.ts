// Which hooks this kernel runs programs on, asked once per process and kept: the PMUs of
// kprobes and uprobes, tracefs, the program types, and for the BTF-typed hooks (fentry, tp_btf,
// lsm, iter) a real load of a tiny program, since only the kernel's answer is honest there.
// Also which functions and tracepoints this kernel has, and its online CPUs. The agent decides
// from these, before anything is loaded, which programs of a package can run here.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { progType } from './constants.js';
import { BpfError, errnoText } from './errors.js';
import { libbpf } from './ffi/libbpf.js';
import { captureLibbpfLog } from './ffi/print.js';
import { kernelBtfHasName } from './kernel-btf-names.js';
import { attachAuto } from './link/tracing.js';
import { BpfObject } from './object.js';
import { kernelHasStructOpsLinks } from './struct-ops-sections.js';

export type Support = 'yes' | 'no' | 'unknown';

export interface HookSupport {
  supported: Support;
  /** why, in words a user can act on ("this kernel has no kprobe support (…)") */
  detail: string;
}

/** The kernel features hooks need, by the name errors use. */
export type KernelHook =
  | 'kprobe'
  | 'kprobe_multi'
  | 'uprobe'
  | 'uprobe_multi'
  | 'uprobe_session'
  | 'tracepoint'
  | 'raw_tracepoint'
  | 'fentry'
  | 'fsession'
  | 'fentry_multi'
  | 'fsession_multi'
  | 'tp_btf'
  | 'lsm'
  | 'iter'
  | 'perf_event'
  | 'sk_lookup'
  | 'flow_dissector'
  | 'netfilter'
  | 'struct_ops';

const cache = new Map<KernelHook, HookSupport>();

const pmu = (name: string) => existsSync(`/sys/bus/event_source/devices/${name}`);
const yes = (detail: string): HookSupport => ({ supported: 'yes', detail });
const no = (detail: string): HookSupport => ({ supported: 'no', detail });

function programType(type: string, what: string): HookSupport {
  const { result } = captureLibbpfLog(() => libbpf.probeProgType(progType.value(type), null));
  if (result === 1) return yes(`${type} programs load`);
  if (result === 0) return no(`this kernel has no ${what} support (the ${type} program type is missing)`);
  return { supported: 'unknown', detail: `the ${type} program type could not be probed` };
}

const PROBE_OBJECTS: Record<string, { file: string; program: string; attach: boolean; what: string; why?: string }> = {
  fentry: {
    file: 'fentry.bpf.o',
    program: 'probe_fentry',
    attach: true,
    what: 'fentry',
    why: 'BPF trampolines: fentry, fexit and fmod_ret',
  },
  tp_btf: { file: 'hooks.bpf.o', program: 'probe_tp_btf', attach: true, what: 'tp_btf' },
  lsm: {
    file: 'hooks.bpf.o',
    program: 'probe_lsm',
    attach: false,
    what: 'lsm',
    why: "BPF LSM: 'bpf' in the kernel's lsm= list",
  },
  iter: { file: 'hooks.bpf.o', program: 'probe_iter', attach: true, what: 'iter' },
  netfilter: {
    file: 'hooks.bpf.o',
    program: 'probe_netfilter',
    attach: false,
    what: 'BPF netfilter',
    why: 'BPF netfilter programs need Linux 6.4+ with CONFIG_NETFILTER_BPF_LINK',
  },
};

/** Loads (and attaches, where that is harmless) the probe program of one BTF-typed hook. */
function probeByLoad(hook: keyof typeof PROBE_OBJECTS): HookSupport {
  const p = PROBE_OBJECTS[hook]!;
  const path = fileURLToPath(new URL(`./probes/${p.file}`, import.meta.url));
  if (!existsSync(path)) return { supported: 'unknown', detail: `probe object ${p.file} not built` };
  let obj: BpfObject | undefined;
  let stage = 'open';
  try {
    obj = BpfObject.open(path, { name: `kbpf_probe_${hook}` });
    for (const prog of obj.programs.values()) prog.setAutoload(prog.name === p.program);
    stage = 'load';
    obj.load();
    if (p.attach) {
      stage = 'attach';
      attachAuto(obj.program(p.program)).close();
    }
    return yes(`a ${p.what} program loaded${p.attach ? ' and attached' : ''}`);
  } catch (e) {
    const why =
      e instanceof BpfError && e.errno ? `${errnoText(e.errno)} (${e.code})` : (e as Error).message.split('\n')[0];
    return no(
      `${p.what} is refused by this kernel (a probe ${p.what} program failed to ${stage}: ${why}${p.why ? `; ${p.why}` : ''})`,
    );
  } finally {
    obj?.close();
  }
}

function probe(hook: KernelHook): HookSupport {
  switch (hook) {
    case 'kprobe':
      return pmu('kprobe')
        ? yes('kprobe PMU present')
        : no('this kernel has no kprobe support (no kprobe PMU: CONFIG_KPROBES is off); use a tracepoint instead');
    case 'kprobe_multi': {
      const k = hookSupport('kprobe');
      if (k.supported !== 'yes') return k;
      return existsSync('/sys/kernel/tracing/available_filter_functions') ||
        existsSync('/sys/kernel/debug/tracing/available_filter_functions')
        ? yes('kprobe PMU and ftrace present')
        : no('this kernel has no kprobe.multi support (needs fprobe/ftrace)');
    }
    case 'uprobe':
      return pmu('uprobe') ? yes('uprobe PMU present') : no('this kernel has no uprobe support (no uprobe PMU)');
    case 'uprobe_multi': {
      const u = hookSupport('uprobe');
      if (u.supported !== 'yes') return u;
      return kernelHasFunction('bpf_uprobe_multi_link_attach')
        ? yes('uprobe PMU and uprobe_multi links present')
        : no('this kernel has no uprobe.multi links (BPF_TRACE_UPROBE_MULTI, Linux 6.6+)');
    }
    case 'fsession':
    case 'fentry_multi':
    case 'fsession_multi': {
      const [type, sections] = NEWER_TRACING[hook];
      if (!kernelBtfHasName(type))
        return no(`this kernel has no ${sections} programs (${type} is not one of its attach types)`);
      const f = hookSupport('fentry');
      if (f.supported === 'no') return f;
      return no(`kbpf cannot attach ${sections} programs yet: Debian's libbpf 1.1 predates them`);
    }
    case 'uprobe_session': {
      const u = hookSupport('uprobe_multi');
      if (u.supported !== 'yes') return u;
      // the session kfuncs came with BPF_TRACE_UPROBE_SESSION (Linux 6.13)
      return kernelHasFunction('bpf_session_is_return')
        ? yes('uprobe_multi links and session kfuncs present')
        : no('this kernel has no uprobe.session links (BPF_TRACE_UPROBE_SESSION, Linux 6.13+)');
    }
    case 'tracepoint':
      return existsSync('/sys/kernel/tracing/events') ||
        existsSync('/sys/kernel/debug/tracing/events') ||
        pmu('tracepoint')
        ? yes('tracefs present')
        : no('this kernel has no tracepoint support (no tracefs)');
    case 'raw_tracepoint':
      return programType('raw_tracepoint', 'raw tracepoint');
    case 'fentry':
    case 'tp_btf':
    case 'lsm':
    case 'iter':
      if (!existsSync('/sys/kernel/btf/vmlinux')) return no(`${hook} needs the kernel's BTF (/sys/kernel/btf/vmlinux)`);
      return probeByLoad(hook);
    case 'perf_event': {
      const t = programType('perf_event', 'perf_event');
      if (t.supported !== 'yes') return t;
      return pmu('software') ? yes('software PMU present') : no('this kernel has no software perf events');
    }
    case 'sk_lookup':
      return programType('sk_lookup', 'sk_lookup');
    case 'flow_dissector':
      return programType('flow_dissector', 'flow_dissector');
    case 'netfilter': {
      // libbpf 1.1 does not know the type (it answers "could not be probed"): load a probe instead
      const t = programType('netfilter', 'BPF netfilter');
      return t.supported === 'unknown' ? probeByLoad('netfilter') : t;
    }
    case 'struct_ops': {
      const t = programType('struct_ops', 'struct_ops');
      if (t.supported !== 'yes') return t;
      return kernelHasStructOpsLinks()
        ? yes('struct_ops programs load and struct_ops links exist')
        : no(
            'this kernel has no struct_ops links (BPF_F_LINK, Linux 6.4+), without which kbpf cannot keep a struct_ops registration across its restarts',
          );
    }
  }
}

/** Tracing hooks newer than libbpf 1.1: the attach type a kernel must know, and the sections they serve. */
const NEWER_TRACING: Record<'fsession' | 'fentry_multi' | 'fsession_multi', [string, string]> = {
  fsession: ['BPF_TRACE_FSESSION', 'fsession'],
  fentry_multi: ['BPF_TRACE_FENTRY_MULTI', 'fentry.multi and fexit.multi'],
  fsession_multi: ['BPF_TRACE_FSESSION_MULTI', 'fsession.multi'],
};

/** Whether this kernel runs programs on `hook`, probed once per process. */
export function hookSupport(hook: KernelHook): HookSupport {
  let s = cache.get(hook);
  if (!s) {
    s = probe(hook);
    cache.set(hook, s);
  }
  return s;
}

let functions: Set<string> | undefined;
/** tracepoints by the names of their __tracepoint_<name> symbols (also those without a trace event) */
const tracepointSymbols = new Set<string>();

/** Whether the kernel (or a loaded module) has function `name` (from /proc/kallsyms). */
export function kernelHasFunction(name: string): boolean {
  if (!functions) {
    functions = new Set();
    try {
      for (const line of readFileSync('/proc/kallsyms', 'latin1').split('\n')) {
        const parts = line.split(/\s+/);
        if (parts[1] === 't' || parts[1] === 'T') functions.add(parts[2]!);
        else if (parts[2]?.startsWith('__tracepoint_')) tracepointSymbols.add(parts[2].slice(13));
      }
    } catch {
      return true; // cannot tell: let the kernel say
    }
  }
  return functions.has(name);
}

const TRACEFS = ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'];
let tracepoints: Set<string> | undefined;

/** Names of this kernel's tracepoints, "category/name" and bare "name" (raw and BTF tracepoints). */
function tracepointNames(): Set<string> | undefined {
  if (tracepoints) return tracepoints;
  const root = TRACEFS.find((d) => existsSync(d));
  if (!root) return undefined;
  const names = new Set<string>();
  for (const category of readdirSync(root)) {
    let events: string[];
    try {
      events = readdirSync(`${root}/${category}`);
    } catch {
      continue;
    }
    for (const e of events) {
      names.add(`${category}/${e}`);
      names.add(e);
    }
  }
  tracepoints = names;
  return names;
}

/** Whether tracepoint `name` ("sched/sched_switch", or "sched_switch" for raw and BTF ones) exists here. */
export function kernelHasTracepoint(name: string): boolean {
  const names = tracepointNames();
  if (!names || names.has(name)) return true;
  if (name.includes('/')) return false;
  kernelHasFunction('');
  return tracepointSymbols.has(name);
}

/** The CPUs that are online now (from /sys/devices/system/cpu/online: "0-3,6"). */
export function onlineCpus(): number[] {
  let text: string;
  try {
    text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  } catch {
    return [0];
  }
  const out: number[] = [];
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}
