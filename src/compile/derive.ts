// What a compiled object says about itself: programs and where their sections attach, maps,
// config variables (const volatile globals in .rodata, with their defaults) and event buffers.
// kbpf.yaml only adds to this.
import { BpfObject, type Btf, readElfSectionHeaders, readObjectBtf } from 'kbpf/bpf';
import {
  AGENT_GLOBAL_PREFIX,
  type AttachSpec,
  type ConfigVarSpec,
  type EventSpec,
  type KernelTargetHook,
  type MapEntrySpec,
  type ProgramSpec,
} from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import { BuildError } from './errors.js';
import { recordSizes, seqWriteSizes } from './record-sizes.js';

/** A program as its section describes it; attach is undefined where kbpf.yaml must say. */
export type DerivedProgram = Omit<ProgramSpec, 'attach'> & { attach?: AttachSpec };

export interface DerivedObject {
  programs: DerivedProgram[];
  maps: MapEntrySpec[];
  config: ConfigVarSpec[];
  events: EventSpec[];
  /** struct names in the object's BTF, and typedef names of structs (to check event types) */
  structs: Set<string>;
  /** the object's BTF (to work out how events show) */
  btf?: Btf;
  /** maps whose values hold a kernel object that lives only while a file holds the map (a bpf_timer, …), and which one */
  fileBound: Map<string, string>;
}

/**
 * Value types the kernel frees or refuses once no file holds their map (bpf_timer_init is refused
 * with EPERM and armed timers are cancelled when the map's last file reference goes): a map
 * holding one must be pinned to work after the loader has closed its files.
 */
const FILE_BOUND_TYPES = new Set(['bpf_timer', 'bpf_wq']);

/** The first file-bound struct found in type `id` (members, array elements, typedefs), if any. */
function fileBoundType(btf: Btf, id: number, seen = new Set<number>()): string | undefined {
  if (!id || seen.has(id)) return undefined;
  seen.add(id);
  const t = btf.type(btf.resolve(id));
  if (t.kind === 'ARRAY') return fileBoundType(btf, t.type, seen);
  if (t.kind !== 'STRUCT' && t.kind !== 'UNION') return undefined;
  if (FILE_BOUND_TYPES.has(t.name)) return t.name;
  for (const m of t.members) {
    const found = fileBoundType(btf, m.type, seen);
    if (found) return found;
  }
  return undefined;
}

/** The ring buffer `kbpf build` gives an object whose source calls bpf_printk, and its record. */
export const PRINTK_MAP = 'kbpf_printk';
export const PRINTK_RECORD = 'kbpf_printk_line';
const KEEP_TYPE_MARKER = '__kbpf_type_';

/**
 * The record struct of an event buffer whose source did not say (no KBPF_EVENT): among the
 * structs the package defines (kept in BTF by kbpf build), the one of the size the programs
 * write into the map; else one named "event"; else none (the events show as bytes).
 */
export function inferRecordType(
  btf: Btf | undefined,
  map: string,
  sizes: Set<number> | undefined,
  structs: Set<string>,
): string {
  if (map.startsWith(PRINTK_MAP)) return PRINTK_RECORD;
  if (!btf) return '';
  const own: { name: string; size: number }[] = [];
  for (const t of btf.types())
    if (t.kind === 'VAR' && t.name.startsWith(KEEP_TYPE_MARKER)) {
      const name = t.name.slice(KEEP_TYPE_MARKER.length);
      const s = btf.findStruct(name);
      if (s && name !== PRINTK_RECORD) own.push({ name, size: s.type.size });
    }
  if (sizes?.size === 1) {
    const [size] = [...sizes];
    const fit = own.filter((o) => o.size === size);
    if (fit.length === 1) return fit[0]!.name;
    const named = fit.find((o) => /event/i.test(o.name));
    if (named) return named.name;
  }
  // records cut to a filled prefix of the struct (sslsniff's: the header, then as much of its
  // buffer as was read): every size reaches the struct's largest array member, none passes the struct
  if (sizes?.size) {
    const prefix = own.filter((o) => {
      const t = btf.findStruct(o.name)?.type;
      if (t?.kind !== 'STRUCT') return false;
      let start = -1;
      let widest = 0;
      t.members.forEach((m, i) => {
        const at = m.bitOffset / 8;
        const width = (i + 1 < t.members.length ? t.members[i + 1]!.bitOffset / 8 : t.size) - at;
        if (btf.type(btf.resolve(m.type)).kind === 'ARRAY' && width > widest) [start, widest] = [at, width];
      });
      return start >= 0 && [...sizes].every((n) => n >= start && n <= o.size);
    });
    if (prefix.length === 1) return prefix[0]!.name;
  }
  if (structs.has('event')) return 'event';
  return own.length === 1 && !sizes ? own[0]!.name : '';
}

