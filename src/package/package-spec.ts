// The kbpf package spec: what a package says about itself. `kbpf build` derives most of it from
// the compiled objects (section names, BTF) and merges what kbpf.yaml adds; it is stored as the
// OCI config blob, and the agent realises an instance from it.

import { InvalidError } from '../errors.js';
import { PackageError } from './errors.js';

/** Hooks whose target is one name of the kernel's: a function, a tracepoint, an LSM hook, an iterator. */
/**
 * The prefix of globals the agent sets itself (src/agent/attach-globals.ts: kbpf_cgroup_id,
 * kbpf_cgroup_level), which are therefore not config variables of the package.
 */
export const AGENT_GLOBAL_PREFIX = 'kbpf_';

export type KernelTargetHook =
  | 'kprobe'
  | 'kretprobe'
  | 'ksyscall'
  | 'kretsyscall'
  | 'kprobe_multi'
  | 'kretprobe_multi'
  | 'fentry'
  | 'fexit'
  | 'fmod_ret'
  /** entry and exit of one kernel function in one program (libbpf's fsession sections) */
  | 'fsession'
  /** one link on every kernel function matching a pattern (fentry.multi, fexit.multi, fsession.multi) */
  | 'fentry_multi'
  | 'fexit_multi'
  | 'fsession_multi'
  | 'tp_btf'
  | 'lsm'
  | 'iter';

export type AttachSpec =
  /** a bare section (`SEC("raw_tp/")`, `SEC("tp")`) names none: run must give it */
  | { hook: 'tracepoint'; target?: string }
  | { hook: 'raw_tracepoint'; target?: string }
  | { hook: KernelTargetHook; target: string }
  /** a bare `kprobe`/`kretprobe` section names no function: run must give it */
  | { hook: 'kprobe' | 'kretprobe'; target?: string }
  | { hook: 'cgroup'; type: string; target?: string }
  | { hook: 'xdp'; target?: string; mode?: 'generic' | 'native' | 'auto' }
  | { hook: 'tc'; direction: 'ingress' | 'egress'; target?: string }
  | { hook: 'sockmap'; map: string; type?: string }
  /** target BINARY:SYMBOL[+OFFSET]; a bare `uprobe` section has none: run must give it */
  | { hook: 'uprobe' | 'uretprobe'; target?: string; pid?: number }
  /** target BINARY:PROVIDER:NAME; a bare `usdt` section has none: run must give it */
  | { hook: 'usdt'; target?: string; pid?: number }
  /** a sampling event on every online CPU: target EVENT[:FREQUENCY] (default cpu-clock at 99 Hz) */
  | { hook: 'perf_event'; target?: string }
  /** a network namespace (default: the agent's own, /proc/self/ns/net) */
  | { hook: 'sk_lookup' | 'flow_dissector'; target?: string }
  /** target FAMILY:HOOK[:PRIORITY], e.g. ipv4:local_in:-128; run must give it */
  | { hook: 'netfilter'; target?: string }
  /** the program is an operation of the object's struct_ops map `map` (registered as a whole) */
  | { hook: 'struct_ops'; map?: string }
  | { hook: 'none' };

export type HookName = AttachSpec['hook'];
export const KERNEL_TARGET_HOOKS: readonly KernelTargetHook[] = [
  'kprobe',
  'kretprobe',
  'ksyscall',
  'kretsyscall',
  'kprobe_multi',
  'kretprobe_multi',
  'fentry',
  'fexit',
  'fmod_ret',
  'fsession',
  'fentry_multi',
  'fexit_multi',
  'fsession_multi',
  'tp_btf',
  'lsm',
  'iter',
];
export const HOOKS: readonly HookName[] = [
  'tracepoint',
  'raw_tracepoint',
  ...KERNEL_TARGET_HOOKS,
  'cgroup',
  'xdp',
  'tc',
  'sockmap',
  'uprobe',
  'uretprobe',
  'usdt',
  'perf_event',
  'sk_lookup',
  'flow_dissector',
  'netfilter',
  'struct_ops',
  'none',
];

/** What a hook's target looks like, for errors that ask for one. */
export const TARGET_FORMS: Partial<Record<HookName, string>> = {
  tracepoint: 'tracepoint:CATEGORY/NAME, e.g. tracepoint:syscalls/sys_enter_openat',
  raw_tracepoint: 'raw_tracepoint:NAME, e.g. raw_tracepoint:sys_enter',
  kprobe: 'kprobe:FUNCTION[+OFFSET], e.g. kprobe:do_unlinkat',
  kretprobe: 'kretprobe:FUNCTION, e.g. kretprobe:do_unlinkat',
  uprobe: 'uprobe:BINARY:SYMBOL, e.g. uprobe:/usr/bin/bash:readline',
  uretprobe: 'uretprobe:BINARY:SYMBOL, e.g. uretprobe:/usr/bin/bash:readline',
  usdt: 'usdt:BINARY:PROVIDER:NAME[:pid=PID], e.g. usdt:/usr/lib/x86_64-linux-gnu/libstdc++.so.6:libstdcxx:throw',
  perf_event: 'perf_event:EVENT[:FREQUENCY], e.g. perf_event:cpu-clock:99',
  netfilter: 'netfilter:FAMILY:HOOK[:PRIORITY], e.g. netfilter:ipv4:local_in:0',
};

export interface ProgramSpec {
  name: string;
  /** file name of the ELF object (a layer title) */
  object: string;
  section: string;
  type: string;
  attach: AttachSpec;
  /** when this kernel cannot run it, the instance runs without it (a warning in its status) */
  optional?: boolean;
  /**
   * Programs of one group are alternatives (variants of one probe): run keeps the best one this
   * kernel supports. Without a group, programs on the same function or event through different
   * hooks (fentry/kprobe, tp_btf/raw_tracepoint/tracepoint) are grouped by that target.
   */
  group?: string;
  /** where it runs among other instances' programs on the same cgroup or tcx hook (kbpf.yaml programs.X.order) */
  order?: ProgramOrder;
  /** an iterator's record struct: what its bpf_seq_write calls write (its output is decoded as these) */
  record?: string;
}

