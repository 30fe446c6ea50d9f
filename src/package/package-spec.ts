// The kbpf package spec: what a package says about itself. `kbpf build` derives most of it from
// the compiled objects (section names, BTF) and merges what kbpf.yaml adds; it is stored as the
// OCI config blob, and the agent realises an instance from it.

export type AttachSpec =
  | { hook: 'tracepoint'; target: string }
  | { hook: 'raw_tracepoint'; target: string }
  | { hook: 'cgroup'; type: string; target?: string }
  | { hook: 'xdp'; target?: string; mode?: 'generic' | 'native' | 'auto' }
  | { hook: 'tc'; direction: 'ingress' | 'egress'; target?: string }
  | { hook: 'sockmap'; map: string; type?: string }
  | { hook: 'uprobe' | 'uretprobe'; target: string; pid?: number }
  | { hook: 'none' };

export type HookName = AttachSpec['hook'];
export const HOOKS: readonly HookName[] = [
  'tracepoint',
  'raw_tracepoint',
  'cgroup',
  'xdp',
  'tc',
  'sockmap',
  'uprobe',
  'uretprobe',
  'none',
];

export interface ProgramSpec {
  name: string;
  /** file name of the ELF object (a layer title) */
  object: string;
  section: string;
  type: string;
  attach: AttachSpec;
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
}

export interface PackageSpec {
  name: string;
  version: string;
  description?: string;
  /** ELF object file names, one per .bpf.c */
  objects: string[];
  programs: ProgramSpec[];
  config: ConfigVarSpec[];
  maps: MapEntrySpec[];
  events: EventSpec[];
  /** kbpf version that built it */
  builder: string;
}

/** What a user may override per instance at run time. */
export interface AttachOverrides {
  cgroup?: string;
  iface?: string;
  /** per program: a full attach target (e.g. a different tracepoint) */
  programs?: Record<string, string>;
}

/** Where each program attaches for one instance: spec targets with run-time overrides applied. */
export function resolveAttach(
  spec: ProgramSpec,
  overrides: AttachOverrides = {},
  defaults = { cgroup: '/sys/fs/cgroup/unified' },
): AttachSpec {
  const a = spec.attach;
  const explicit = overrides.programs?.[spec.name];
  switch (a.hook) {
    case 'cgroup':
      return { ...a, target: explicit ?? overrides.cgroup ?? a.target ?? defaults.cgroup };
    case 'xdp':
    case 'tc':
      return { ...a, target: explicit ?? overrides.iface ?? a.target };
    case 'tracepoint':
    case 'raw_tracepoint':
    case 'uprobe':
    case 'uretprobe':
      return { ...a, target: explicit ?? a.target };
    default:
      return a;
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
    case 'none':
      return 'not attached';
    default:
      return `${a.hook} ${a.target}`;
  }
}