const EVENT_MARKER = '__kbpf_event_';

const CGROUP_SECTIONS =
  /^cgroup\/(connect[46]|connect_unix|bind[46]|post_bind[46]|sendmsg[46]|sendmsg_unix|recvmsg[46]|recvmsg_unix|getpeername[46]|getpeername_unix|getsockname[46]|getsockname_unix|getsockopt|setsockopt|sock_create|sock_release|sock|sysctl|dev)$/;

/**
 * libbpf's section prefixes whose rest (after "/") names one kernel target, and the hook each
 * means. Sleepable variants (".s") attach the same way. kprobe targets may carry "+OFFSET".
 */
const KERNEL_TARGET_SECTIONS: [RegExp, KernelTargetHook][] = [
  [/^kprobe\/(.+)$/, 'kprobe'],
  [/^kretprobe\/(.+)$/, 'kretprobe'],
  [/^ksyscall\/(.+)$/, 'ksyscall'],
  [/^kretsyscall\/(.+)$/, 'kretsyscall'],
  [/^kprobe\.(?:multi|session)\/(.+)$/, 'kprobe_multi'],
  [/^kretprobe\.multi\/(.+)$/, 'kretprobe_multi'],
  [/^fentry\.multi(?:\.s)?\/(.+)$/, 'fentry_multi'],
  [/^fexit\.multi(?:\.s)?\/(.+)$/, 'fexit_multi'],
  [/^fsession\.multi(?:\.s)?\/(.+)$/, 'fsession_multi'],
  [/^fsession(?:\.s)?\/(.+)$/, 'fsession'],
  [/^fentry(?:\.s)?\/(.+)$/, 'fentry'],
  [/^fexit(?:\.s)?\/(.+)$/, 'fexit'],
  [/^fmod_ret(?:\.s)?\/(.+)$/, 'fmod_ret'],
  [/^tp_btf(?:\.s)?\/(.+)$/, 'tp_btf'],
  [/^lsm(?:\.s)?\/(.+)$/, 'lsm'],
  [/^iter(?:\.s)?\/(.+)$/, 'iter'],
];

/**
 * Sections that load but attach to nothing kbpf can name at run: a socket filter and a
 * sk_reuseport program are attached to a socket by its owner, xdp/devmap and xdp/cpumap ones
 * are run by a map, syscall programs are run by BPF_PROG_RUN, lwt and lirc ones by their tools,
 * freplace ones replace a function of another program.
 */
const LOAD_ONLY_SECTIONS =
  /^(socket|syscall|sk_reuseport(\/migrate)?|xdp(\.frags)?\/(devmap|cpumap)|lwt_(in|out|xmit|seg6local)|lirc_mode2|action|freplace\/.+|cgroup\/skb|sk_skb|netkit\/(primary|peer))$/;

/**
 * The attach spec a section name implies — for every program type and section prefix in
 * libbpf's section table. Sections without a target (`kprobe`, `uprobe`, `usdt`, `perf_event`,
 * `netfilter`) get a spec without one: the package builds and run asks for it. Undefined only
 * for a section libbpf does not know either (kbpf.yaml must say) and for an sk_msg/sk_skb
 * program of an object with more than one sockmap.
 */