/**
 * A program's place among the programs of other instances on its hook: before every program of
 * instance `before`, after every program of instance `after`, or by `priority` (lower runs
 * first) among the programs that declare one. Only cgroup and tc (tcx) hooks have an order.
 */
export type ProgramOrder = { before: string } | { after: string } | { priority: number };

const ORDER_INSTANCE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

/** Checks a program's order (kbpf.yaml or a package spec); a string says what is wrong. */
export function parseOrder(v: unknown): ProgramOrder | string {
  const form = 'must be one of { before: INSTANCE }, { after: INSTANCE }, { priority: N }';
  if (!v || typeof v !== 'object' || Array.isArray(v)) return form;
  const keys = Object.keys(v);
  if (keys.length !== 1) return form;
  const o = v as Record<string, unknown>;
  if ('priority' in o) {
    const n = o.priority;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || Math.abs(n) > 1_000_000)
      return 'priority must be an integer (-1000000..1000000; lower runs first)';
    return { priority: n };
  }
  const key = keys[0] as 'before' | 'after';
  if (key !== 'before' && key !== 'after') return form;
  const name = o[key];
  if (typeof name !== 'string' || !ORDER_INSTANCE.test(name)) return `${key} must name an instance (kbpf ps)`;
  return key === 'before' ? { before: name } : { after: name };
}

/** "before:mesh", "after:lb", "priority:10" (run --order) -> the order, or a string saying what is wrong. */
export function parseOrderString(v: string): ProgramOrder | string {
  const i = v.indexOf(':');
  const key = v.slice(0, Math.max(0, i));
  const rest = v.slice(i + 1);
  if (key === 'priority') return parseOrder({ priority: /^-?\d+$/.test(rest) ? Number(rest) : rest });
  return key === 'before' || key === 'after'
    ? parseOrder({ [key]: rest })
    : 'must be before:INSTANCE, after:INSTANCE or priority:N';
}

/** A program's order for one instance: run --order over the package's. Throws Invalid on a bad --order. */
export function effectiveOrder(p: ProgramSpec, overrides: AttachOverrides = {}): ProgramOrder | undefined {
  const given = overrides.order && Object.hasOwn(overrides.order, p.name) ? overrides.order[p.name] : undefined;
  if (given === undefined) return p.order;
  const order = parseOrderString(given);
  if (typeof order === 'string') throw new InvalidError(`--order ${p.name}=${given}: ${order}`);
  if (p.attach.hook !== 'cgroup' && p.attach.hook !== 'tc')
    throw new InvalidError(`--order ${p.name}: ${p.attach.hook} hooks have no program order (only cgroup and tc)`);
  return order;
}

/** "before mesh", "after lb", "priority 10" */
export function describeOrder(o: ProgramOrder): string {
  return 'before' in o ? `before ${o.before}` : 'after' in o ? `after ${o.after}` : `priority ${o.priority}`;
}

export interface ConfigVarSpec {
  name: string;
  object: string;
  section: string;
  /** C type as BTF spells it */
  type: string;
  size: number;
  default: unknown;
  description?: string;
}

export interface MapEntrySpec {
  name: string;
  object: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** pinned per instance so it survives upgrades (default: every non-internal map) */
  pin: boolean;
  /** use this map of another running instance, INSTANCE[:MAP] (default: the same map name) */
  share?: string;
  /** a program array's entries the agent fills after load (index → program), as tools' loaders do for tail calls */
  programs?: Record<string, string>;
}

export interface EventSpec {
  /** ring buffer or perf event array map carrying the events */
  map: string;
  object: string;
  kind: 'ringbuf' | 'perf';
  /** struct of one record, looked up in the object's BTF */
  type: string;
  /** fields to show as columns (default: all) */
  columns?: string[];
  /** how the human output shows fields (the records themselves stay as decoded) */
  format?: EventFormat;
  /**
   * a ring buffer the agent also reads every pollMs, not only when woken: its program submits
   * most records with BPF_RB_NO_WAKEUP (one wake-up per record costs the producer more than the
   * record at tens of thousands a second) and wakes the reader now and then
   */
  pollMs?: number;
}

/**
 * What a Wasm guest may ask of the kernel (its capability manifest). The host refuses anything
 * else with -EPERM. Attach targets are a program's section (libbpf attaches it from the section
 * name) or SECTION:TARGET for an explicit target (xdp:eth0, sockops:/sys/fs/cgroup); a trailing
 * `*` matches any rest.
 */
export interface GuestCapabilities {
  /** program types (as libbpf names them: tracepoint, xdp, sock_ops, …) the guest may load */
  programTypes: string[];
  attachTargets: string[];
  /** maps the guest may read, write and poll, by name */
  maps: string[];
}

/** A package whose instance is a Wasm guest (wasm-bpf's host ABI), not programs the agent attaches. */
export interface GuestSpec {
  /** title of the Wasm layer */
  module: string;
  /** arguments after the guest's name (argv[1..]) */
  args: string[];
  capabilities: GuestCapabilities;
  limits?: GuestLimits;
}

export interface GuestLimits {
  /** linear memory, MiB (default 128) */
  memoryMb?: number;
  /** CPU time the guest may use in any window of windowMs (default 1000 of 2000: half a core) */
  cpuMs?: number;
  windowMs?: number;
}

