// The kernel operations an instance of BPF programs is made of, through the runtime: open a
// package's objects with config set, attach one program as its spec says, detach a revision,
// drop a revision's pins, read the kernel ids a revision holds. The program planner
// (program-planner.ts) puts them in order, each with its undo.
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  attachAuto,
  attachCgroup,
  attachIter,
  attachKprobe,
  attachNetfilter,
  attachNetns,
  attachPerfEvent,
  attachRawTracepoint,
  attachSockmap,
  attachStructOps,
  attachTcx,
  attachTracepoint,
  attachUprobe,
  attachUprobeMulti,
  attachUsdt,
  attachXdp,
  BpfError,
  BpfMap,
  BpfObject,
  type HookPosition,
  infoOfId,
  Link,
  onlyStructOpsMap,
  Program,
  switchStructOpsBack,
} from 'kbpf/bpf';
import { CorruptedError, InvalidError, KbpfError, Unsupported } from '../errors.js';
import { type AttachSpec, type PackageSpec, SPEC_LIMITS } from '../package/package-spec.js';
import { coerceConfigValue, resolveConfig } from './config-values.js';
import type { FetchedPackage } from './package-cache.js';
import type { InstancePins } from './pins.js';
import { MULTI_SECTION, SESSION_SECTION } from './program-choice.js';

/** Kernel ids of what one revision holds, by program / map name. */
export interface KernelIds {
  progs: Map<string, number>;
  links: Map<string, number>;
  maps: Map<string, number>;
}

export function noKernelIds(): KernelIds {
  return { progs: new Map(), links: new Map(), maps: new Map() };
}

/** Map types whose max_entries must stay 0 (storage maps), or that libbpf sizes itself. */
const SIZED_BY_KERNEL = new Set([
  'perf_event_array',
  'cgroup_storage',
  'percpu_cgroup_storage',
  'sk_storage',
  'inode_storage',
  'task_storage',
  'cgrp_storage',
  'struct_ops',
]);

/**
 * What a stack trace map its loader sizes at run time gets (bcc's libbpf-tools: 1024 stacks of
 * 127 frames, 127 being the kernel's default perf_event_max_stack).
 */
export const STACK_MAP_DEFAULT = { maxEntries: 1024, frames: 127 };

/**
 * Sets each map's max_entries before load: `sizes` (run --map-size) over the package's spec
 * (kbpf.yaml maps.X.maxEntries, or the object's own). A map left at 0 that needs a size is
 * refused, naming it.
 */
export function applyMapSizes(
  spec: PackageSpec,
  objects: Map<string, BpfObject>,
  sizes: Record<string, number> = {},
): void {
  for (const name of Object.keys(sizes))
    if (!spec.maps.some((m) => m.name === name))
      throw new InvalidError(
        `--map-size ${name}: the package has no map "${name}" (maps: ${spec.maps.map((m) => m.name).join(', ') || 'none'})`,
      );
  for (const m of spec.maps) {
    const obj = objects.get(m.object)!;
    const given = Object.hasOwn(sizes, m.name) ? sizes[m.name] : undefined;
    if (given !== undefined && (!Number.isSafeInteger(given) || given < 1 || given > SPEC_LIMITS.maxEntries))
      throw new InvalidError(`--map-size ${m.name}=${given}: the size must be 1..${SPEC_LIMITS.maxEntries}`);
    const want = given ?? (m.maxEntries > 0 ? m.maxEntries : undefined);
    const current = obj.mapMaxEntries(m.name);
    if (m.type === 'stack_trace' && obj.mapValueSize(m.name) === 0)
      obj.setMapValueSize(m.name, STACK_MAP_DEFAULT.frames * 8);
    // `__type(value, struct event)` on an event buffer names its record (cilium/ebpf's examples):
    // the kernel wants 4-byte keys and values (CPU → perf event fd) or none (a ring buffer)
    const eventSizes = m.type === 'perf_event_array' ? 4 : m.type === 'ringbuf' ? 0 : undefined;
    if (eventSizes !== undefined) {
      if (obj.mapKeySize(m.name) !== eventSizes) obj.setMapKeySize(m.name, eventSizes);
      if (obj.mapValueSize(m.name) !== eventSizes) obj.setMapValueSize(m.name, eventSizes);
    }
    if (want === undefined && current === 0 && m.type === 'stack_trace') {
      obj.resizeMap(m.name, STACK_MAP_DEFAULT.maxEntries);
      continue;
    }
    if (want !== undefined) {
      if (want !== current) obj.resizeMap(m.name, want);
    } else if (current === 0 && !SIZED_BY_KERNEL.has(m.type)) {
      throw new InvalidError(
        `map ${m.name} (${m.type}) has max_entries 0 in the object (its own loader sizes it at run time): give its size with --map-size ${m.name}=N, or maps.${m.name}.maxEntries in kbpf.yaml`,
      );
    }
  }
}

