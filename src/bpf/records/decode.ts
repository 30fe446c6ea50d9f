// How the records of an event buffer are turned into values: the BTF codec of their struct, a
// codec given by the caller, or raw bytes. Shared by every walker (ring buffer, perf buffer).
import { constants } from 'node:os';
import { type Codec, codecFor } from '../btf/index.js';
import { BpfError } from '../errors.js';
import type { BpfMap } from '../map.js';

/** How records are turned into values. */
export type RecordDecode = 'btf' | 'raw' | Codec;

/** The codec records decode with, from the options and the map's BTF. */
export function resolveCodec(
  map: BpfMap,
  opts: { decode?: RecordDecode; typeName?: string; ignoreValueType?: boolean },
): { codec: Codec | null; name: string } {
  const decode = opts.decode;
  if (decode === 'raw') return { codec: null, name: 'raw' };
  if (decode && typeof decode === 'object') return { codec: decode, name: 'codec' };
  const btf = map.btf;
  if (opts.typeName) {
    if (!btf) {
      throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
        hint: `type "${opts.typeName}" was asked for but the map has no BTF`,
      });
    }
    const found = btf.findByName(opts.typeName, 'struct') ?? btf.findByName(opts.typeName);
    if (!found) {
      throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
        hint: `no type "${opts.typeName}" in the object's BTF`,
      });
    }
    return { codec: codecFor(btf, found.id), name: `btf:${opts.typeName}` };
  }
  if (btf && map.valueTypeId && !opts.ignoreValueType)
    return { codec: codecFor(btf, map.valueTypeId), name: `btf:${btf.typeName(map.valueTypeId)}` };
  if (decode === 'btf') {
    throw new BpfError('decode records of', map.description, constants.errno.ENOENT, {
      hint: "the record type is unknown: pass typeName (a struct in the object's BTF) or a Codec",
    });
  }
  return { codec: null, name: 'raw' };
}

/**
 * Decodes one record at bytes[off, off + len): with the codec (a record shorter than its type,
 * e.g. a variable-length tail, decodes zero-padded), or as a Buffer copy without one. Throws what
 * the codec throws.
 */
export class RecordDecoder {
  readonly codec: Codec | null;
  readonly #size: number;
  #scratch: Uint8Array | null = null;

  constructor(codec: Codec | null) {
    this.codec = codec;
    this.#size = codec ? codec.size : 0;
  }

  decode(bytes: Uint8Array, off: number, len: number): unknown {
    const codec = this.codec;
    if (!codec) return Buffer.from(bytes.subarray(off, off + len));
    if (len >= this.#size) return codec.decode(bytes, off);
    if (!this.#scratch) this.#scratch = new Uint8Array(this.#size);
    this.#scratch.fill(0);
    this.#scratch.set(bytes.subarray(off, off + len));
    return codec.decode(this.#scratch, 0);
  }
}