export function attachFromSection(section: string, maps: MapEntrySpec[]): AttachSpec | undefined {
  let m = /^(?:tracepoint|tp)(?:\.s)?\/(.+\/.+)$/.exec(section);
  if (m) return { hook: 'tracepoint', target: m[1]! };
  m = /^(?:raw_tracepoint|raw_tp)(?:\.[sw])?\/(.+)$/.exec(section);
  if (m) return { hook: 'raw_tracepoint', target: m[1]! };
  // bare sections (libbpf attaches them only by hand: learning-ebpf's SEC("raw_tp/")): run asks
  if (/^(?:raw_tracepoint|raw_tp)(?:\.[sw])?\/?$/.test(section)) return { hook: 'raw_tracepoint' };
  if (/^(?:tracepoint|tp)(?:\.s)?\/?$/.test(section)) return { hook: 'tracepoint' };
  // a tracepoint section that names no CATEGORY/NAME ("tp/unused"): libbpf cannot attach it either;
  // loaders keep such programs as tail-call targets (bpf-developer-tutorial's pidhide)
  if (/^(?:tracepoint|tp)(?:\.s)?\/[^/]+$/.test(section)) return { hook: 'none' };
  // a bare kprobe or kretprobe (its loader attaches it where the user says): run asks for the function
  m = /^(kprobe|kretprobe)$/.exec(section);
  if (m) return { hook: m[1] as 'kprobe' | 'kretprobe' };
  for (const [re, hook] of KERNEL_TARGET_SECTIONS) {
    m = re.exec(section);
    if (m) return { hook, target: m[1]! };
  }
  m = /^(uprobe|uretprobe)(?:\.multi|(?<=^uprobe)\.session)?(?:\.s)?(?:\/(.*))?$/.exec(section);
  if (m) {
    const hook = m[1] as 'uprobe' | 'uretprobe';
    // "/proc/self/exe" is the loading program's own binary (libbpf-bootstrap's uprobe example
    // probes itself); under kbpf the loader is the agent, so the section names no target and
    // run asks for one
    if (m[2]?.startsWith('/proc/self/exe:')) return { hook };
    return m[2]?.includes(':') ? { hook, target: m[2] } : { hook };
  }
  m = /^usdt(?:\.s)?(?:\/(.*))?$/.exec(section);
  if (m) return m[1] && m[1].split(':').length >= 3 ? { hook: 'usdt', target: m[1] } : { hook: 'usdt' };
  if (section === 'perf_event') return { hook: 'perf_event' };
  if (section === 'sk_lookup') return { hook: 'sk_lookup' };
  if (section === 'flow_dissector') return { hook: 'flow_dissector' };
  if (section === 'netfilter') return { hook: 'netfilter' };
  if (/^struct_ops(\.s)?(\/.*)?$/.test(section)) {
    const ops = maps.filter((x) => x.type === 'struct_ops');
    return ops.length === 1 ? { hook: 'struct_ops', map: ops[0]!.name } : { hook: 'struct_ops' };
  }
  m = CGROUP_SECTIONS.exec(section);
  if (m) return { hook: 'cgroup', type: m[1]! };
  m = /^cgroup_skb\/(ingress|egress)$/.exec(section);
  if (m) return { hook: 'cgroup', type: `skb_${m[1]}` };
  if (section === 'sockops') return { hook: 'cgroup', type: 'sock_ops' };
  if (/^lsm_cgroup\/.+$/.test(section)) return { hook: 'cgroup', type: 'lsm_cgroup' };
  if (LOAD_ONLY_SECTIONS.test(section)) return { hook: 'none' };
  if (section === 'xdp' || section === 'xdp.frags' || section.startsWith('xdp/')) return { hook: 'xdp' };
  m = /^(?:tc|tcx|classifier)(?:\/(ingress|egress))?$/.exec(section);
  if (m) return { hook: 'tc', direction: (m[1] as 'ingress' | 'egress') ?? 'ingress' };
  if (section === 'sk_msg' || section.startsWith('sk_skb/')) {
    const sockmaps = maps.filter((x) => x.type === 'sockmap' || x.type === 'sockhash');
    return sockmaps.length === 1 ? { hook: 'sockmap', map: sockmaps[0]!.name } : undefined;
  }
  return undefined;
}

