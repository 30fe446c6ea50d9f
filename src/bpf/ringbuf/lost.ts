// The lost-record counter a BPF program keeps next to its ring buffer (see reader.ts): a plain
// or per-CPU array of __u64 (or __u32) counters, read and summed over CPUs without BTF.
import { constants } from 'node:os';
import { BpfError } from '../errors.js';
import type { BpfMap } from '../map.js';

/** Returns a function giving the counter's increase since this call. */
export function lostCounterReader(map: BpfMap, key: unknown): () => number {
  if (map.valueSize !== 8 && map.valueSize !== 4) {
    throw new BpfError('use as lost-record counter', map.description, constants.errno.EINVAL, {
      hint: `its values are ${map.valueSize} bytes; expected a __u64 or __u32 counter`,
    });
  }
  const keyBytes = map.keySize === 0 ? null : map.encodeKey(key);
  const read = (): number => {
    const raw = map.lookupRaw(keyBytes);
    if (!raw) return 0;
    const slot = map.isPerCpu ? Math.ceil(map.valueSize / 8) * 8 : map.valueSize;
    let sum = 0;
    for (let off = 0; off + map.valueSize <= raw.length; off += slot) {
      sum += map.valueSize === 8 ? Number(raw.readBigUInt64LE(off)) : raw.readUInt32LE(off);
      if (!map.isPerCpu) break;
    }
    return sum;
  };
  const base = read();
  return () => read() - base;
}
