// BTF objects loaded in the kernel (by id), as parsed Btf. Used for maps and programs that were
// re-opened from a pin or an id, whose object file is not at hand.

import { Btf } from './btf/index.js';
import { BpfError } from './errors.js';
import { koffi, lastErrno } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';

const cache = new Map<number, Btf>();

export function loadKernelBtfById(id: number): Btf {
  const hit = cache.get(id);
  if (hit) return hit;
  const ptr = libbpf.btfLoadFromKernelById(id);
  if (!ptr) throw new BpfError('load BTF', `id ${id}`, lastErrno());
  try {
    const btf = Btf.parse(rawDataOf(ptr));
    cache.set(id, btf);
    return btf;
  } finally {
    libbpf.btfFree(ptr);
  }
}

/** A copy of libbpf's BTF (struct btf *) as raw bytes. */
export function rawDataOf(btfPtr: unknown): Uint8Array {
  const size = [0];
  const data = libbpf.btfRawData(btfPtr, size);
  if (!data) throw new BpfError('read BTF data', '', lastErrno());
  return new Uint8Array(koffi.view(data, size[0]).slice(0));
}