/** How one event field reads for a human: an address, a port, hex, or names of an enum's values. */
export type FieldFormat =
  | { kind: 'ipv4' | 'ipv6' | 'port' | 'net-port' | 'hex' }
  | { kind: 'flags' | 'enum'; names: [string, number][] }
  /** a 16-byte address whose family is in another field: IPv4 (its first 4 bytes) where that says AF_INET */
  | { kind: 'inet'; family: string }
  /**
   * a stack: an array of code addresses (`stack`), or the id of one in a stack trace map
   * (`stack-id`, `map`), shown as symbols; `space` says whose addresses they are (else by value:
   * kernel ones are ≥ 0xffff800000000000), `pid` the field naming the process user addresses are
   * in, `size` the field saying how many bytes of the array bpf_get_stack filled
   */
  | { kind: 'stack'; space?: StackSpace; pid?: string; size?: string }
  | { kind: 'stack-id'; map: string; space?: StackSpace; pid?: string }
  /** bytes holding text (a `__u8` buffer): shown as a string, up to the length field `size` says */
  | { kind: 'text'; size?: string };

export type StackSpace = 'kernel' | 'user';

/** field name → format */
export type EventFormat = Record<string, FieldFormat>;

export const FIELD_FORMAT_KINDS = [
  'ipv4',
  'ipv6',
  'port',
  'net-port',
  'hex',
  'flags',
  'enum',
  'inet',
  'stack',
  'stack-id',
  'text',
] as const;

/** A package's event processor: a Wasm module that sees its events before they are logged. */
export interface ProcessorSpec {
  /** the title of its Wasm layer */
  module: string;
  /** the event maps it sees (every event map of the package when empty) */
  events: string[];
}

export interface PackageSpec {
  /** set for a Wasm guest: its module, arguments and capability manifest */
  guest?: GuestSpec;
  /** set when the package carries an event processor (docs/wasm.md) */
  processor?: ProcessorSpec;
  name: string;
  version: string;
  description?: string;
  /** ELF object file names, one per .bpf.c */
  objects: string[];
  /** other builds of objects, loaded when the verifier refuses the object (absent: none) */
  alternatives?: ObjectAlternative[];
  /**
   * objects whose histograms (`slots` arrays, in maps or globals) are linear — slot i counts the
   * value i, as runqlen's — rather than log2 (absent: none)
   */
  linearHistograms?: string[];
  programs: ProgramSpec[];
  config: ConfigVarSpec[];
  maps: MapEntrySpec[];
  events: EventSpec[];
  /** kbpf version that built it */
  builder: string;
  /** the size of each instance's event log (kbpf.yaml `logs:`); the agent's defaults when absent */
  logs?: LogLimits;
}

/**
 * Another build of one of the package's objects: the same source compiled for another BPF
 * instruction set (clang -mcpu=), with the same programs, maps and globals. Its layer is a
 * KBPF_BYTECODE_ALTERNATIVE titled `file`.
 */
export interface ObjectAlternative {
  /** the object it stands in for (one of `objects`) */
  object: string;
  /** its layer's title */
  file: string;
  /** the instruction set it was built for: v1..v4 */
  cpu: string;
}

/** An instance's event log: rotate a file before it passes maxBytes, keep `keep` rotated files. */
export interface LogLimits {
  maxBytes?: number;
  keep?: number;
}

/** The bounds of an event log: a file of at least 64 KiB, at most 16 rotated files, 1 GiB in all. */
export const LOG_LIMITS = {
  minFileBytes: 64 * 1024,
  maxKeep: 16,
  maxTotalBytes: 1024 * 1024 * 1024,
  /** what the agent uses when a package does not say */
  defaultFileBytes: 4 * 1024 * 1024,
  defaultKeep: 2,
} as const;

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1000, ki: 1024, m: 1e6, mi: 1024 ** 2, g: 1e9, gi: 1024 ** 3 };

/**
 * A size in bytes: a whole number, or a string "N", "NKi", "NMi", "NGi" (also K, M, G in powers
 * of 1000, and an optional trailing B: "32MiB"). Undefined when it is not one.
 */
export function parseByteSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+)\s*([kKmMgG]i?)?[bB]?\s*$/.exec(v);
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  const n = Number(m[1]) * unit!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The event log size an instance runs with: run --log-size, else the package's logs:, else the defaults. */
export function instanceLogLimits(
  spec: PackageSpec | undefined,
  attach: AttachOverrides = {},
): { maxBytes: number; keep: number } {
  return {
    maxBytes: attach.logBytes ?? spec?.logs?.maxBytes ?? LOG_LIMITS.defaultFileBytes,
    keep: spec?.logs?.keep ?? LOG_LIMITS.defaultKeep,
  };
}

/** What is wrong with log limits (undefined when they are within LOG_LIMITS), in words. */
export function logLimitsProblem(l: LogLimits): string | undefined {
  const file = l.maxBytes ?? LOG_LIMITS.defaultFileBytes;
  const keep = l.keep ?? LOG_LIMITS.defaultKeep;
  if (!Number.isSafeInteger(file) || file < LOG_LIMITS.minFileBytes)
    return `max_bytes ${file} is less than the ${LOG_LIMITS.minFileBytes} bytes (64Ki) a log file needs`;
  if (!Number.isSafeInteger(keep) || keep < 0 || keep > LOG_LIMITS.maxKeep)
    return `keep ${keep} is out of range (0..${LOG_LIMITS.maxKeep} rotated files)`;
  const total = file * (keep + 1);
  if (total > LOG_LIMITS.maxTotalBytes)
    return `max_bytes ${file} × ${keep + 1} files is ${total} bytes, more than the ${LOG_LIMITS.maxTotalBytes} (1Gi) an instance's log may use`;
  return undefined;
}