export function deriveFromObject(file: string, bytes: Uint8Array): DerivedObject {
  let obj: BpfObject;
  try {
    obj = BpfObject.open(bytes, { name: file.replace(/\.o$/, '').replace(/\.bpf$/, '') });
  } catch (e) {
    // BPF arena (globals in __arena, an arena map): newer than the libbpf kbpf loads with
    const arena = readElfSectionHeaders(bytes).some((s) => s.name.startsWith('.addr_space.'));
    const why = arena
      ? ': it uses a BPF arena (an arena map and __arena globals in .addr_space.1), which needs libbpf 1.4+ to open; kbpf loads objects with libbpf 1.1'
      : '';
    throw new BuildError(`${file}: not a loadable BPF object${why}: ${(e as Error).message}`);
  }
  try {
    const maps: MapEntrySpec[] = [];
    for (const [name, m] of obj.maps) {
      if (name.startsWith('.')) continue; // .rodata/.data/.bss/.kconfig: config variables, not maps
      maps.push({
        name,
        object: file,
        type: m.type,
        keySize: m.keySize,
        valueSize: m.valueSize,
        maxEntries: m.maxEntries,
        pin: true,
      });
    }
    const programs: DerivedProgram[] = [...obj.programs.values()].map((p) => ({
      name: p.name,
      object: file,
      section: p.section,
      type: p.type,
      attach: attachFromSection(p.section, maps),
    }));
    const config: ConfigVarSpec[] = obj
      .globals()
      // a function's static locals (bpf_printk's format strings: "func.___fmt") are not settable
      .filter(
        (g) =>
          g.section.startsWith('.rodata') && /^[A-Za-z_]\w*$/.test(g.name) && !g.name.startsWith(AGENT_GLOBAL_PREFIX),
      )
      .map((g) => ({
        name: g.name,
        object: file,
        section: g.section,
        type: g.typeName,
        size: g.size,
        default: jsonValue(obj.getGlobal(g.name)),
      }));
    // KBPF_EVENT(map, struct x) leaves a global "__kbpf_event_<map>" of type "struct x *"
    const eventTypes = new Map(
      obj
        .globals()
        .filter((g) => g.name.startsWith(EVENT_MARKER))
        .map((g) => [g.name.slice(EVENT_MARKER.length), /^(?:struct )?(\w+) \*$/.exec(g.typeName)?.[1] ?? '']),
    );
    const structs = new Set<string>();
    const btf = readObjectBtf(bytes);
    if (btf) {
      for (let id = 1; id < btf.typeCount; id++) {
        const t = btf.type(id);
        if (t.kind === 'STRUCT' && t.name) structs.add(t.name);
        // typedef struct { ... } NAME: the struct goes by the typedef's name
        if (t.kind === 'TYPEDEF' && t.name && btf.type(btf.resolve(id)).kind === 'STRUCT') structs.add(t.name);
      }
    }
    const sizes = recordSizes(bytes);
    // an iterator that writes binary records (bpf_seq_write of one struct): its output decodes as them
    const seqSizes = seqWriteSizes(bytes);
    for (const p of programs) {
      const written = p.attach?.hook === 'iter' ? seqSizes.get(p.section) : undefined;
      const record = written ? inferRecordType(btf, '', written, new Set()) : '';
      if (record) p.record = record;
    }
    const events: EventSpec[] = maps
      .filter((m) => m.type === 'ringbuf' || m.type === 'perf_event_array')
      .map((m) => ({
        map: m.name,
        object: file,
        kind: m.type === 'ringbuf' ? 'ringbuf' : 'perf',
        type:
          eventTypes.get(m.name) ??
          // `__type(value, struct event)` on the buffer (cilium/ebpf's examples say their record so)
          obj.mapValueStruct(m.name) ??
          inferRecordType(btf, m.name, sizes.get(m.name), structs),
      }));
    const fileBound = new Map<string, string>();
    if (btf)
      for (const [name, m] of obj.maps) {
        if (name.startsWith('.')) continue;
        const held = fileBoundType(btf, m.valueTypeId);
        if (held) fileBound.set(name, held);
      }
    return { programs, maps, config, events, structs, btf, fileBound };
  } finally {
    obj.close();
  }
}
