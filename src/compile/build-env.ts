// Where a BPF C build finds its headers, as libbpf-bootstrap's Makefile arranges it: kbpf's
// compatibility wrappers of libbpf's headers first, then vmlinux.h, kbpf.h and the source's
// own directories, and the compiler's system include directories last (`-idirafter`), so that
// UAPI-style sources (`#include <linux/bpf.h>`, which needs the architecture's <asm/types.h>)
// compile as well as vmlinux.h-style ones. `-target bpf` alone leaves the multiarch directory
// (/usr/include/x86_64-linux-gnu on Debian) out.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** kbpf.h (KBPF_EVENT, ...): in the source tree, next to this module's source. */
export const KBPF_INCLUDE_DIR = fileURLToPath(new URL('../../../src/compile/include/', import.meta.url));
/** Wrappers of <bpf/bpf_helpers.h> and <bpf/bpf_tracing.h> adding what older libbpf lacks. */
export const KBPF_COMPAT_DIR = fileURLToPath(new URL('../../../src/compile/include/compat/', import.meta.url));

const cache = new Map<string, string[]>();

/** The directories `clang` searches for `#include <...>` when compiling for the host, in order. */
export function parseSearchList(verboseOutput: string): string[] {
  const lines = verboseOutput.split('\n');
  const start = lines.findIndex((l) => l.startsWith('#include <...> search starts here:'));
  if (start < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (l.startsWith('End of search list.')) break;
    const dir = l.trim().replace(/ \(framework directory\)$/, '');
    if (dir.startsWith('/')) out.push(dir);
  }
  return out;
}

/** The compiler's system include directories (host target), asked once per compiler. */
export function systemIncludeDirs(clang = 'clang'): string[] {
  const hit = cache.get(clang);
  if (hit) return hit;
  const r = spawnSync(clang, ['-v', '-E', '-x', 'c', '-'], { input: '', encoding: 'utf8', timeout: 30_000 });
  const dirs = r.error ? [] : parseSearchList(`${r.stdout}\n${r.stderr}`);
  cache.set(clang, dirs);
  return dirs;
}
