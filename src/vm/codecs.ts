// Codecs of a VM object's values: map keys and values, ctx structs and event records, BTF-typed
// where the object's BTF has the type, raw bytes otherwise (hex text, or a little-endian integer).
import { type Btf, type Codec, codecFor } from 'kbpf/bpf';
import { InvalidError } from '../errors.js';
import type { MapSpec } from './maps.js';

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function parseHex(text: string): Uint8Array {
  const clean = text.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new InvalidError(`not hex bytes: ${JSON.stringify(text)}`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

/** Raw bytes for a map without BTF types: hex text, or a little-endian integer of the size. */
export function rawCodec(size: number): Codec {
  return {
    size,
    encode(v: unknown, out?: Uint8Array, offset = 0): Uint8Array {
      const buf = out ?? new Uint8Array(size);
      let bytes: Uint8Array;
      if (typeof v === 'string' && !/^-?\d+$/.test(v)) bytes = parseHex(v);
      else {
        bytes = new Uint8Array(size);
        let n = BigInt.asUintN(64, BigInt(v as number | bigint | string));
        for (let i = 0; i < Math.min(size, 8); i++, n >>= 8n) bytes[i] = Number(n & 0xffn);
      }
      if (bytes.length !== size) throw new InvalidError(`${bytes.length} bytes given for a ${size}-byte value`);
      buf.set(bytes, offset);
      return buf;
    },
    decode: (b: Uint8Array, offset = 0) => hex(b.subarray(offset, offset + size)),
  };
}

export interface MapCodecs {
  key: Codec;
  value: Codec;
}

/** The codecs of a map's key and value: BTF-typed where the object says, raw bytes otherwise. */
export function mapCodecs(spec: MapSpec, btf: Btf | undefined): MapCodecs {
  const of = (id: number | undefined, size: number) => (btf && id ? codecFor(btf, id) : rawCodec(size));
  return { key: of(spec.btfKey, spec.keySize), value: of(spec.btfValue, spec.valueSize) };
}

/** The codec of a named struct of the object's BTF (an event record, a ctx). */
export function structCodec(btf: Btf | undefined, name: string): Codec | undefined {
  const t = btf?.findByName(name, 'struct');
  return btf && t ? codecFor(btf, t.id) : undefined;
}

export interface GlobalVariable {
  section: string;
  offset: number;
  typeId: number;
}

/** Where a global variable (`const volatile` config, .data, .bss) of the object is. */
export function globalVariable(btf: Btf | undefined, name: string): GlobalVariable | undefined {
  for (const section of ['.rodata', '.data', '.bss']) {
    const v = btf?.datasec(section)?.vars.find((x) => x.name === name);
    if (v) return { section, offset: v.offset, typeId: v.typeId };
  }
  return undefined;
}
