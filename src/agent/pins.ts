// The agent's bpffs layout. Everything of one instance lives under <bpffsDir>/<instance>/, one
// directory per revision that is (or is becoming) live:
//   rev-<n>/progs/<program>   loaded programs
//   rev-<n>/maps/<map>        maps (a map carried over by an upgrade is pinned in both revisions)
//   rev-<n>/links/<program>   links (a link switched in place is pinned in both revisions)
//   rev-<n>/globals/<object>@<section>
//                             the data sections of its global variables (libbpf's internal maps
//                             .bss, .data, .rodata: "snoop@bss"), which `kbpf maps` reads
// A pin is the only thing that keeps an agent-made object alive once the agent is gone, so
// removing a revision's directory removes exactly what that revision alone held.
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkInstanceName, isInstanceName, pathUnder } from './instance-name.js';

export type PinKind = 'progs' | 'maps' | 'links' | 'globals';

export class InstancePins {
  readonly dir: string;

  constructor(
    readonly root: string,
    readonly instance: string,
  ) {
    checkInstanceName(instance);
    this.dir = pathUnder(root, instance);
  }

  revDir(rev: number): string {
    return join(this.dir, `rev-${rev}`);
  }

  path(rev: number, kind: PinKind, name: string): string {
    return join(this.revDir(rev), kind, name);
  }

  has(rev: number, kind: PinKind, name: string): boolean {
    return existsSync(this.path(rev, kind, name));
  }

  names(rev: number, kind: PinKind): string[] {
    try {
      return readdirSync(join(this.revDir(rev), kind));
    } catch {
      return [];
    }
  }

  prepare(rev: number): void {
    for (const kind of ['progs', 'maps', 'links', 'globals'] as const)
      mkdirSync(join(this.revDir(rev), kind), { recursive: true });
  }

  /** Revisions that have a directory. */
  revisions(): number[] {
    try {
      return readdirSync(this.dir)
        .filter((d) => /^rev-\d+$/.test(d))
        .map((d) => Number(d.slice(4)))
        .sort((a, b) => a - b);
    } catch {
      return [];
    }
  }

  removeKind(rev: number, kind: PinKind): void {
    rmSync(join(this.revDir(rev), kind), { recursive: true, force: true });
  }

  removeRevision(rev: number): void {
    rmSync(this.revDir(rev), { recursive: true, force: true });
  }

  removeAll(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The pin name of the map of global variables of `section` (".bss", ".data.x") in object file
 * `object`: bpffs refuses names with a dot, so "snoop.bpf.o" and ".data.x" give "snoop@data@x".
 */
export function globalsPinName(object: string, section: string): string {
  return `${globalsPinStem(object)}@${section.slice(1).replaceAll('.', '@')}`;
}

/** What the pins of object file `object`'s global variables start with ("snoop" of snoop.bpf.o). */
export function globalsPinStem(object: string): string {
  return object.replace(/\.bpf\.o$|\.o$/, '').replaceAll('.', '_');
}

/** The object stem a globals pin name starts with (globalsPinName's). */
export function objectOfGlobalsPin(pin: string): string {
  return pin.slice(0, pin.indexOf('@'));
}

/**
 * Where a map of a running instance is pinned: the newest revision that pins it. This is the
 * public way for an application next to the agent (another process, maybe) to reach an
 * instance's maps; the layout below the instance's directory is the agent's business.
 */
export function instanceMapPin(root: string, instance: string, map: string): string | undefined {
  return instancePin(root, instance, 'maps', map);
}

/** The same for any kind of pin (e.g. the link of an iterator program, which user space reads to run it). */
export function instancePin(root: string, instance: string, kind: PinKind, name: string): string | undefined {
  const pins = new InstancePins(root, instance);
  const rev = pins
    .revisions()
    .reverse()
    .find((r) => pins.has(r, kind, name));
  return rev === undefined ? undefined : pins.path(rev, kind, name);
}

/** Removes the agent's bpffs directory when no instance is left in it. */
export function removeRootIfEmpty(root: string): void {
  try {
    rmdirSync(root);
  } catch {
    /* not empty, or gone already */
  }
}

/** Instance directories present under the agent's bpffs root (entries that are no instance name are not ours). */
export function pinnedInstances(root: string): string[] {
  try {
    return readdirSync(root).filter(isInstanceName);
  } catch {
    return [];
  }
}
