// A Wasm guest as a kbpf package: the module as the first layer (KBPF_WASM), the BPF objects it
// embeds as bytecode layers after it (so the package describes its programs and maps like any
// other), and a spec whose `guest` section names the module, its arguments, limits and its
// capability manifest (by default what the embedded objects declare).
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { BpfObject } from 'kbpf/bpf';
import { InvalidError } from '../errors.js';
import { KBPF_BYTECODE, KBPF_WASM } from '../package/media-types.js';
import type {
  GuestCapabilities,
  GuestLimits,
  MapEntrySpec,
  PackageSpec,
  ProgramSpec,
} from '../package/package-spec.js';
import { KBPF_VERSION } from '../version.js';
import { type DeclaredObject, declaredCapabilities, mergeCapabilities } from './capabilities.js';
import { embeddedObjects } from './embedded.js';

export interface GuestPackageOptions {
  /** package name (default: the file's name, made a valid repository name) */
  name?: string;
  version?: string;
  args?: string[];
  /** added to what the embedded objects declare */
  allow?: Partial<GuestCapabilities>;
  limits?: GuestLimits;
}

export interface GuestPackage {
  spec: PackageSpec;
  layers: { mediaType: string; title: string; bytes: Uint8Array }[];
  declared: GuestCapabilities;
}

/** The package name a guest file gets: its base name, lower-case, with other characters as '-'. */
export function guestPackageName(file: string): string {
  const base = basename(file).replace(/\.wasm$/, '');
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name || 'guest';
}

export function guestPackage(file: string, wasm: Uint8Array, opts: GuestPackageOptions = {}): GuestPackage {
  try {
    new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new InvalidError(`${file} is not a WebAssembly module: ${(e as Error).message}`, { cause: e });
  }
  const name = opts.name ?? guestPackageName(file);
  // the version names the module and what the run adds to it (arguments, manifest, limits)
  const digest = createHash('sha256')
    .update(wasm)
    .update(JSON.stringify([opts.args ?? [], opts.allow ?? {}, opts.limits ?? {}]))
    .digest('hex');
  const version = opts.version ?? `wasm-${digest.slice(0, 12)}`;
  const moduleTitle = `${name}.wasm`;
  const layers: GuestPackage['layers'] = [{ mediaType: KBPF_WASM, title: moduleTitle, bytes: wasm }];
  const programs: ProgramSpec[] = [];
  const maps: MapEntrySpec[] = [];
  const declared: DeclaredObject[] = [];
  embeddedObjects(wasm).forEach((bytes, i) => {
    const title = `${name}-${i}.bpf.o`;
    let object: BpfObject;
    try {
      object = BpfObject.open(bytes, { name: title });
    } catch {
      return; // ELF-looking bytes that libbpf does not take: not an object the guest can load either
    }
    try {
      const d: DeclaredObject = { programs: [], maps: [] };
      for (const p of object.programs.values()) {
        d.programs.push({ name: p.name, type: p.type, section: p.section });
        if (!programs.some((x) => x.name === p.name))
          programs.push({ name: p.name, object: title, section: p.section, type: p.type, attach: { hook: 'none' } });
      }
      for (const [mapName, m] of object.maps) {
        if (mapName.startsWith('.')) continue;
        d.maps.push(mapName);
        if (!maps.some((x) => x.name === mapName))
          maps.push({
            name: mapName,
            object: title,
            type: m.type,
            keySize: m.keySize,
            valueSize: m.valueSize,
            maxEntries: m.maxEntries,
            pin: true,
          });
      }
      declared.push(d);
      layers.push({ mediaType: KBPF_BYTECODE, title, bytes });
    } finally {
      object.close();
    }
  });
  const caps = declaredCapabilities(declared);
  const spec: PackageSpec = {
    name,
    version,
    description: `Wasm guest ${basename(file)}`,
    objects: layers.filter((l) => l.mediaType === KBPF_BYTECODE).map((l) => l.title),
    programs,
    config: [],
    maps,
    events: [],
    builder: `kbpf ${KBPF_VERSION}`,
    guest: {
      module: moduleTitle,
      args: opts.args ?? [],
      capabilities: mergeCapabilities(caps, opts.allow ?? {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
    },
  };
  return { spec, layers, declared: caps };
}
