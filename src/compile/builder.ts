// `kbpf build`: compile every *.bpf.c of a source directory, derive the package spec from the
// objects, merge kbpf.yaml, check it, and store the result as an OCI artifact. Nothing is tagged
// unless every step succeeded.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Btf } from 'kbpf/bpf';
import { NotFound } from '../errors.js';
import {
  KBPF_BYTECODE,
  KBPF_BYTECODE_ALTERNATIVE,
  KBPF_SOURCE,
  KBPF_TESTS,
  KBPF_WASM,
} from '../package/media-types.js';
import type { PackageSpec, ProgramSpec } from '../package/package-spec.js';
import { type PackageTests, parseTestFile, TESTS_DIR, TESTS_LAYER_TITLE } from '../pkgtest/cases.js';
import { KBPF_VERSION } from '../version.js';
import { compileProcessor } from '../wasm/processor.js';
import { KBPF_COMPAT_DIR, KBPF_INCLUDE_DIR, systemIncludeDirs } from './build-env.js';
import type { BuildOptions, BuildResult } from './build-types.js';
import { type CompileOptions, compileBpf, stripDebugInfo } from './clang.js';
import { type DerivedObject, deriveFromObject, PRINTK_MAP } from './derive.js';
import { BuildError } from './errors.js';
import { eventFormat } from './event-format.js';
import { compileProcessorSource } from './guest.js';
import { buildGuestPackage, guestInput } from './guest-build.js';
import { kfuncHeader } from './kfuncs.js';
import { MANIFEST_FILE, readSourceManifest, type SourceManifest } from './source-manifest.js';
import {
  callsPrintk,
  definedStructs,
  includedText,
  isGeneratedHeader,
  keepTypesUnit,
  typedefStructs,
} from './source-scan.js';
import { ensureVmlinuxHeader, KERNEL_BTF } from './vmlinux.js';

export { KBPF_INCLUDE_DIR };

const execFileP = promisify(execFile);

export type { BuildOptions, BuildResult } from './build-types.js';

const PROCESSOR_MODULE = 'processor.wasm';

/**
 * The instruction set of each object's second build. clang 14 writes v1 code by default, and
 * some sources verify only as the one or the other (a u32 argument's bounds check lands on a
 * copy in v1 code; v3 code fails other tools): the package carries both, the agent loads the
 * second when the verifier refuses the first.
 */
export const ALTERNATIVE_CPU = 'v3';

/** The layer title of an object's other build: `x.bpf.o` → `x.bpf.cpu-v3.o` (undefined if an object is named so). */
function alternativeName(object: string, objects: readonly string[]): string | undefined {
  const name = `${object.replace(/\.o$/, '')}.cpu-${ALTERNATIVE_CPU}.o`;
  return objects.includes(name) ? undefined : name;
}

/** The two builds of one source have the same programs (sections, attach), maps, globals and events. */
function sameShape(a: DerivedObject, b: DerivedObject): boolean {
  const shape = (d: DerivedObject) =>
    JSON.stringify([d.programs, d.maps, d.config, d.events], (k, v) => (k === 'object' ? undefined : v));
  return shape(a) === shape(b);
}

