// `kbpf build`: compile every *.bpf.c of a source directory, derive the package spec from the
// objects, merge kbpf.yaml, check it, and store the result as an OCI artifact. Nothing is tagged
// unless every step succeeded.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NotFound } from '../errors.js';
import type { LayoutStore, StoredPackage } from '../package/layout-store.js';
import { KBPF_BYTECODE, KBPF_SOURCE } from '../package/media-types.js';
import type { PackageSpec, ProgramSpec } from '../package/package-spec.js';
import { KBPF_VERSION } from '../version.js';
import { compileBpf } from './clang.js';
import { type DerivedObject, deriveFromObject } from './derive.js';
import { BuildError } from './errors.js';
import { MANIFEST_FILE, readSourceManifest, type SourceManifest } from './source-manifest.js';
import { ensureVmlinuxHeader } from './vmlinux.js';

const execFileP = promisify(execFile);

/** kbpf.h (KBPF_EVENT, ...): in the source tree, next to this module's source. */
export const KBPF_INCLUDE_DIR = fileURLToPath(new URL('../../../src/compile/include/', import.meta.url));

export interface BuildOptions {
  /** name:version (default: from kbpf.yaml, else the directory name and 0.0.0) */
  tag?: string;
  store: LayoutStore;
  /** where vmlinux.h is cached */
  cacheDir: string;
  progress?: (message: string) => void;
}

export interface BuildResult {
  stored: StoredPackage;
  spec: PackageSpec;
}