/** What a user may override per instance at run time (kept with the revision). */
export interface AttachOverrides {
  cgroup?: string;
  iface?: string;
  /**
   * per program: where it attaches instead — a target for the program's own hook
   * ("syscalls/sys_enter_openat") or a whole HOOK:TARGET ("uprobe:/usr/bin/bash:readline")
   */
  programs?: Record<string, string>;
  /** per map: max_entries set before load (run --map-size MAP=N) */
  mapSizes?: Record<string, number>;
  /** per map: INSTANCE[:MAP] of another running instance whose pinned map this one uses (run --share-map) */
  shareMaps?: Record<string, string>;
  /** per program: its order on its hook instead of the package's, "before:INSTANCE", "after:INSTANCE" or "priority:N" (run --order) */
  order?: Record<string, string>;
  /** the size of each event log file instead of the package's logs.maxBytes (run --log-size) */
  logBytes?: number;
  /** programs that are optional for this instance, as if kbpf.yaml said so ("*": all) (run --optional) */
  optional?: string[];
}

/**
 * Parses "HOOK:TARGET" ("tracepoint:syscalls/sys_enter_openat", "cgroup:connect4", "xdp:eth0",
 * "tc:ingress:eth0", "sockmap:sock_map", "uprobe:/bin/bash:readline", "fentry:do_unlinkat",
 * "perf_event:cpu-clock:99", …). Throws an InvalidPackageError-free plain Error with what is
 * wrong; callers put it in their own words (kbpf.yaml, --attach).
 */
export function parseAttachString(value: string): AttachSpec {
  const i = value.indexOf(':');
  const hook = i < 0 ? value : value.slice(0, i);
  const rest = i < 0 ? '' : value.slice(i + 1);
  switch (hook) {
    case 'tracepoint':
    case 'raw_tracepoint':
      if (!rest)
        throw new Error(`${hook} needs a target, e.g. ${hook}:${hook === 'tracepoint' ? 'sched/' : ''}sched_switch`);
      return { hook, target: rest };
    case 'uprobe':
    case 'uretprobe':
    case 'usdt': {
      // a trailing :pid=N limits the probe to one process
      const m = /^(.*):pid=(\d+)$/.exec(rest);
      const target = m ? m[1]! : rest;
      if ((target || m) && !target.includes(':')) throw new Error(`${hook} needs ${TARGET_FORMS[hook]}`);
      const out: { hook: typeof hook; target?: string; pid?: number } = target ? { hook, target } : { hook };
      if (m) out.pid = Number(m[2]);
      return out;
    }
    case 'perf_event':
    case 'sk_lookup':
    case 'flow_dissector':
    case 'netfilter':
      return rest ? { hook, target: rest } : { hook };
    case 'cgroup': {
      const [type, ...path] = rest.split(':');
      if (!type) throw new Error('cgroup needs a hook type, e.g. cgroup:connect4');
      return { hook, type, target: path.length ? path.join(':') : undefined };
    }
    case 'xdp':
      return { hook, target: rest || undefined };
    case 'tc': {
      const [direction, iface] = rest.split(':');
      if (direction !== 'ingress' && direction !== 'egress')
        throw new Error('tc needs ingress or egress, e.g. tc:ingress');
      return { hook, direction, target: iface || undefined };
    }
    case 'sockmap':
      if (!rest) throw new Error("sockmap needs the map's name");
      return { hook, map: rest };
    case 'struct_ops':
      return rest ? { hook, map: rest } : { hook };
    case 'none':
      return { hook };
    default:
      if ((KERNEL_TARGET_HOOKS as readonly string[]).includes(hook)) {
        if (!rest) throw new Error(`${hook} needs a target, e.g. ${hook}:${hook === 'iter' ? 'task' : 'do_unlinkat'}`);
        return { hook: hook as KernelTargetHook, target: rest };
      }
      throw new Error(`unknown hook type "${hook}" (known: ${HOOKS.join(', ')})`);
  }
}

/** The target of a hook that has one as a plain string (undefined for the others or when missing). */
export function attachTarget(a: AttachSpec): string | undefined {
  return 'target' in a ? a.target : undefined;
}

/** Where each program attaches for one instance: spec targets with run-time overrides applied. */
export function resolveAttach(
  spec: ProgramSpec,
  overrides: AttachOverrides = {},
  defaults = { cgroup: '/sys/fs/cgroup/unified' },
): AttachSpec {
  // Own entries only: a program named `constructor` or `__proto__` must not find Object's.
  const explicit =
    overrides.programs && Object.hasOwn(overrides.programs, spec.name) ? overrides.programs[spec.name] : undefined;
  let a = spec.attach;
  let target = explicit;
  if (explicit !== undefined) {
    const hook = explicit.slice(0, Math.max(0, explicit.indexOf(':'))) || explicit;
    if ((HOOKS as readonly string[]).includes(hook)) {
      // a whole HOOK:TARGET: checked like a package's own attach spec
      a = new SpecChecker(`--attach ${spec.name}`).attach(parseAttachOverride(spec.name, explicit), 'attach');
      target = undefined;
    }
  }
  switch (a.hook) {
    case 'cgroup':
      return { ...a, target: target ?? overrides.cgroup ?? a.target ?? defaults.cgroup };
    case 'xdp':
    case 'tc':
      return { ...a, target: target ?? overrides.iface ?? a.target };
    case 'sockmap':
    case 'struct_ops':
    case 'none':
      return a;
    default:
      return target !== undefined ? ({ ...a, target } as AttachSpec) : a;
  }
}

function parseAttachOverride(program: string, value: string): AttachSpec {
  try {
    return parseAttachString(value);
  } catch (e) {
    throw new PackageError('INVALID_PACKAGE', `--attach ${program}=${value}: ${(e as Error).message}`);
  }
}