export async function buildPackage(dir: string, opts: BuildOptions): Promise<BuildResult> {
  const src = resolve(dir);
  const say = opts.progress ?? (() => {});
  let entries: string[];
  try {
    entries = await readdir(src);
  } catch {
    throw new BuildError(`${src}: no such directory`, [], NotFound);
  }
  const manifest = readSourceManifest(src);
  const guest = guestInput(src);
  if (guest) {
    const { name: tagName, version: tagVersion } = splitTag(opts.tag);
    return buildGuestPackage(src, guest, manifest, { ...opts, tagName, tagVersion }, tarSource);
  }
  let files = opts.files ?? [...entries.filter((f) => f.endsWith('.bpf.c')).sort(), ...manifest.build.sources];
  // no *.bpf.c (cilium/ebpf's bpf2go sources are NAME.c beside Go code): the .c files with BPF sections
  if (files.length === 0 && !opts.files)
    files = entries.filter((f) => f.endsWith('.c') && /\bSEC\(\s*"/.test(readFileSync(join(src, f), 'utf8'))).sort();
  if (files.length === 0)
    throw new BuildError(
      `${src}: no *.bpf.c files and no .c file with a SEC("...") section: nothing to build (${MANIFEST_FILE} build.sources names others)`,
    );
  for (const f of files)
    if (!existsSync(join(src, f)))
      throw new BuildError(
        `${src}: ${f}: no such file${manifest.build.sources.includes(f) ? ` (${MANIFEST_FILE} build.sources)` : ''}`,
        [],
        NotFound,
      );
  const includeDirs = manifest.build.include.map((d) => {
    const abs = join(src, d);
    if (!existsSync(abs) || !statSync(abs).isDirectory())
      throw new BuildError(`${MANIFEST_FILE}: build.include: ${d}: no such directory in ${src}`, [], NotFound);
    return abs;
  });
  includeDirs.push(...(opts.includeDirs ?? []));
  const objectNames = files.map((f) => basename(f).replace(/\.c$/, '.o'));
  const dup = objectNames.find((n, i) => objectNames.indexOf(n) !== i);
  if (dup) throw new BuildError(`${src}: two sources would both make ${dup}: rename one`);

  // the package's own headers: scanned for the structs it defines, bpf_printk calls and kfuncs
  const headers: string[] = [];
  for (const [d, names] of [[src, entries] as const, ...includeDirs.map((d) => [d, readdirSync(d)] as const)])
    for (const f of [...names].sort()) if (f.endsWith('.h') && !isGeneratedHeader(f)) headers.push(join(d, f));
  const headerTexts = await Promise.all(headers.map((h) => readFile(h, 'utf8')));
  const headerText = headerTexts.join('\n');

  const work = await mkdtemp(join(tmpdir(), 'kbpf-build-'));
  try {
    const header = ensureVmlinuxHeader(opts.cacheDir);
    const sysDirs = systemIncludeDirs();
    const objects: { file: string; bytes: Uint8Array; derived: DerivedObject }[] = [];
    const alternatives: { object: string; file: string; bytes: Uint8Array }[] = [];
    // a source whose kbpf.yaml picks the instruction set gets only that build
    const withAlternative = !manifest.build.flags.some((f) => f.startsWith('-mcpu='));
    let printkMaps = 0;
    const linear: string[] = [];
    for (const [i, f] of files.entries()) {
      say(`compiling ${f}`);
      const source = join(src, f);
      const sourceText = await readFile(source, 'utf8');
      const text = `${sourceText}\n${headerText}`;
      const defines: Record<string, string> = { ...manifest.build.defines };
      // KBPF_PRINTK_TRACE_PIPE (a define in kbpf.yaml) keeps bpf_printk on the kernel's trace pipe
      if (callsPrintk(text) && !Object.hasOwn(defines, 'KBPF_PRINTK_TRACE_PIPE'))
        defines.KBPF_PRINTK_MAP = printkMaps++ === 0 ? PRINTK_MAP : `${PRINTK_MAP}_${printkMaps}`;
      const forceIncludes: string[] = [];
      const kfuncs = kernelKfuncHeader(text);
      if (kfuncs) {
        const h = join(work, `kfuncs-${i}.h`);
        await writeFile(h, kfuncs);
        forceIncludes.push(h);
      }
      const unit = join(work, basename(f));
      // typedef'd structs only from the files this source includes: naming one it cannot see fails
      const own = includedText(sourceText, (name) => {
        for (const d of [dirname(source), ...includeDirs]) {
          const h = join(d, name);
          if (existsSync(h) && !isGeneratedHeader(basename(name))) return readFileSync(h, 'utf8');
        }
        return undefined;
      });
      await writeFile(unit, keepTypesUnit(source, definedStructs(text), typedefStructs(own)));
      const out = join(work, objectNames[i]!);
      const compile: CompileOptions = {
        includeDirs: [KBPF_COMPAT_DIR, join(header, '..'), KBPF_INCLUDE_DIR],
        sourceDir: dirname(source),
        extraIncludeDirs: includeDirs,
        systemIncludeDirs: sysDirs,
        forceIncludes,
        defines,
        flags: manifest.build.flags,
        label: f,
        scratchDir: work,
      };
      // the other build is made at the same time (a second clang process), and kept only when it
      // compiled and has the same programs, maps and globals
      const altFile = withAlternative ? alternativeName(objectNames[i]!, objectNames) : undefined;
      const [built, alt] = await Promise.allSettled([
        compileBpf(unit, out, compile),
        altFile
          ? compileBpf(unit, join(work, altFile), {
              ...compile,
              flags: [...manifest.build.flags, `-mcpu=${ALTERNATIVE_CPU}`],
            })
          : Promise.resolve(),
      ]);
      if (built.status === 'rejected') throw built.reason;
      const bytes = await readFile(out);
      const derived = deriveFromObject(basename(out), bytes);
      objects.push({ file: basename(out), bytes, derived });
      if (manifest.histograms ? manifest.histograms === 'linear' : linearHistograms(sourceText, headerTexts))
        linear.push(basename(out));
      if (altFile && alt.status === 'fulfilled') {
        // without its DWARF (the default object keeps it): a package no twice as big
        await stripDebugInfo(join(work, altFile));
        const altBytes = await readFile(join(work, altFile));
        if (!Buffer.from(altBytes).equals(bytes) && sameShape(derived, deriveFromObject(altFile, altBytes)))
          alternatives.push({ object: basename(out), file: altFile, bytes: altBytes });
      }
    }
    const spec = mergeSpec(
      objects.map((o) => o.derived),
      objects.map((o) => o.file),
      manifest,
      opts.tag,
      opts.files?.length === 1 && !manifest.name ? basename(opts.files[0]!).replace(/(\.bpf)?\.c$/, '') : basename(src),
    );
    if (alternatives.length)
      spec.alternatives = alternatives.map((a) => ({ object: a.object, file: a.file, cpu: ALTERNATIVE_CPU }));
    if (linear.length) spec.linearHistograms = linear;
    const processor = manifest.processor ? await buildProcessor(src, work, manifest.processor, spec, say) : undefined;
    say(
      `packaging ${spec.name}:${spec.version} (${spec.programs.length} program(s), ${spec.maps.length} map(s), ${spec.config.length} config variable(s))`,
    );
    const tests = await readTests(src, spec);
    if (tests) say(`${tests.cases.length} test case(s) from ${TESTS_DIR}/`);
    const source = await tarSource(src, [
      ...files,
      ...(manifest.processor ? [manifest.processor.source] : []),
      ...manifest.build.include.filter((d) => relative(src, join(src, d)) !== ''),
    ]);
    const stored = await opts.store.putPackage(
      {
        manifest: spec as unknown as Record<string, unknown>,
        layers: [
          ...objects.map((o) => ({ mediaType: KBPF_BYTECODE, bytes: o.bytes, title: o.file })),
          ...alternatives.map((a) => ({ mediaType: KBPF_BYTECODE_ALTERNATIVE, bytes: a.bytes, title: a.file })),
          { mediaType: KBPF_SOURCE, bytes: source, title: 'source.tar.gz' },
          ...(processor ? [processor] : []),
          ...(tests
            ? [{ mediaType: KBPF_TESTS, bytes: Buffer.from(JSON.stringify(tests)), title: TESTS_LAYER_TITLE }]
            : []),
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

/** The event processor: compiled for wasm32, checked against the ABI, named in the spec; its layer. */
async function buildProcessor(
  src: string,
  work: string,
  p: { source: string; events: string[] },
  spec: PackageSpec,
  say: (m: string) => void,
): Promise<{ mediaType: string; bytes: Uint8Array; title: string }> {
  if (!existsSync(join(src, p.source)))
    throw new BuildError(`${MANIFEST_FILE}: processor: ${p.source}: no such file in ${src}`, [], NotFound);
  if (spec.events.length === 0)
    throw new BuildError(`${MANIFEST_FILE}: processor: the package has no events for it to process`);
  for (const e of p.events)
    if (!spec.events.some((x) => x.map === e))
      throw new BuildError(
        `${MANIFEST_FILE}: processor.events: ${e} is not an event map of the package (its events: ${spec.events.map((x) => x.map).join(', ')})`,
      );
  say(`compiling the event processor ${p.source} for wasm32`);
  const bytes = await compileProcessorSource(join(src, p.source), join(work, PROCESSOR_MODULE));
  try {
    compileProcessor(bytes);
  } catch (e) {
    throw new BuildError(`${p.source}: ${(e as Error).message}`);
  }
  spec.processor = { module: PROCESSOR_MODULE, events: p.events };
  return { mediaType: KBPF_WASM, bytes, title: PROCESSOR_MODULE };
}

/** The cases of tests/*.yaml, checked (YAML, keys, packets, program names); undefined when there are none. */
async function readTests(src: string, spec: PackageSpec): Promise<PackageTests | undefined> {
  const dir = join(src, TESTS_DIR);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const cases = [];
  const problems: string[] = [];
  for (const f of files) {
    const rel = `${TESTS_DIR}/${f}`;
    try {
      for (const c of parseTestFile(await readFile(join(dir, f), 'utf8'), rel)) {
        if (!spec.programs.some((p) => p.name === c.program))
          problems.push(
            `${rel}: ${c.name}: no program ${c.program} (programs: ${spec.programs.map((p) => p.name).join(', ')})`,
          );
        cases.push(c);
      }
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length) throw new BuildError(`cannot build ${spec.name}:${spec.version}: bad test cases`, problems);
  return cases.length ? { version: 1, cases } : undefined;
}

/** Declarations of the build kernel's kfuncs the text names (none without the kernel's BTF). */
function kernelKfuncHeader(text: string): string {
  if (!existsSync(KERNEL_BTF)) return '';
  return kfuncHeader(Btf.kernel(), text);
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
    if (extra?.order !== undefined) {
      if (attach.hook === 'cgroup' || attach.hook === 'tc') out.order = extra.order;
      else problems.push(`program ${p.name}: order: ${attach.hook} hooks have no program order (only cgroup and tc)`);
    }
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
    const held = mm.pin === false ? derived.find((d) => d.maps.includes(map))?.fileBound.get(key) : undefined;
    if (held)
      problems.push(
        `${MANIFEST_FILE}: maps.${key}.pin: false, but its value holds a ${held}: the kernel refuses ${held}_init on a map no file holds (once the programs are attached and the loader's files closed), so it would never fire; pin it (leave pin out)`,
      );
    if (mm.maxEntries !== undefined) map.maxEntries = mm.maxEntries;
    if (mm.share !== undefined) map.share = mm.share;
    if (mm.programs !== undefined) {
      if (map.type !== 'prog_array')
        problems.push(`${MANIFEST_FILE}: maps.${key}.programs: ${key} is a ${map.type} map, not a program array`);
      for (const [i, prog] of Object.entries(mm.programs)) {
        const p = programs.find((x) => x.name === prog);
        if (!p)
          problems.push(
            `${MANIFEST_FILE}: maps.${key}.programs.${i}: no program "${prog}" (programs: ${programs.map((x) => x.name).join(', ')})`,
          );
        else if (p.object !== map.object)
          problems.push(
            `${MANIFEST_FILE}: maps.${key}.programs.${i}: ${prog} is not of ${map.object}, the map's object`,
          );
      }
      map.programs = mm.programs;
    }
  }
  for (const [key, e] of Object.entries(m.events)) {
    const ev = events.find((x) => x.map === key);
    if (!ev) {
      problems.push(`${MANIFEST_FILE}: events.${key}: no ring buffer or perf event array map of that name`);
      continue;
    }
    if (e.type) ev.type = e.type;
    if (e.columns) ev.columns = e.columns;
    if (e.pollMs !== undefined) {
      if (ev.kind === 'ringbuf') ev.pollMs = e.pollMs;
      else
        problems.push(
          `${MANIFEST_FILE}: events.${key}.poll_ms: only a ring buffer is polled (${key} is a perf event array)`,
        );
    }
  }
  for (const ev of events) {
    const d = derived[files.indexOf(ev.object)]!;
    if (!ev.type) ev.type = d.structs.has('event') ? 'event' : '';
    if (ev.type && !d.structs.has(ev.type)) {
      problems.push(`events.${ev.map}: struct ${ev.type} is not in the object's BTF`);
      continue;
    }
    if (!ev.type || !d.btf) continue;
    try {
      const format = eventFormat(
        d.btf,
        ev.type,
        m.events[ev.map]?.format,
        `${MANIFEST_FILE}: events.${ev.map}`,
        kernelBtf,
        maps.filter((x) => x.type === 'stack_trace').map((x) => x.name),
      );
      if (format) ev.format = format;
    } catch (e) {
      problems.push((e as Error).message);
    }
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
    ...(m.logs ? { logs: m.logs } : {}),
  };
}

function kernelBtf(): Btf | undefined {
  return existsSync(KERNEL_BTF) ? Btf.kernel() : undefined;
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

/**
 * Whether a source's histograms are linear: it or its headers keep `slots` arrays, and nothing
 * takes a log2 of what goes into them — log2 histograms index by log2l(value) (bcc's bits.bpf.h),
 * in the source or in a header's helper that fills the slots; runqlen indexes by the run queue's
 * length.
 */
export function linearHistograms(source: string, headers: readonly string[]): boolean {
  const code = (t: string) => t.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
  const log2 = (t: string) => /\blog2\w*\s*\(/.test(t);
  const slots = (t: string) => /\bslots\b/.test(t);
  const src = code(source);
  const hs = headers.map(code);
  return (slots(src) || hs.some(slots)) && !log2(src) && !hs.some((h) => slots(h) && log2(h));
}
