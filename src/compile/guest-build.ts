// `kbpf build` of a Wasm guest directory: either a guest source (main.c beside the .bpf.c, or
// NAME.wasm.c), compiled here for wasm32-wasi with the BPF object embedded (guest.ts), or one
// prebuilt guest .wasm (e.g. built by wasm-bpf's own toolchain). Either way the package is the
// one `kbpf run GUEST.wasm` makes (guest-package.ts: the Wasm layer first, the embedded BPF
// objects after it), with kbpf.yaml's name, version and `guest:` settings, plus the source.
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Invalid } from '../errors.js';
import { KBPF_SOURCE } from '../package/media-types.js';
import { guestPackage, guestPackageName } from '../wasm/guest-package.js';
import type { BuildOptions, BuildResult } from './build-types.js';
import { BuildError } from './errors.js';
import { compileGuest, guestSource } from './guest.js';
import type { SourceManifest } from './source-manifest.js';

/** What kind of guest directory `dir` is: a guest source, one prebuilt module, or neither. */
export function guestInput(dir: string): { source: string } | { module: string } | undefined {
  const source = guestSource(dir);
  if (source) return { source };
  const files = readdirSync(dir);
  const modules = files.filter((f) => f.endsWith('.wasm'));
  if (modules.length === 1 && !files.some((f) => f.endsWith('.bpf.c'))) return { module: join(dir, modules[0]!) };
  if (modules.length > 1 && !files.some((f) => f.endsWith('.bpf.c')))
    throw new BuildError(
      `${dir} holds ${modules.length} .wasm files (${modules.join(', ')}): keep one guest per package`,
    );
  return undefined;
}

export async function buildGuestPackage(
  dir: string,
  input: { source: string } | { module: string },
  manifest: SourceManifest,
  opts: BuildOptions & { tagName?: string; tagVersion?: string },
  tarSource: (dir: string, files: string[]) => Promise<Uint8Array>,
): Promise<BuildResult> {
  const say = opts.progress ?? (() => {});
  const work = await mkdtemp(join(tmpdir(), 'kbpf-guest-build-'));
  try {
    let wasm: Uint8Array;
    let file: string;
    let sources: string[];
    if ('source' in input) {
      file = join(work, `${basename(dir)}.wasm`);
      say(`compiling the guest ${basename(input.source)} for wasm32-wasi (with its BPF object embedded)`);
      wasm = await compileGuest(dir, file, { cacheDir: opts.cacheDir });
      sources = readdirSync(dir).filter((f) => f.endsWith('.c'));
    } else {
      file = input.module;
      say(`packaging the prebuilt guest ${basename(file)}`);
      wasm = await readFile(file);
      sources = [];
    }
    const { tagName, tagVersion } = opts;
    let pkg: ReturnType<typeof guestPackage>;
    try {
      pkg = guestPackage(file, wasm, {
        name: tagName ?? manifest.name ?? guestPackageName(basename(dir)),
        version: tagVersion ?? manifest.version,
        args: manifest.guest?.args,
        allow: manifest.guest?.allow,
        limits: manifest.guest?.limits,
      });
    } catch (e) {
      throw new BuildError((e as Error).message, [], Invalid);
    }
    if (manifest.description) pkg.spec.description = manifest.description;
    if (manifest.logs) pkg.spec.logs = manifest.logs;
    const layers = [...pkg.layers];
    if (sources.length || existsSync(join(dir, 'kbpf.yaml')))
      layers.push({ mediaType: KBPF_SOURCE, bytes: await tarSource(dir, sources), title: 'source.tar.gz' });
    say(
      `packaging ${pkg.spec.name}:${pkg.spec.version} (a Wasm guest; ${pkg.spec.programs.length} program(s), ${pkg.spec.maps.length} map(s) embedded)`,
    );
    const stored = await opts.store.putPackage(
      {
        manifest: pkg.spec as unknown as Record<string, unknown>,
        layers,
      },
      `${pkg.spec.name}:${pkg.spec.version}`,
    );
    return { stored, spec: pkg.spec };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