export async function buildPackage(dir: string, opts: BuildOptions): Promise<BuildResult> {
  const src = resolve(dir);
  const say = opts.progress ?? (() => {});
  let files: string[];
  try {
    files = (await readdir(src)).filter((f) => f.endsWith('.bpf.c')).sort();
  } catch {
    throw new BuildError(`${src}: no such directory`, [], NotFound);
  }
  if (files.length === 0) throw new BuildError(`${src}: no *.bpf.c files: nothing to build`);
  const manifest = readSourceManifest(src);

  const work = await mkdtemp(join(tmpdir(), 'kbpf-build-'));
  try {
    const header = ensureVmlinuxHeader(opts.cacheDir);
    const objects: { file: string; bytes: Uint8Array; derived: DerivedObject }[] = [];
    for (const f of files) {
      say(`compiling ${f}`);
      const out = join(work, f.replace(/\.c$/, '.o'));
      await compileBpf(join(src, f), out, { includeDirs: [join(header, '..'), KBPF_INCLUDE_DIR] });
      const bytes = await readFile(out);
      objects.push({ file: basename(out), bytes, derived: deriveFromObject(basename(out), bytes) });
    }
    const spec = mergeSpec(
      objects.map((o) => o.derived),
      objects.map((o) => o.file),
      manifest,
      opts.tag,
      basename(src),
    );
    say(
      `packaging ${spec.name}:${spec.version} (${spec.programs.length} program(s), ${spec.maps.length} map(s), ${spec.config.length} config variable(s))`,
    );
    const source = await tarSource(src, files);
    const stored = await opts.store.putPackage(
      {
        manifest: spec as unknown as Record<string, unknown>,
        layers: [
          ...objects.map((o) => ({ mediaType: KBPF_BYTECODE, bytes: o.bytes, title: o.file })),
          { mediaType: KBPF_SOURCE, bytes: source, title: 'source.tar.gz' },
        ],
        bpfmanPrograms: Object.fromEntries(spec.programs.map((p) => [p.name, p.type])),
        bpfmanMaps: Object.fromEntries(spec.maps.map((m) => [m.name, m.type])),
      },
      `${spec.name}:${spec.version}`,
    );
    return { stored, spec };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function splitTag(tag: string | undefined): { name?: string; version?: string } {
  if (!tag) return {};
  const i = tag.lastIndexOf(':');
  return i > 0 && !tag.slice(i).includes('/') ? { name: tag.slice(0, i), version: tag.slice(i + 1) } : { name: tag };
}

export function mergeSpec(
  derived: DerivedObject[],
  files: string[],
  m: SourceManifest,
  tag: string | undefined,
  dirName: string,
): PackageSpec {
  const t = splitTag(tag);
  const name = t.name ?? m.name ?? dirName;
  const version = t.version ?? m.version ?? '0.0.0';
  const programs = derived.flatMap((d) => d.programs);
  const maps = derived.flatMap((d) => d.maps);
  const config = derived.flatMap((d) => d.config);
  const events = derived.flatMap((d) => d.events);
  const problems: string[] = [];
  if (programs.length === 0)
    problems.push('the objects contain no BPF programs (functions need a SEC("...") annotation)');

  for (const key of Object.keys(m.programs))
    if (!programs.some((p) => p.name === key))
      problems.push(
        `${MANIFEST_FILE}: programs.${key}: no such program (programs: ${programs.map((p) => p.name).join(', ')})`,
      );
  const resolved: ProgramSpec[] = [];
  for (const p of programs) {
    const attach = m.programs[p.name]?.attach ?? p.attach;
    if (!attach) {
      problems.push(
        `program ${p.name} (section "${p.section}"): cannot tell where it attaches: add programs.${p.name}.attach to ${MANIFEST_FILE}`,
      );
      continue;
    }
    if (
      attach.hook === 'sockmap' &&
      !maps.some((x) => x.name === attach.map && (x.type === 'sockmap' || x.type === 'sockhash'))
    ) {
      problems.push(
        `program ${p.name}: attaches to sockmap "${attach.map}", which is not a sockmap/sockhash of the package`,
      );
    }
    const extra = m.programs[p.name];
    const out: ProgramSpec = { ...p, attach };
    if (extra?.optional !== undefined) out.optional = extra.optional;
    if (extra?.group !== undefined) out.group = extra.group;
    resolved.push(out);
  }
  for (const [key, c] of Object.entries(m.config)) {
    const v = config.find((x) => x.name === key);
    if (!v) {
      problems.push(
        `${MANIFEST_FILE}: config.${key}: no such config variable (declare it as a "const volatile" global; known: ${config.map((x) => x.name).join(', ') || 'none'})`,
      );
      continue;
    }
    if (c.description) v.description = c.description;
    if (c.default !== undefined) v.default = c.default;
  }
  for (const [key, mm] of Object.entries(m.maps)) {
    const map = maps.find((x) => x.name === key);
    if (!map) {
      problems.push(
        `${MANIFEST_FILE}: maps.${key}: no such map (maps: ${maps.map((x) => x.name).join(', ') || 'none'})`,
      );
      continue;
    }
    if (mm.pin !== undefined) map.pin = mm.pin;
    if (mm.maxEntries !== undefined) map.maxEntries = mm.maxEntries;
    if (mm.share !== undefined) map.share = mm.share;
  }
  for (const [key, e] of Object.entries(m.events)) {
    const ev = events.find((x) => x.map === key);
    if (!ev) {
      problems.push(`${MANIFEST_FILE}: events.${key}: no ring buffer or perf event array map of that name`);
      continue;
    }
    if (e.type) ev.type = e.type;
    if (e.columns) ev.columns = e.columns;
  }
  for (const ev of events) {
    const d = derived[files.indexOf(ev.object)]!;
    if (!ev.type) ev.type = d.structs.has('event') ? 'event' : '';
    if (ev.type && !d.structs.has(ev.type))
      problems.push(`events.${ev.map}: struct ${ev.type} is not in the object's BTF`);
  }
  if (problems.length) throw new BuildError(`cannot build ${name}:${version}`, problems);
  return {
    name,
    version,
    description: m.description,
    objects: files,
    programs: resolved,
    config,
    maps,
    events,
    builder: KBPF_VERSION,
  };
}

async function tarSource(dir: string, files: string[]): Promise<Uint8Array> {
  const extra = (await readdir(dir)).filter((f) => f === MANIFEST_FILE || f.endsWith('.h'));
  const { stdout } = await execFileP(
    'tar',
    [
      '-czf',
      '-',
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      dir,
      ...files,
      ...extra,
    ],
    { encoding: 'buffer', maxBuffer: 64 << 20 },
  );
  return stdout;
}
