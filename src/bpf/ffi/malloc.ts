// glibc's allocator keeps memory a process freed for reuse: after a large block (above the mmap
// threshold) is freed, glibc raises the threshold to its size, so later blocks of that size come
// from the heap and stay in it when freed; and each thread that allocates gets an arena of its
// own. A long-running process that opens and loads BPF objects over and over (libbpf allocates
// and frees megabytes per load) grows by tens of KB per load that way. These settings keep the
// threshold where it is (large blocks are mapped, and unmapped when freed) and bound the arenas.
import { koffi } from './koffi.js';

const M_MMAP_THRESHOLD = -3;
const M_ARENA_MAX = -8;

let applied = false;

/** Makes glibc give freed memory back; a no-op where libc is not glibc. Returns whether it applied. */
export function limitMallocRetention(opts: { mmapThreshold?: number; arenas?: number } = {}): boolean {
  if (applied) return true;
  try {
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)') as (
      p: number,
      v: number,
    ) => number;
    const ok =
      mallopt(M_MMAP_THRESHOLD, opts.mmapThreshold ?? 128 * 1024) === 1 && mallopt(M_ARENA_MAX, opts.arenas ?? 2) === 1;
    applied = ok;
    return ok;
  } catch {
    return false;
  }
}
