// What a compiled object says about itself: programs and where their sections attach, maps,
// config variables (const volatile globals in .rodata, with their defaults) and event buffers.
// kbpf.yaml only adds to this.
import { BpfObject } from 'kbpf/bpf';
import type { AttachSpec, ConfigVarSpec, EventSpec, MapEntrySpec, ProgramSpec } from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import { BuildError } from './errors.js';

/** A program as its section describes it; attach is undefined where kbpf.yaml must say. */
export type DerivedProgram = Omit<ProgramSpec, 'attach'> & { attach?: AttachSpec };

export interface DerivedObject {
  programs: DerivedProgram[];
  maps: MapEntrySpec[];
  config: ConfigVarSpec[];
  events: EventSpec[];
  /** struct names in the object's BTF (to check event types) */
  structs: Set<string>;
}

const EVENT_MARKER = '__kbpf_event_';

const CGROUP_SECTIONS =
  /^cgroup\/(connect[46]|bind[46]|post_bind[46]|sendmsg[46]|recvmsg[46]|getpeername[46]|getsockname[46]|getsockopt|setsockopt|sock_create|sock_release|sock|sysctl|dev)$/;

/** The attach spec a section name implies, or undefined if it needs kbpf.yaml to say. */
export function attachFromSection(section: string, maps: MapEntrySpec[]): AttachSpec | undefined {
  let m = /^(?:tracepoint|tp)\/(.+\/.+)$/.exec(section);
  if (m) return { hook: 'tracepoint', target: m[1]! };
  m = /^(?:raw_tracepoint|raw_tp)\/(.+)$/.exec(section);
  if (m) return { hook: 'raw_tracepoint', target: m[1]! };
  m = /^(uprobe|uretprobe)\/(.+:.+)$/.exec(section);
  if (m) return { hook: m[1] as 'uprobe' | 'uretprobe', target: m[2]! };
  m = CGROUP_SECTIONS.exec(section);
  if (m) return { hook: 'cgroup', type: m[1]! };
  m = /^cgroup_skb\/(ingress|egress)$/.exec(section);
  if (m) return { hook: 'cgroup', type: `skb_${m[1]}` };
  if (section === 'sockops') return { hook: 'cgroup', type: 'sock_ops' };
  if (section === 'xdp' || section.startsWith('xdp/')) return { hook: 'xdp' };
  m = /^(?:tc|tcx|classifier)(?:\/(ingress|egress))?$/.exec(section);
  if (m) return { hook: 'tc', direction: (m[1] as 'ingress' | 'egress') ?? 'ingress' };
  if (section === 'sk_msg' || section.startsWith('sk_skb')) {
    const sockmaps = maps.filter((x) => x.type === 'sockmap' || x.type === 'sockhash');
    return sockmaps.length === 1 ? { hook: 'sockmap', map: sockmaps[0]!.name } : undefined;
  }
  if (section === 'syscall' || section === 'socket') return { hook: 'none' };
  return undefined;
}

export function deriveFromObject(file: string, bytes: Uint8Array): DerivedObject {
  let obj: BpfObject;
  try {
    obj = BpfObject.open(bytes, { name: file.replace(/\.o$/, '').replace(/\.bpf$/, '') });
  } catch (e) {
    throw new BuildError(`${file}: not a loadable BPF object: ${(e as Error).message}`);
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
      .filter((g) => g.section.startsWith('.rodata'))
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
        .map((g) => [g.name.slice(EVENT_MARKER.length), /^struct (\w+) \*$/.exec(g.typeName)?.[1] ?? '']),
    );
    const events: EventSpec[] = maps
      .filter((m) => m.type === 'ringbuf' || m.type === 'perf_event_array')
      .map((m) => ({
        map: m.name,
        object: file,
        kind: m.type === 'ringbuf' ? 'ringbuf' : 'perf',
        type: eventTypes.get(m.name) ?? '',
      }));
    const structs = new Set<string>();
    const btf = obj.btf;
    if (btf) {
      for (let id = 1; id < btf.typeCount; id++) {
        const t = btf.type(id);
        if (t.kind === 'STRUCT' && t.name) structs.add(t.name);
      }
    }
    return { programs, maps, config, events, structs };
  } finally {
    obj.close();
  }
}