/** The layout of a map as this object will create it (max_entries after sizing). */
export function layoutOf(
  obj: BpfObject,
  name: string,
): { type: string; keySize: number; valueSize: number; maxEntries: number } {
  const m = obj.map(name);
  return { type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: obj.mapMaxEntries(name) };
}

export function describeLayout(m: { type: string; keySize: number; valueSize: number; maxEntries: number }): string {
  return `${m.type}, key ${m.keySize} B, value ${m.valueSize} B, ${m.maxEntries} entries`;
}

/**
 * Opens the package's objects and applies config; validates everything before any load. The
 * objects in `alternative` are opened from their other build (pkg.alternatives).
 */
export function openConfigured(
  pkg: FetchedPackage,
  config: Record<string, unknown>,
  mapSizes?: Record<string, number>,
  alternative: ReadonlySet<string> = new Set(),
): Map<string, BpfObject> {
  const spec = pkg.spec;
  const values = resolveConfig(spec.config, config);
  const objects = new Map<string, BpfObject>();
  try {
    for (const file of spec.objects) {
      const bytes = alternative.has(file) ? pkg.alternatives?.get(file)?.bytes : pkg.objects.get(file);
      if (!bytes) throw new CorruptedError(`package ${pkg.reference} has no layer ${file}`);
      objects.set(file, BpfObject.open(bytes, { name: `${spec.name}/${file.replace(/\.bpf\.o$|\.o$/, '')}` }));
    }
    for (const [k, v] of Object.entries(values)) {
      const decl = spec.config.find((c) => c.name === k)!;
      try {
        objects.get(decl.object)!.setGlobal(k, coerceConfigValue(decl, v));
      } catch (e) {
        throw new InvalidError(`config variable ${k} (${decl.type}): ${(e as BpfError).hint ?? (e as Error).message}`, {
          cause: e,
        });
      }
    }
    applyMapSizes(spec, objects, mapSizes);
    return objects;
  } catch (e) {
    for (const o of objects.values()) o.close();
    throw e;
  }
}

export function sameLayout(
  a: BpfMap,
  b: { type: string; keySize: number; valueSize: number; maxEntries: number },
): boolean {
  return a.type === b.type && a.keySize === b.keySize && a.valueSize === b.valueSize && a.maxEntries === b.maxEntries;
}

/** What attaching one program made: its links (one per CPU for perf events), and what to tell. */
export interface Attached {
  links: Link[];
  warning?: string;
  /** the link is an iterator's: reading it runs the program */
  iterator?: boolean;
}

const one = (link: Link | null): Attached => ({ links: link ? [link] : [] });

function splitTarget(target: string): [string, string] {
  const i = target.lastIndexOf(':');
  return [target.slice(0, i), target.slice(i + 1)];
}

