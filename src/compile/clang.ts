// Compiles one .bpf.c into a BPF ELF object with BTF (clang -target bpf -g -O2, CO-RE).

import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { targetArchDefine } from 'kbpf/bpf';
import { Unsupported } from '../errors.js';
import { BuildError } from './errors.js';

const execFileP = promisify(execFile);

export interface CompileOptions {
  /** -I, searched in this order before the source's own directory */
  includeDirs: string[];
  /** -I, searched after the source's own directory (kbpf.yaml build.include) */
  extraIncludeDirs?: string[];
  /** -idirafter: the compiler's system include directories */
  systemIncludeDirs?: string[];
  /** -include: headers read before the source */
  forceIncludes?: string[];
  /** -DNAME=VALUE ('' for a bare -DNAME) */
  defines?: Record<string, string>;
  /** further checked compiler flags (kbpf.yaml build.flags) */
  flags?: string[];
  /** a scratch directory whose name must not end up in the object (debug info names it '.') */
  scratchDir?: string;
  /** what error messages call the source (default: its path) */
  label?: string;
  /** the directory of the source as the user wrote it (default: the compiled file's) */
  sourceDir?: string;
  clang?: string;
}

/** clang's diagnostics, one per "file:line:col: error: message" line plus context lines. */
export function parseDiagnostics(stderr: string): string[] {
  const lines = stderr.split('\n');
  const out: string[] = [];
  for (const line of lines) {
    if (/^[^\s:][^:]*:\d+:\d+: (error|fatal error|warning):/.test(line)) out.push(line);
  }
  return out.length ? out : lines.filter((l) => l.trim()).slice(0, 20);
}

export async function compileBpf(src: string, out: string, opts: CompileOptions): Promise<void> {
  const args = [
    '-g',
    '-O2',
    '-target',
    'bpf',
    `-D${targetArchDefine()}`,
    '-Wall',
    '-Wno-unused-function',
    '-Wno-compare-distinct-pointer-types',
    ...opts.includeDirs.flatMap((d) => ['-I', d]),
    '-I',
    opts.sourceDir ?? dirname(src),
    ...(opts.extraIncludeDirs ?? []).flatMap((d) => ['-I', d]),
    ...(opts.systemIncludeDirs ?? []).flatMap((d) => ['-idirafter', d]),
    ...Object.entries(opts.defines ?? {}).map(([k, v]) => (v === '' ? `-D${k}` : `-D${k}=${v}`)),
    ...(opts.flags ?? []),
    ...(opts.scratchDir ? [`-fdebug-prefix-map=${opts.scratchDir}=.`] : []),
    ...(opts.forceIncludes ?? []).flatMap((h) => ['-include', h]),
    '-c',
    src,
    '-o',
    out,
  ];
  try {
    await execFileP(opts.clang ?? 'clang', args, { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as { code?: string | number; stderr?: string };
    if (err.code === 'ENOENT') throw new BuildError('clang is not installed (apt-get install clang)', [], Unsupported);
    const diags = parseDiagnostics(err.stderr ?? String(e)).filter((d) => !/: warning:/.test(d));
    throw new BuildError(`compiling ${opts.label ?? src} failed`, diags);
  }
}

/**
 * Removes an object's DWARF sections (`llvm-strip --strip-debug`), keeping its BTF: what libbpf
 * and the verifier read. False when no llvm-strip is installed (the object is left as it was).
 */
export async function stripDebugInfo(path: string): Promise<boolean> {
  for (const tool of ['llvm-strip', 'llvm-strip-14']) {
    try {
      await execFileP(tool, ['--strip-debug', path]);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw new BuildError(`${tool} ${path}: ${(e as Error).message}`);
    }
  }
  return false;
}
