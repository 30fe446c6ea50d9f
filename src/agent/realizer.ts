// The kernel operations an instance of BPF programs is made of, through the runtime: open a
// package's objects with config set, attach one program as its spec says, detach a revision,
// drop a revision's pins, read the kernel ids a revision holds. The program planner
// (program-planner.ts) puts them in order, each with its undo.
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  attachCgroup,
  attachRawTracepoint,
  attachSockmap,
  attachTcx,
  attachTracepoint,
  attachUprobe,
  attachXdp,
  BpfError,
  BpfMap,
  BpfObject,
  infoOfId,
  Link,
  Program,
} from 'kbpf/bpf';
import { CorruptedError, InvalidError } from '../errors.js';
import type { AttachSpec, PackageSpec } from '../package/package-spec.js';
import { coerceConfigValue, resolveConfig } from './config-values.js';
import type { FetchedPackage } from './package-cache.js';
import type { InstancePins } from './pins.js';

/** Kernel ids of what one revision holds, by program / map name. */
export interface KernelIds {
  progs: Map<string, number>;
  links: Map<string, number>;
  maps: Map<string, number>;
}

export function noKernelIds(): KernelIds {
  return { progs: new Map(), links: new Map(), maps: new Map() };
}

/** Opens the package's objects and applies config; validates everything before any load. */
export function openConfigured(pkg: FetchedPackage, config: Record<string, unknown>): Map<string, BpfObject> {
  const spec = pkg.spec;
  const values = resolveConfig(spec.config, config);
  const objects = new Map<string, BpfObject>();
  try {
    for (const file of spec.objects) {
      const bytes = pkg.objects.get(file);
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

/** Attaches one program as its (resolved) attach spec says. */
export function attachProgram(prog: Program, a: AttachSpec, obj: BpfObject): Link | null {
  switch (a.hook) {
    case 'cgroup':
      return attachCgroup(prog, a.target!);
    case 'tracepoint':
      return attachTracepoint(prog, a.target);
    case 'raw_tracepoint':
      return attachRawTracepoint(prog, a.target);
    case 'uprobe':
    case 'uretprobe': {
      const i = a.target.lastIndexOf(':');
      return attachUprobe(prog, {
        binary: a.target.slice(0, i),
        symbol: a.target.slice(i + 1),
        retprobe: a.hook === 'uretprobe',
        pid: a.pid,
      });
    }
    case 'xdp':
      if (!a.target) throw new InvalidError(`program ${prog.name} attaches to XDP: name the interface with --iface`);
      return attachXdp(prog, a.target, a.mode ?? 'auto');
    case 'tc':
      if (!a.target) throw new InvalidError(`program ${prog.name} attaches to tc: name the interface with --iface`);
      return attachTcx(prog, a.target, a.direction);
    case 'sockmap':
      return attachSockmap(prog, obj.map(a.map));
    case 'none':
      return null;
  }
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
    const prog = Program.fromPin(pins.path(rev, 'progs', name));
    try {
      if (link.info().progId !== prog.info().id) link.update(prog);
    } finally {
      link.close();
      prog.close();
    }
  }
}

/** Whether every program of the spec (and its link) is pinned in revision `rev`. */
export function isComplete(pins: InstancePins, rev: number, spec: PackageSpec): boolean {
  if (!pins.revisions().includes(rev)) return false;
  return spec.programs.every(
    (p) => pins.has(rev, 'progs', p.name) && (p.attach.hook === 'none' || pins.has(rev, 'links', p.name)),
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