/** Attaches one program as its (resolved) attach spec says. */
export function attachProgram(prog: Program, a: AttachSpec, obj: BpfObject, position?: HookPosition): Attached {
  switch (a.hook) {
    case 'cgroup':
      return one(attachCgroup(prog, a.target!, undefined, position));
    case 'tracepoint':
    case 'raw_tracepoint':
      if (!a.target)
        throw new InvalidError(`program ${prog.name} attaches to a ${a.hook}: give its name with --attach`);
      return one(a.hook === 'tracepoint' ? attachTracepoint(prog, a.target) : attachRawTracepoint(prog, a.target));
    case 'uprobe':
    case 'uretprobe': {
      if (!a.target)
        throw new InvalidError(`program ${prog.name} attaches to a ${a.hook}: give BINARY:SYMBOL with --attach`);
      const [binary, symbol] = splitTarget(a.target);
      const session = SESSION_SECTION.test(prog.section);
      if (session || MULTI_SECTION.test(prog.section))
        return one(
          attachUprobeMulti(prog, { binary, pattern: symbol, retprobe: a.hook === 'uretprobe', session, pid: a.pid })
            .link,
        );
      const m = /^(.*)\+(0x[0-9a-fA-F]+|\d+)$/.exec(symbol);
      return one(
        attachUprobe(prog, {
          binary,
          symbol: m ? m[1] || undefined : symbol,
          offset: m ? Number(m[2]) : undefined,
          retprobe: a.hook === 'uretprobe',
          pid: a.pid,
        }),
      );
    }
    case 'kprobe':
    case 'kretprobe':
      if (!a.target)
        throw new InvalidError(`program ${prog.name} attaches to a ${a.hook}: give FUNCTION with --attach`);
      return one(attachKprobe(prog, a.target, { retprobe: a.hook === 'kretprobe' }));
    case 'ksyscall':
    case 'kretsyscall':
    case 'kprobe_multi':
    case 'kretprobe_multi':
    case 'fentry':
    case 'fexit':
    case 'fmod_ret':
    case 'tp_btf':
    case 'lsm':
      // the target is in the section (BTF ids are resolved at open): libbpf attaches as it says
      return one(attachAuto(prog));
    case 'iter':
      return { links: [attachIter(prog)], iterator: true };
    case 'fsession':
    case 'fentry_multi':
    case 'fexit_multi':
    case 'fsession_multi':
      // the choice refuses them before load (hookSupport says why); reached only if it did not
      throw new KbpfError(Unsupported, `program ${prog.name}: kbpf cannot attach ${a.hook} programs yet`);
    case 'perf_event': {
      const [event, freq] = (a.target ?? '').split(':');
      const r = attachPerfEvent(prog, { event: event || undefined, frequency: freq ? Number(freq) : undefined });
      return { links: r.links, warning: r.warning };
    }
    case 'sk_lookup':
    case 'flow_dissector':
      return one(attachNetns(prog, a.target));
    case 'netfilter': {
      if (!a.target)
        throw new InvalidError(`program ${prog.name} attaches to netfilter: give FAMILY:HOOK with --attach`);
      const [family, hook, priority] = a.target.split(':');
      return one(attachNetfilter(prog, { family: family!, hook: hook!, priority: priority ? Number(priority) : 0 }));
    }
    case 'usdt': {
      const parts = (a.target ?? '').split(':');
      if (parts.length < 3 || parts.some((x) => !x))
        throw new InvalidError(
          `program ${prog.name} attaches to a USDT probe: give BINARY:PROVIDER:NAME with --attach`,
        );
      const [provider, name] = parts.slice(-2) as [string, string];
      return {
        links: attachUsdt(prog, obj, { binary: parts.slice(0, -2).join(':'), provider, name, pid: a.pid }).links,
      };
    }
    case 'struct_ops':
      // the map is registered once; each of its programs pins the map's link under its own name
      return one(attachStructOps(obj, a.map ?? onlyStructOpsMap(obj, prog.name)));
    case 'xdp':
      if (!a.target) throw new InvalidError(`program ${prog.name} attaches to XDP: name the interface with --iface`);
      return one(attachXdp(prog, a.target, a.mode ?? 'auto'));
    case 'tc':
      if (!a.target) throw new InvalidError(`program ${prog.name} attaches to tc: name the interface with --iface`);
      return one(attachTcx(prog, a.target, a.direction, position));
    case 'sockmap':
      return one(attachSockmap(prog, obj.map(a.map)));
    case 'none':
      return one(null);
  }
}

/** Pin names of a program's links: its name, or NAME@i for each of several (perf events per CPU). */
export function linkPinNames(program: string, count: number): string[] {
  return count === 1 ? [program] : Array.from({ length: count }, (_, i) => `${program}@${i}`);
}

/** Links that can be switched to another program in place (not perf-event based ones). */
export function updatable(a: AttachSpec): boolean {
  return a.hook === 'cgroup' || a.hook === 'xdp' || a.hook === 'tc' || a.hook === 'sockmap';
}

/** Detaches a revision's links and unloads its programs; keeps its maps (stop). */
export function unrealizeLinks(pins: InstancePins, rev: number): void {
  for (const name of pins.names(rev, 'links')) {
    try {
      const link = Link.fromPin(pins.path(rev, 'links', name));
      link.detach();
    } catch (e) {
      if (!(e instanceof BpfError && e.errno === constants.errno.ENOENT)) throw e;
    }
  }
  pins.removeKind(rev, 'links');
  pins.removeKind(rev, 'progs');
}

