// Leak checks that tolerate other processes loading BPF at the same time: of what bpftool lists
// now and did not list in `before`, only what carries one of our names counts (programs and maps
// by name, internal maps by their object's name prefix, links by the program they hold).
// Kernel object names are truncated to 15 characters (bpftool shows programs' full names from
// BTF); both are taken into account.
import { setTimeout as sleep } from 'node:timers/promises';
import type { KernelIds } from '../../testbed/kernel.js';
import { bpftoolShow } from '../../testbed/kernel.js';

export interface Ours {
  /** program names (C function names) */
  progs?: string[];
  /** map names (C names) */
  maps?: string[];
  /** object names (file name without .o): their internal maps (.rodata, .bss, ...) count as ours */
  objects?: string[];
}

export interface Left {
  prog: string[];
  map: string[];
  link: string[];
}

interface Row {
  id: number;
  name?: string;
  prog_id?: number;
}

function list(kind: 'prog' | 'map' | 'link'): Row[] {
  return bpftoolShow(kind) as unknown as Row[];
}

const NAME_LEN = 15;

function matches(kernelName: string | undefined, names: string[] | undefined): boolean {
  if (!kernelName || !names) return false;
  // the kernel keeps 15 characters; bpftool shows a program's full name from its BTF
  return names.some((n) => n === kernelName || n.slice(0, NAME_LEN) === kernelName);
}

const INTERNAL_SUFFIXES = ['.rodata', '.data', '.bss', '.kconfig'];

/** libbpf names an internal map "<first chars of the object name><section>", e.g. "tracing..rodata". */
function internalOf(kernelName: string | undefined, objects: string[] | undefined): boolean {
  if (!kernelName || !objects) return false;
  return INTERNAL_SUFFIXES.some((sfx) => {
    if (!kernelName.endsWith(sfx) || kernelName.length === sfx.length) return false;
    const prefix = kernelName.slice(0, -sfx.length);
    return objects.some((o) => o.startsWith(prefix));
  });
}

/** One look: what is new since `before` and ours, as "id:name" strings. */
export function oursNow(before: KernelIds, ours: Ours): Left {
  const progs = list('prog').filter((p) => !before.prog.has(p.id) && matches(p.name, ours.progs));
  const ourProgIds = new Set(progs.map((p) => p.id));
  const maps = list('map').filter(
    (m) => !before.map.has(m.id) && (matches(m.name, ours.maps) || internalOf(m.name, ours.objects)),
  );
  const links = list('link').filter(
    (l) => !before.link.has(l.id) && l.prog_id !== undefined && ourProgIds.has(l.prog_id),
  );
  return {
    prog: progs.map((p) => `${p.id}:${p.name}`),
    map: maps.map((m) => `${m.id}:${m.name}`),
    link: links.map((l) => `${l.id}:prog ${l.prog_id}`),
  };
}

/** What of ours is left since `before`, waiting up to waitMs for deferred frees. */
export async function leftOfOurs(before: KernelIds, ours: Ours, waitMs = 3000): Promise<Left> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const left = oursNow(before, ours);
    if ((left.prog.length === 0 && left.map.length === 0 && left.link.length === 0) || Date.now() > deadline)
      return left;
    await sleep(50);
  }
}

export const NOTHING: Left = { prog: [], map: [], link: [] };

interface ObjectLike {
  name: string;
  programs: ReadonlyMap<string, unknown>;
  maps: ReadonlyMap<string, unknown>;
}

/** Everything the given objects name: their programs, maps and internal maps. */
export function oursOf(...objects: ObjectLike[]): Ours {
  return {
    progs: objects.flatMap((o) => [...o.programs.keys()]),
    maps: objects.flatMap((o) => [...o.maps.keys()]),
    objects: objects.map((o) => o.name),
  };
}

/** Merges several descriptions of what is ours. */
export function merge(...all: Ours[]): Ours {
  return {
    progs: all.flatMap((o) => o.progs ?? []),
    maps: all.flatMap((o) => o.maps ?? []),
    objects: all.flatMap((o) => o.objects ?? []),
  };
}
