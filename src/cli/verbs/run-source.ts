// `kbpf run DIR` and `kbpf run FILE.bpf.c [FILE.h…]`: a source directory or files are built into
// the local store first (as `kbpf build` does, in the CLI), and the package built is what runs.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** What `run`'s arguments name: a package reference, or sources to build first. */
export type RunTarget =
  | { kind: 'image'; image: string }
  | { kind: 'source'; dir: string; files?: string[]; includeDirs: string[] };

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/**
 * A directory holding *.bpf.c files (or a kbpf.yaml) is a source directory; a path ending in
 * .c that exists is a source file, and the further arguments are its other sources and headers.
 * Anything else is a package reference, which takes no further arguments.
 */
export function runTarget(image: string, rest: readonly string[]): RunTarget {
  if (isDir(image) && readdirSync(image).some((f) => f.endsWith('.bpf.c') || f === 'kbpf.yaml')) {
    if (rest.length) throw new CliError(`${image} is a source directory: give no further files (they are in it)`);
    return { kind: 'source', dir: resolve(image), includeDirs: [] };
  }
  if (image.endsWith('.c')) {
    const args = [image, ...rest];
    for (const a of args) if (!existsSync(a)) throw new CliError(`${a}: no such file`);
    const sources = args.filter((a) => a.endsWith('.c'));
    const headers = args.filter((a) => !a.endsWith('.c'));
    const bad = headers.find((h) => !h.endsWith('.h'));
    if (bad) throw new CliError(`${bad}: not a .c source or .h header (kbpf run FILE.bpf.c [FILE.h…])`);
    const dir = resolve(dirname(image));
    const other = sources.find((s) => resolve(dirname(s)) !== dir);
    if (other) throw new CliError(`${other}: the sources of one package must be in one directory (${dir})`);
    const includeDirs = [...new Set(headers.map((h) => resolve(dirname(h))))].filter((d) => d !== dir);
    return { kind: 'source', dir, files: sources.map((s) => basename(s)), includeDirs };
  }
  if (rest.length)
    throw new CliError(
      `unexpected arguments ${rest.join(' ')}: only a source file takes further files (kbpf run FILE.bpf.c [FILE.h…])`,
    );
  return { kind: 'image', image };
}

/** Builds the sources into the local store; returns the reference of the package built. */
export async function buildForRun(
  ctx: CliContext,
  c: Command,
  t: Extract<RunTarget, { kind: 'source' }>,
  tag: string | undefined,
  quiet: boolean,
): Promise<string> {
  const p = ctx.paths(c);
  const { buildPackage } = await import('../../compile/builder.js');
  const res = await buildPackage(t.dir, {
    tag,
    store: new LayoutStore(p.storeDir),
    cacheDir: p.cacheDir,
    ...(t.files ? { files: t.files } : {}),
    includeDirs: t.includeDirs,
    progress: quiet ? undefined : (m) => ctx.note(m),
  });
  if (!quiet) ctx.note(`built ${res.stored.reference}`);
  return res.stored.reference;
}
