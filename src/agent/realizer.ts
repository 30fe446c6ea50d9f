// Makes one revision of an instance real in the kernel, through the runtime: open the package's
// objects, set config, carry maps over from a previous revision, load, pin, attach (or switch
// existing links in place), pin the links. Either everything happens or nothing remains.
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfError } from '../bpf/errors.js';
import { infoOfId } from '../bpf/info.js';
import { attachCgroup } from '../bpf/link/cgroup.js';
import { Link } from '../bpf/link/link.js';
import { attachSockmap } from '../bpf/link/sockmap.js';
import { attachTcx } from '../bpf/link/tc.js';
import { attachRawTracepoint, attachTracepoint, attachUprobe } from '../bpf/link/tracing.js';
import { attachXdp } from '../bpf/link/xdp.js';
import { BpfMap } from '../bpf/map.js';
import { BpfObject } from '../bpf/object.js';
import { Program } from '../bpf/program.js';
import {
  type AttachOverrides,
  type AttachSpec,
  describeAttach,
  type PackageSpec,
  resolveAttach,
} from '../package/package-spec.js';
import { coerceConfigValue, resolveConfig } from './config-values.js';
import type { InstancePins } from './pins.js';
import { AgentError, type ResolvedImage } from './types.js';

export interface RevisionInput {
  image: ResolvedImage;
  config: Record<string, unknown>;
  attach: AttachOverrides;
}

export interface RealizeInput extends RevisionInput {
  pins: InstancePins;
  rev: number;
  /** maps pinned in this revision are reused when name and layout match (upgrade, start) */
  carryMapsFrom?: number;
  /** links pinned in this revision are switched to the new programs in place where possible */
  linksFrom?: { rev: number; attach: AttachOverrides; spec: PackageSpec };
}

export interface RealizeResult {
  carriedMaps: string[];
  updatedLinks: string[];
  newLinks: string[];
}

/** Opens the package's objects and applies config; validates everything before any load. */
export function openConfigured(image: ResolvedImage, config: Record<string, unknown>): Map<string, BpfObject> {
  const spec = image.spec;
  const values = resolveConfig(spec.config, config);
  const objects = new Map<string, BpfObject>();
  try {
    for (const file of spec.objects) {
      const bytes = image.objects.get(file);
      if (!bytes) throw new AgentError(500, `package ${image.reference} has no layer ${file}`);
      objects.set(file, BpfObject.open(bytes, { name: `${spec.name}/${file.replace(/\.bpf\.o$|\.o$/, '')}` }));
    }
    for (const [k, v] of Object.entries(values)) {
      const decl = spec.config.find((c) => c.name === k)!;
      try {
        objects.get(decl.object)!.setGlobal(k, coerceConfigValue(decl, v));
      } catch (e) {
        throw new AgentError(
          400,
          `config variable ${k} (${decl.type}): ${(e as BpfError).hint ?? (e as Error).message}`,
        );
      }
    }
    return objects;
  } catch (e) {
    for (const o of objects.values()) o.close();
    throw e;
  }
}

function sameLayout(a: BpfMap, b: { type: string; keySize: number; valueSize: number; maxEntries: number }): boolean {
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
      if (!a.target) throw new AgentError(400, `program ${prog.name} attaches to XDP: name the interface with --iface`);
      return attachXdp(prog, a.target, a.mode ?? 'auto');
    case 'tc':
      if (!a.target) throw new AgentError(400, `program ${prog.name} attaches to tc: name the interface with --iface`);
      return attachTcx(prog, a.target, a.direction);
    case 'sockmap':
      return attachSockmap(prog, obj.map(a.map));
    case 'none':
      return null;
  }
}

/** Links that cannot be switched in place: perf-event based ones (tracepoints, uprobes). */
function updatable(a: AttachSpec): boolean {
  return a.hook === 'cgroup' || a.hook === 'xdp' || a.hook === 'tc' || a.hook === 'sockmap';
}

/** Realises one revision. On failure, undoes everything it did and rethrows. */
export function realize(input: RealizeInput): RealizeResult {
  const { pins, rev, image } = input;
  const spec = image.spec;
  const result: RealizeResult = { carriedMaps: [], updatedLinks: [], newLinks: [] };
  const switched: { link: Link; old: Program }[] = [];
  const opened: { close(): void }[] = [];
  const revExisted = pins.revisions().includes(rev);
  const objects = openConfigured(image, input.config);
  try {
    // carry maps over
    if (input.carryMapsFrom !== undefined) {
      for (const m of spec.maps) {
        if (!m.pin || !pins.has(input.carryMapsFrom, 'maps', m.name)) continue;
        const old = BpfMap.fromPin(pins.path(input.carryMapsFrom, 'maps', m.name));
        opened.push(old);
        if (!sameLayout(old, m)) continue;
        objects.get(m.object)!.reuseMap(m.name, old);
        result.carriedMaps.push(m.name);
      }
    }
    for (const o of objects.values()) o.load();

    pins.prepare(rev);
    for (const m of spec.maps) {
      if (!m.pin) continue;
      const path = pins.path(rev, 'maps', m.name);
      if (!pins.has(rev, 'maps', m.name)) objects.get(m.object)!.map(m.name).pin(path);
    }
    for (const p of spec.programs)
      objects
        .get(p.object)!
        .program(p.name)
        .pin(pins.path(rev, 'progs', p.name));

    for (const p of spec.programs) {
      const obj = objects.get(p.object)!;
      const prog = obj.program(p.name);
      const attach = resolveAttach(p, input.attach);
      const from = input.linksFrom;
      if (from && updatable(attach) && pins.has(from.rev, 'links', p.name)) {
        const before = from.spec.programs.find((x) => x.name === p.name);
        if (before && describeAttach(resolveAttach(before, from.attach)) === describeAttach(attach)) {
          const link = Link.fromPin(pins.path(from.rev, 'links', p.name));
          opened.push(link);
          const old = Program.fromPin(pins.path(from.rev, 'progs', p.name));
          opened.push(old);
          link.update(prog);
          switched.push({ link, old });
          link.pin(pins.path(rev, 'links', p.name));
          result.updatedLinks.push(p.name);
          continue;
        }
      }
      const link = attachProgram(prog, attach, obj);
      if (link) {
        try {
          link.pin(pins.path(rev, 'links', p.name));
        } finally {
          link.close();
        }
        result.newLinks.push(p.name);
      }
    }
    return result;
  } catch (e) {
    // undo: switch links back, then drop every pin of this revision (new links die with them)
    for (const { link, old } of switched.reverse()) {
      try {
        link.update(old);
      } catch (undoErr) {
        process.stderr.write(`kbpf agent: could not switch ${link.description} back: ${(undoErr as Error).message}\n`);
      }
    }
    if (revExisted && input.carryMapsFrom === rev) {
      pins.removeKind(rev, 'links');
      pins.removeKind(rev, 'progs');
    } else {
      pins.removeRevision(rev);
    }
    throw e;
  } finally {
    for (const o of opened) o.close();
    for (const o of objects.values()) o.close();
  }
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

function idAt(path: string, kind: 'link' | 'prog'): number {
  try {
    const obj = kind === 'link' ? Link.fromPin(path) : Program.fromPin(path);
    try {
      return obj.info().id;
    } finally {
      obj.close();
    }
  } catch {
    return 0;
  }
}