export function describeAttach(a: AttachSpec): string {
  switch (a.hook) {
    case 'cgroup':
      return `cgroup/${a.type} ${a.target ?? ''}`.trim();
    case 'xdp':
      return `xdp ${a.target ?? '(iface?)'}${a.mode && a.mode !== 'auto' ? ` ${a.mode}` : ''}`;
    case 'tc':
      return `tc ${a.direction} ${a.target ?? '(iface?)'}`;
    case 'sockmap':
      return `sockmap ${a.map}`;
    case 'struct_ops':
      return `struct_ops ${a.map ?? ''}`.trim();
    case 'perf_event':
      return `perf_event ${a.target ?? 'cpu-clock:99'} (every CPU)`;
    case 'sk_lookup':
    case 'flow_dissector':
      return `${a.hook} ${a.target ?? 'netns of the agent'}`;
    case 'uprobe':
    case 'uretprobe':
    case 'usdt':
      return `${a.hook} ${a.target ?? '(target?)'}${a.pid !== undefined ? ` (pid ${a.pid})` : ''}`;
    case 'netfilter':
      return `${a.hook} ${a.target ?? '(target?)'}`;
    case 'none':
      return 'not attached';
    default:
      return `${a.hook} ${a.target}`;
  }
}

// ---------------------------------------------------------------- validation
//
// A package spec comes from a registry: every name in it becomes part of a bpffs path, a pin or a
// log's key, and every size becomes kernel memory. `validatePackageSpec` is the schema the store
// and the registry client hold a spec to before anything uses it.

/** Per-package limits; a spec beyond them is refused with the limit named. */
export const SPEC_LIMITS = {
  objects: 16,
  programs: 128,
  maps: 128,
  config: 256,
  events: 32,
  columns: 128,
  /** an event's poll_ms: at most a minute */
  pollMs: 60_000,
  /** C identifiers: program, map, config variable, event field names */
  identifier: 128,
  /** file names of objects (layer titles) */
  fileName: 128,
  /** sections, types, attach targets */
  text: 512,
  description: 4096,
  /** a uprobe binary or a cgroup path */
  path: 4096,
  keySize: 1 << 16,
  valueSize: 1 << 24,
  maxEntries: 1 << 24,
  /** ring buffer bytes (max_entries of a ringbuf map) */
  ringBytes: 1 << 30,
  /** (key + value) × entries of one map, and of all maps together */
  mapBytes: 1 << 30,
  packageMapBytes: 2 ** 31,
  configSize: 1 << 20,
  /** arguments of a Wasm guest */
  guestArgs: 256,
} as const;

const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
const KIND_WORD = /^[A-Za-z0-9_()-]+$/;
const IFACE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const TRACEPOINT = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
/** a function (with an optional +OFFSET), a glob of functions (kprobe.multi), an event, an iterator */
const KERNEL_NAME = /^[A-Za-z0-9_.*?$:-]+(\+(0x)?[0-9a-fA-F]+)?$/;
const PERF_EVENT_TARGET = /^[a-z][a-z0-9-]*(:[1-9][0-9]{0,8})?$/;
const NETFILTER_TARGET =
  /^(ipv4|ipv6|inet|bridge|arp):(prerouting|local_in|forward|local_out|postrouting)(:-?[0-9]{1,10})?$/;
const SHARE = /^[a-z0-9][a-z0-9_.-]{0,62}(:[A-Za-z_][A-Za-z0-9_]*)?$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

class SpecChecker {
  constructor(private readonly where: string) {}