/** After a crash mid-upgrade: every link of revision `rev` points at that revision's program again. */
export function switchLinksBack(pins: InstancePins, rev: number): void {
  for (const name of pins.names(rev, 'links')) {
    if (!pins.has(rev, 'progs', name)) continue;
    const link = Link.fromPin(pins.path(rev, 'links', name));
    if (link.info().type === 'struct_ops') {
      // it registers a map: the revision's own struct_ops map goes back in its place
      try {
        switchStructOpsBackToRevision(pins, rev, link);
      } finally {
        link.close();
      }
      continue;
    }
    const prog = Program.fromPin(pins.path(rev, 'progs', name));
    try {
      if (link.info().progId !== prog.info().id) link.update(prog);
    } finally {
      link.close();
      prog.close();
    }
  }
}

function switchStructOpsBackToRevision(pins: InstancePins, rev: number, link: Link): void {
  for (const map of pins.names(rev, 'maps')) {
    const m = BpfMap.fromPin(pins.path(rev, 'maps', map));
    try {
      if (m.type === 'struct_ops' && link.info().mapId !== m.id) switchStructOpsBack(link, m);
    } catch {
      // another struct_ops map of the revision: the kernel refuses a map of another kind
    } finally {
      m.close();
    }
  }
}

/** Whether every program of the spec (and its link) is pinned in revision `rev`. */
export function isComplete(
  pins: InstancePins,
  rev: number,
  spec: PackageSpec,
  runs: ReadonlySet<string> = new Set(spec.programs.map((p) => p.name)),
): boolean {
  if (!pins.revisions().includes(rev)) return false;
  return spec.programs.every(
    (p) =>
      !runs.has(p.name) ||
      (pins.has(rev, 'progs', p.name) &&
        (p.attach.hook === 'none' || pins.has(rev, 'links', p.name) || pins.has(rev, 'links', `${p.name}@0`))),
  );
}

/** The kernel ids a revision's pins hold (read once, when an agent adopts what it finds pinned). */
export function pinnedIds(pins: InstancePins, rev: number): KernelIds {
  const ids = noKernelIds();
  for (const name of pins.names(rev, 'links')) {
    const id = idAt(pins.path(rev, 'links', name), 'link');
    if (id > 0) ids.links.set(name, id);
  }
  for (const name of pins.names(rev, 'progs')) {
    const id = idAt(pins.path(rev, 'progs', name), 'prog');
    if (id > 0) ids.progs.set(name, id);
  }
  for (const name of pins.names(rev, 'maps')) {
    const id = idAt(pins.path(rev, 'maps', name), 'map');
    if (id > 0) ids.maps.set(name, id);
  }
  return ids;
}

/**
 * Drops a revision's pins, detaching the links only it held. Links also pinned in another
 * revision (switched in place by an upgrade) stay attached. The kernel frees an unpinned link
 * from a work queue; this waits (bounded) until the dropped links are really gone, so that when
 * an upgrade returns the old programs no longer run.
 */
export async function removeRevisionPins(pins: InstancePins, rev: number): Promise<void> {
  const keep = new Set<number>();
  for (const other of pins.revisions()) {
    if (other === rev) continue;
    for (const name of pins.names(other, 'links')) keep.add(idAt(pins.path(other, 'links', name), 'link'));
  }
  const links = pins
    .names(rev, 'links')
    .map((n) => idAt(pins.path(rev, 'links', n), 'link'))
    .filter((id) => id > 0 && !keep.has(id));
  // a program's id goes only after its last link released it: then the hook no longer runs it
  const progs = pins
    .names(rev, 'progs')
    .map((n) => idAt(pins.path(rev, 'progs', n), 'prog'))
    .filter((id) => id > 0);
  pins.removeRevision(rev);
  const deadline = Date.now() + 2000;
  const alive = () =>
    links.some((id) => infoOfId('link', id) !== undefined) || progs.some((id) => infoOfId('prog', id) !== undefined);
  while (alive() && Date.now() < deadline) await sleep(5);
}

function idAt(path: string, kind: 'link' | 'prog' | 'map'): number {
  try {
    const obj = kind === 'link' ? Link.fromPin(path) : kind === 'prog' ? Program.fromPin(path) : BpfMap.fromPin(path);
    try {
      return obj.info().id;
    } finally {
      obj.close();
    }
  } catch {
    return 0;
  }
}
