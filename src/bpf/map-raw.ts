// Map operations on raw bytes by fd, as a foreign caller (a Wasm guest) asks for them: the
// command numbers of bpf(2) (BPF_MAP_LOOKUP_ELEM 1, UPDATE 2, DELETE 3, GET_NEXT_KEY 4), the
// buffers as given, and the kernel's answer as 0 or a negative errno, never an exception.
import { constants } from 'node:os';
import { libbpf } from './ffi/libbpf.js';

export const MAP_LOOKUP_ELEM = 1;
export const MAP_UPDATE_ELEM = 2;
export const MAP_DELETE_ELEM = 3;
export const MAP_GET_NEXT_KEY = 4;

/**
 * Runs one map command on `fd`. `key` is null for "the first key" of GET_NEXT_KEY and for maps
 * without keys; the caller sizes the buffers (key size, value size). Returns 0 or -errno
 * (-EINVAL for a command other than the four).
 */
export function rawMapOperate(
  fd: number,
  cmd: number,
  key: Uint8Array | null,
  value: Uint8Array | null,
  nextKey: Uint8Array | null,
  flags: number,
): number {
  switch (cmd) {
    case MAP_LOOKUP_ELEM:
      if (!value) return -constants.errno.EFAULT;
      return flags ? libbpf.mapLookupElemFlags(fd, key, value, flags) : libbpf.mapLookupElem(fd, key, value);
    case MAP_UPDATE_ELEM:
      if (!value) return -constants.errno.EFAULT;
      return libbpf.mapUpdateElem(fd, key, value, flags);
    case MAP_DELETE_ELEM:
      if (!key) return -constants.errno.EFAULT;
      return libbpf.mapDeleteElem(fd, key);
    case MAP_GET_NEXT_KEY:
      if (!nextKey) return -constants.errno.EFAULT;
      return libbpf.mapGetNextKey(fd, key, nextKey);
    default:
      return -constants.errno.EINVAL;
  }
}