  fail(path: string, why: string): never {
    throw new PackageError('INVALID_PACKAGE', `${this.where}: ${path}: ${why}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'is not an object');
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'is not a list');
    if (v.length > max) this.fail(path, `has ${v.length} entries, more than the ${max} a package may have`);
    return v;
  }

  text(v: unknown, path: string, max: number = SPEC_LIMITS.text): string {
    if (typeof v !== 'string') this.fail(path, `is ${v === undefined ? 'missing' : 'not a string'}`);
    if (v.length > max) this.fail(path, `is ${v.length} characters long, more than ${max}`);
    if (CONTROL.test(v)) this.fail(path, 'contains control characters');
    return v;
  }

  optionalText(v: unknown, path: string, max?: number): string | undefined {
    return v === undefined ? undefined : this.text(v, path, max);
  }

  identifier(v: unknown, path: string): string {
    const s = this.text(v, path, SPEC_LIMITS.identifier);
    if (!C_IDENTIFIER.test(s))
      this.fail(
        path,
        `${JSON.stringify(s)} is not a C identifier (letters, digits and "_", not starting with a digit)`,
      );
    return s;
  }

  fileName(v: unknown, path: string): string {
    const s = this.text(v, path, SPEC_LIMITS.fileName);
    if (!FILE_NAME.test(s) || s.includes('..'))
      this.fail(path, `${JSON.stringify(s)} is not a file name (letters, digits, "_", ".", "+", "-"; no "/" or "..")`);
    return s;
  }

  kindWord(v: unknown, path: string): string {
    const s = this.text(v, path, 64);
    if (!KIND_WORD.test(s)) this.fail(path, `${JSON.stringify(s)} is not a type name (letters, digits, "_")`);
    return s;
  }

  integer(v: unknown, path: string, max: number, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(path, 'is not an integer');
    if (v < min || v > max) this.fail(path, `${v} is out of range (${min}..${max})`);
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, choices: readonly T[]): T {
    if (typeof v !== 'string' || !choices.includes(v as T))
      this.fail(path, `must be one of ${choices.join(', ')} (got ${JSON.stringify(v)})`);
    return v as T;
  }

  noTraversal(s: string, path: string): void {
    if (s.split('/').includes('..')) this.fail(path, `${JSON.stringify(s)} must not contain ".."`);
  }

  unique(names: string[], path: string): void {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) this.fail(path, `two entries are named ${JSON.stringify(n)}`);
      seen.add(n);
    }
  }

  guest(v: unknown, path: string): GuestSpec {
    const g = this.object(v, path);
    this.fileName(g.module, `${path}.module`);
    if (!String(g.module).endsWith('.wasm')) this.fail(`${path}.module`, 'is not a .wasm file name');
    this.array(g.args ?? [], `${path}.args`, SPEC_LIMITS.guestArgs).forEach((a, i) => {
      this.text(a, `${path}.args[${i}]`, SPEC_LIMITS.path);
    });
    const caps = this.object(g.capabilities, `${path}.capabilities`);
    for (const key of ['programTypes', 'attachTargets', 'maps'] as const) {
      this.array(caps[key], `${path}.capabilities.${key}`, SPEC_LIMITS.programs).forEach((x, i) => {
        const at = `${path}.capabilities.${key}[${i}]`;
        if (key === 'programTypes') this.kindWord(x, at);
        else if (key === 'maps') this.identifier(x, at);
        else this.noTraversal(this.text(x, at, SPEC_LIMITS.path), at);
      });
    }
    if (g.limits !== undefined) {
      const l = this.object(g.limits, `${path}.limits`);
      if (l.memoryMb !== undefined) this.integer(l.memoryMb, `${path}.limits.memoryMb`, 4096, 1);
      if (l.cpuMs !== undefined) this.integer(l.cpuMs, `${path}.limits.cpuMs`, 3_600_000, 1);
      if (l.windowMs !== undefined) this.integer(l.windowMs, `${path}.limits.windowMs`, 3_600_000, 100);
    }
    return g as unknown as GuestSpec;
  }

  attach(v: unknown, path: string): AttachSpec {
    const a = this.object(v, path);
    const hook = this.oneOf(a.hook, `${path}.hook`, HOOKS);
    switch (hook) {
      case 'tracepoint': {
        const target = this.optionalText(a.target, `${path}.target`);
        if (target === undefined) return { hook }; // a bare section: run gives it
        if (!TRACEPOINT.test(target) || target.includes('..'))
          this.fail(`${path}.target`, `${JSON.stringify(target)} is not CATEGORY/NAME`);
        return { hook, target };
      }
      case 'raw_tracepoint': {
        const target = this.optionalText(a.target, `${path}.target`);
        if (target === undefined) return { hook };
        if (!/^[A-Za-z0-9_.-]+$/.test(target) || target.includes('..'))
          this.fail(`${path}.target`, `${JSON.stringify(target)} is not a tracepoint name`);
        return { hook, target };
      }
      case 'uprobe':
      case 'uretprobe':
      case 'usdt': {
        const out: { hook: typeof hook; target?: string; pid?: number } = { hook };
        const target = this.optionalText(a.target, `${path}.target`, SPEC_LIMITS.path);
        if (target !== undefined) {
          if (!target.includes(':'))
            this.fail(`${path}.target`, `${JSON.stringify(target)} is not ${TARGET_FORMS[hook]}`);
          this.noTraversal(target, `${path}.target`);
          out.target = target;
        }
        if (a.pid !== undefined) out.pid = this.integer(a.pid, `${path}.pid`, 0x3fffffff);
        return out;
      }
      case 'perf_event': {
        const target = this.optionalText(a.target, `${path}.target`);
        if (target === undefined) return { hook };
        if (!PERF_EVENT_TARGET.test(target))
          this.fail(`${path}.target`, `${JSON.stringify(target)} is not ${TARGET_FORMS.perf_event}`);
        return { hook, target };
      }
      case 'netfilter': {
        const target = this.optionalText(a.target, `${path}.target`);
        if (target === undefined) return { hook };
        if (!NETFILTER_TARGET.test(target))
          this.fail(`${path}.target`, `${JSON.stringify(target)} is not ${TARGET_FORMS.netfilter}`);
        return { hook, target };
      }
      case 'sk_lookup':
      case 'flow_dissector': {
        const target = this.optionalText(a.target, `${path}.target`, SPEC_LIMITS.path);
        if (target === undefined) return { hook };
        this.noTraversal(target, `${path}.target`);
        return { hook, target };
      }
      case 'struct_ops':
        return a.map === undefined ? { hook } : { hook, map: this.identifier(a.map, `${path}.map`) };
      case 'cgroup': {
        const out: AttachSpec = { hook, type: this.kindWord(a.type, `${path}.type`) };
        const target = this.optionalText(a.target, `${path}.target`, SPEC_LIMITS.path);
        if (target !== undefined) {
          this.noTraversal(target, `${path}.target`);
          out.target = target;
        }
        return out;
      }
      case 'xdp': {
        const out: AttachSpec = { hook };
        const target = this.optionalText(a.target, `${path}.target`);
        if (target !== undefined) {
          if (!IFACE.test(target)) this.fail(`${path}.target`, `${JSON.stringify(target)} is not an interface name`);
          out.target = target;
        }
        if (a.mode !== undefined) out.mode = this.oneOf(a.mode, `${path}.mode`, ['generic', 'native', 'auto'] as const);
        return out;
      }
      case 'tc': {
        const out: AttachSpec = {
          hook,
          direction: this.oneOf(a.direction, `${path}.direction`, ['ingress', 'egress'] as const),
        };
        const target = this.optionalText(a.target, `${path}.target`);
        if (target !== undefined) {
          if (!IFACE.test(target)) this.fail(`${path}.target`, `${JSON.stringify(target)} is not an interface name`);
          out.target = target;
        }
        return out;
      }
      case 'sockmap': {
        const out: AttachSpec = { hook, map: this.identifier(a.map, `${path}.map`) };
        if (a.type !== undefined) out.type = this.kindWord(a.type, `${path}.type`);
        return out;
      }
      case 'none':
        return { hook: 'none' };
      default: {
        // fentry, kprobe, tp_btf, lsm, iter, …: one name of the kernel's (a function may have +OFFSET);
        // a bare kprobe or kretprobe section has none (run gives it)
        if ((hook === 'kprobe' || hook === 'kretprobe') && a.target === undefined) return { hook };
        const target = this.text(a.target, `${path}.target`);
        if (!KERNEL_NAME.test(target))
          this.fail(`${path}.target`, `${JSON.stringify(target)} is not a kernel function, event or hook name`);
        return { hook, target };
      }
    }
  }
}

/**
 * Checks a package spec (the config blob of a kbpf package) against the schema: C identifiers
 * for program, map, config and event names (they become bpffs paths: no "/" and no ".."), file
 * names for objects, attach targets of the right shape, bounded counts and sane map sizes.
 * Returns the spec (the same object) or throws an Invalid PackageError naming the field.
 */
export function validatePackageSpec(v: unknown, where = 'package spec'): PackageSpec {
  const c = new SpecChecker(where);
  const s = c.object(v, 'spec');
  c.text(s.name, 'name', 255);
  c.text(s.version, 'version', 128);
  c.optionalText(s.description, 'description', SPEC_LIMITS.description);
  if (s.builder !== undefined) c.text(s.builder, 'builder', 64);
  const objects = c.array(s.objects, 'objects', SPEC_LIMITS.objects).map((o, i) => c.fileName(o, `objects[${i}]`));
  const guest = s.guest === undefined ? undefined : c.guest(s.guest, 'guest');
  if (objects.length === 0 && !guest) c.fail('objects', 'is empty (a package has at least one BPF object)');
  c.unique(objects, 'objects');
  const objectOf = (o: unknown, path: string): string => {
    const f = c.fileName(o, path);
    if (!objects.includes(f)) c.fail(path, `${JSON.stringify(f)} is not one of the package's objects`);
    return f;
  };
  if (s.alternatives !== undefined) {
    const alts = c.array(s.alternatives, 'alternatives', SPEC_LIMITS.objects).map((a, i) => {
      const at = `alternatives[${i}]`;
      const o = c.object(a, at);
      const file = c.fileName(o.file, `${at}.file`);
      if (objects.includes(file)) c.fail(`${at}.file`, `${JSON.stringify(file)} is also one of the package's objects`);
      const cpu = c.text(o.cpu, `${at}.cpu`, 8);
      if (!/^v[1-4]$/.test(cpu)) c.fail(`${at}.cpu`, `${JSON.stringify(cpu)} is not v1..v4`);
      return { object: objectOf(o.object, `${at}.object`), file };
    });
    c.unique(
      alts.map((a) => a.object),
      'alternatives (objects)',
    );
    c.unique(
      alts.map((a) => a.file),
      'alternatives (files)',
    );
  }

  if (s.linearHistograms !== undefined)
    for (const [i, o] of c.array(s.linearHistograms, 'linearHistograms', SPEC_LIMITS.objects).entries())
      objectOf(o, `linearHistograms[${i}]`);

  const programs = c.array(s.programs, 'programs', SPEC_LIMITS.programs);
  programs.forEach((p, i) => {
    const at = `programs[${i}]`;
    const o = c.object(p, at);
    c.identifier(o.name, `${at}.name`);
    objectOf(o.object, `${at}.object`);
    c.text(o.section, `${at}.section`);
    c.kindWord(o.type, `${at}.type`);
    c.attach(o.attach, `${at}.attach`);
    if (o.optional !== undefined && typeof o.optional !== 'boolean') c.fail(`${at}.optional`, 'is not true or false');
    if (o.group !== undefined) c.identifier(o.group, `${at}.group`);
    if (o.record !== undefined) c.identifier(o.record, `${at}.record`);
    if (o.order !== undefined) {
      const order = parseOrder(o.order);
      if (typeof order === 'string') c.fail(`${at}.order`, order);
      const hook = (o.attach as AttachSpec).hook;
      if (hook !== 'cgroup' && hook !== 'tc')
        c.fail(`${at}.order`, `${hook} hooks have no program order (only cgroup and tc)`);
    }
  });
  c.unique(
    programs.map((p) => (p as ProgramSpec).name),
    'programs',
  );

  let mapBytes = 0;
  const maps = c.array(s.maps ?? [], 'maps', SPEC_LIMITS.maps);
  maps.forEach((m, i) => {
    const at = `maps[${i}]`;
    const o = c.object(m, at);
    c.identifier(o.name, `${at}.name`);
    objectOf(o.object, `${at}.object`);
    const type = c.kindWord(o.type, `${at}.type`);
    const key = c.integer(o.keySize, `${at}.keySize`, SPEC_LIMITS.keySize);
    const value = c.integer(o.valueSize, `${at}.valueSize`, SPEC_LIMITS.valueSize);
    const ring = type === 'ringbuf' || type === 'user_ringbuf';
    const entries = c.integer(o.maxEntries, `${at}.maxEntries`, ring ? SPEC_LIMITS.ringBytes : SPEC_LIMITS.maxEntries);
    const bytes = ring ? entries : (key + value) * entries;
    if (bytes > SPEC_LIMITS.mapBytes)
      c.fail(at, `needs about ${bytes} bytes of kernel memory, more than the ${SPEC_LIMITS.mapBytes} one map may`);
    mapBytes += bytes;
    if (o.pin !== undefined && typeof o.pin !== 'boolean') c.fail(`${at}.pin`, 'is not true or false');
    if (o.share !== undefined) {
      const share = c.text(o.share, `${at}.share`, 200);
      if (!SHARE.test(share)) c.fail(`${at}.share`, `${JSON.stringify(share)} is not INSTANCE[:MAP]`);
    }
    if (o.programs !== undefined) {
      if (type !== 'prog_array') c.fail(`${at}.programs`, 'is only for a program array (prog_array)');
      for (const [i, prog] of Object.entries(c.object(o.programs, `${at}.programs`))) {
        const n = Number(i);
        if (!/^\d+$/.test(i) || n >= entries) c.fail(`${at}.programs.${i}`, `is not an index below ${entries}`);
        c.identifier(prog, `${at}.programs.${i}`);
      }
    }
  });
  if (mapBytes > SPEC_LIMITS.packageMapBytes)
    c.fail('maps', `need about ${mapBytes} bytes in all, more than the ${SPEC_LIMITS.packageMapBytes} a package may`);
  const mapNames = maps.map((m) => (m as MapEntrySpec).name);
  c.unique(mapNames, 'maps');

  const config = c.array(s.config ?? [], 'config', SPEC_LIMITS.config);
  config.forEach((x, i) => {
    const at = `config[${i}]`;
    const o = c.object(x, at);
    c.identifier(o.name, `${at}.name`);
    objectOf(o.object, `${at}.object`);
    c.text(o.section, `${at}.section`);
    c.text(o.type, `${at}.type`);
    c.integer(o.size, `${at}.size`, SPEC_LIMITS.configSize);
    c.optionalText(o.description, `${at}.description`, SPEC_LIMITS.description);
  });
  c.unique(
    config.map((x) => (x as ConfigVarSpec).name),
    'config',
  );

  const events = c.array(s.events ?? [], 'events', SPEC_LIMITS.events);
  events.forEach((e, i) => {
    const at = `events[${i}]`;
    const o = c.object(e, at);
    const map = c.identifier(o.map, `${at}.map`);
    if (!mapNames.includes(map)) c.fail(`${at}.map`, `${JSON.stringify(map)} is not one of the package's maps`);
    objectOf(o.object, `${at}.object`);
    c.oneOf(o.kind, `${at}.kind`, ['ringbuf', 'perf'] as const);
    if (o.type !== '') c.identifier(o.type, `${at}.type`);
    if (o.pollMs !== undefined) {
      c.integer(o.pollMs, `${at}.pollMs`, SPEC_LIMITS.pollMs, 1);
      if (o.kind !== 'ringbuf') c.fail(`${at}.pollMs`, 'is only for a ring buffer');
    }
    if (o.columns !== undefined)
      c.array(o.columns, `${at}.columns`, SPEC_LIMITS.columns).forEach((col, j) => {
        const name = c.text(col, `${at}.columns[${j}]`, SPEC_LIMITS.identifier);
        if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name))
          c.fail(`${at}.columns[${j}]`, `${JSON.stringify(name)} is not a field name`);
      });
    if (o.format !== undefined) {
      const fmt = Object.entries(c.object(o.format, `${at}.format`));
      if (fmt.length > SPEC_LIMITS.columns) c.fail(`${at}.format`, `has more than ${SPEC_LIMITS.columns} fields`);
      for (const [field, f] of fmt) {
        const fat = `${at}.format.${field}`;
        c.identifier(field, `${at}.format (a field name)`);
        const kind = c.oneOf(c.object(f, fat).kind, `${fat}.kind`, FIELD_FORMAT_KINDS);
        if (kind === 'flags' || kind === 'enum')
          c.array((f as { names?: unknown }).names, `${fat}.names`, 4096).forEach((n, j) => {
            if (!Array.isArray(n) || n.length !== 2 || typeof n[1] !== 'number')
              c.fail(`${fat}.names[${j}]`, 'is not [NAME, VALUE]');
            c.identifier((n as unknown[])[0], `${fat}.names[${j}][0]`);
          });
        if (kind === 'inet') c.identifier((f as { family?: unknown }).family, `${fat}.family`);
        if (kind === 'stack-id') c.identifier((f as { map?: unknown }).map, `${fat}.map`);
        if (kind === 'text' && (f as { size?: unknown }).size !== undefined)
          c.identifier((f as { size?: unknown }).size, `${fat}.size`);
        if (kind === 'stack' || kind === 'stack-id') {
          const st = f as { space?: unknown; pid?: unknown };
          if (st.space !== undefined) c.oneOf(st.space, `${fat}.space`, ['kernel', 'user'] as const);
          if (st.pid !== undefined) c.identifier(st.pid, `${fat}.pid`);
          const size = (f as { size?: unknown }).size;
          if (size !== undefined) c.identifier(size, `${fat}.size`);
        }
      }
    }
  });
  if (s.logs !== undefined) {
    const l = c.object(s.logs, 'logs');
    for (const k of Object.keys(l))
      if (k !== 'maxBytes' && k !== 'keep') c.fail(`logs.${k}`, 'is not a log setting (maxBytes, keep)');
    if (l.maxBytes !== undefined)
      c.integer(l.maxBytes, 'logs.maxBytes', LOG_LIMITS.maxTotalBytes, LOG_LIMITS.minFileBytes);
    if (l.keep !== undefined) c.integer(l.keep, 'logs.keep', LOG_LIMITS.maxKeep);
    const problem = logLimitsProblem(l as LogLimits);
    if (problem) c.fail('logs', problem);
  }
  return s as unknown as PackageSpec;
}

/** True when a config blob claims to be a built package spec (it lists objects): then it must pass the schema. */
export function claimsPackageSpec(config: unknown): boolean {
  return config !== null && typeof config === 'object' && Object.hasOwn(config, 'objects');
}

/** INSTANCE[:MAP] of a shared map, split (the map's name defaults to `map`); undefined if malformed. */
export function parseShare(value: string, map: string): { instance: string; map: string } | undefined {
  if (!SHARE.test(value)) return undefined;
  const i = value.indexOf(':');
  return i < 0 ? { instance: value, map } : { instance: value.slice(0, i), map: value.slice(i + 1) };
}
