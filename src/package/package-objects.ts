// What running a package outside the agent needs from the local store: its BPF objects (the
// bytecode layers, by title), the config defaults and the event record type of each event map.
import type { LayoutStore, ResolvedPackage } from './layout-store.js';
import { ANNOTATION_TITLE, KBPF_BYTECODE } from './media-types.js';
import type { PackageSpec } from './package-spec.js';

export interface PackageObjects {
  package: ResolvedPackage;
  objects: { file: string; bytes: Uint8Array }[];
  /** config variable → default */
  defaults: Record<string, unknown>;
  /** event map → struct of its records */
  eventTypes: Map<string, string>;
}

export async function readPackageObjects(store: LayoutStore, reference: string): Promise<PackageObjects> {
  const pkg = await store.resolve(reference);
  const objects = [];
  for (const l of pkg.manifest.layers)
    if (l.mediaType === KBPF_BYTECODE)
      objects.push({
        file: l.annotations?.[ANNOTATION_TITLE] ?? l.digest,
        bytes: await store.getBlob(l.digest, l.size),
      });
  const spec = pkg.config as unknown as Partial<PackageSpec>;
  const defaults: Record<string, unknown> = {};
  for (const c of spec.config ?? []) if (c.default !== undefined) defaults[c.name] = c.default;
  const eventTypes = new Map((spec.events ?? []).filter((e) => e.type).map((e) => [e.map, e.type]));
  return { package: pkg, objects, defaults, eventTypes };
}
