// The capability manifest of a Wasm guest: which program types it may load, where it may attach
// them and which maps it may touch. The default for a bare .wasm is what its embedded objects
// declare (their program types, each program's own section as its attach target, their maps),
// nothing more; run flags and kbpf.yaml add to it.
import type { GuestCapabilities } from '../package/package-spec.js';

export function emptyCapabilities(): GuestCapabilities {
  return { programTypes: [], attachTargets: [], maps: [] };
}

/** What objects declare: the programs (type, section) and maps (user-visible names) they hold. */
export interface DeclaredObject {
  programs: { name: string; type: string; section: string }[];
  maps: string[];
}

export function declaredCapabilities(objects: DeclaredObject[]): GuestCapabilities {
  const caps = emptyCapabilities();
  for (const o of objects) {
    for (const p of o.programs) {
      caps.programTypes.push(p.type);
      caps.attachTargets.push(p.section);
    }
    caps.maps.push(...o.maps);
  }
  return normalize(caps);
}

/** Both manifests together (duplicates dropped, sorted). */
export function mergeCapabilities(a: GuestCapabilities, b: Partial<GuestCapabilities>): GuestCapabilities {
  return normalize({
    programTypes: [...a.programTypes, ...(b.programTypes ?? [])],
    attachTargets: [...a.attachTargets, ...(b.attachTargets ?? [])],
    maps: [...a.maps, ...(b.maps ?? [])],
  });
}

function normalize(c: GuestCapabilities): GuestCapabilities {
  const u = (l: string[]) => [...new Set(l)].sort();
  return { programTypes: u(c.programTypes), attachTargets: u(c.attachTargets), maps: u(c.maps) };
}

function matches(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}

/** How an attach request is named in the manifest: the section, or SECTION:TARGET. */
export function attachTargetName(section: string, target: string): string {
  return target ? `${section}:${target}` : section;
}

export class CapabilityCheck {
  constructor(readonly caps: GuestCapabilities) {}

  /** undefined when allowed; otherwise why not, for the guest's log */
  programType(type: string, program: string): string | undefined {
    if (this.caps.programTypes.some((p) => matches(p, type))) return undefined;
    return `program ${program} is of type ${type}, which the capability manifest does not list (program types: ${this.caps.programTypes.join(', ') || 'none'})`;
  }

  attach(program: string, section: string, target: string): string | undefined {
    const name = attachTargetName(section, target);
    if (this.caps.attachTargets.some((p) => matches(p, name))) return undefined;
    return `attaching ${program} to ${name} is not in the capability manifest (attach targets: ${this.caps.attachTargets.join(', ') || 'none'})`;
  }

  map(name: string): string | undefined {
    if (this.caps.maps.some((p) => matches(p, name))) return undefined;
    return `map ${name} is not in the capability manifest (maps: ${this.caps.maps.join(', ') || 'none'})`;
  }
}
