// Encoders/decoders between BTF-described bytes and plain JS values. A codec is compiled once
// per type into a tree of closures with precomputed offsets; decode/encode only run closures.
//
// JS representation:
//   ints ≤ 32 bits → number; 64/128-bit ints and pointers → bigint; bool → boolean;
//   char arrays → string (up to the first NUL); other arrays → arrays; structs → objects
//   (anonymous struct/union members flattened); enums → enumerator name (or the number when
//   unknown); unions → Uint8Array copies; floats → number; bitfields → number (bigint above
//   32 bits), boolean or enumerator name depending on their declared type.
// Encoding starts from zeroed bytes, so missing struct fields, missing trailing array
// elements and unused string bytes are zero. Decoded objects encode back to the same bytes,
// except padding (zeroed), non-UTF-8 strings, and non-0/1 bytes under a bool.
import { Btf } from './btf.js';
import type { BtfEnum, BtfEnum64, BtfMember, BtfType } from './types.js';

export interface Codec {
  readonly size: number;
  decode(buf: Uint8Array, offset?: number): unknown;
  /** Writes `value` into `out` at `offset` (a new zeroed array of `size` bytes when omitted) and returns `out`. */
  encode(value: unknown, out?: Uint8Array, offset?: number): Uint8Array;
}

export interface CodecOptions {
  /** Name of the value in error messages: `value.addr.port: ...` (default 'value'). */
  name?: string;
  /** Decode char arrays as strings (default true); false gives arrays of numbers. */
  charArraysAsStrings?: boolean;
}

/** What `codecFor` returns: a Codec that also names its type. */
export interface BtfCodec extends Codec {
  readonly typeId: number;
  /** C spelling of the type. */
  readonly typeName: string;
}

/** Thrown by `Codec.encode` for a value that does not match the type. */
export class EncodeError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'EncodeError';
  }
}

type Reader = (dv: DataView, bytes: Uint8Array, off: number) => unknown;
type Writer = (dv: DataView, bytes: Uint8Array, off: number, v: unknown) => void;

interface Node {
  readonly size: number;
  readonly read: Reader;
  /** Assumes the target bytes are zero; writes only what `v` specifies. */
  readonly write: Writer;
  /** Decoding loses information (bool: any non-zero byte; string: bytes after the NUL). */
  readonly lossy?: boolean;
}

/** Internal: a bad value, with the path (relative to the node that threw) built up while unwinding. */
class FieldError {
  constructor(public path: string, readonly reason: string) {}
}

function fail(reason: string): never {
  throw new FieldError('', reason);
}

/** Prepends a path segment to a FieldError passing through a struct or array. */
function within(e: unknown, segment: string): unknown {
  if (e instanceof FieldError) e.path = segment + e.path;
  return e;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || v == null) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `a Uint8Array of ${v.length} bytes`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

// ---------------------------------------------------------------- integers

const INT_TEXT = /^([+-]?)(0x[0-9a-f]+|0o[0-7]+|0b[01]+|\d+)$/i;

/** number (integer), bigint or decimal/hex/octal/binary string → bigint; undefined for other types. */
function integerOf(v: unknown, label: string): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) fail(`${v} is not an integer (${label})`);
    if (!Number.isSafeInteger(v)) fail(`${v} is not a safe integer; pass a bigint or a string (${label})`);
    return BigInt(v);
  }
  if (typeof v === 'string') {
    const m = INT_TEXT.exec(v.trim());
    if (!m) fail(`expected an integer (${label}), got ${describe(v)}`);
    const n = BigInt(m[2]);
    return m[1] === '-' ? -n : n;
  }
  return undefined;
}

function toBigInt(v: unknown, lo: bigint, hi: bigint, label: string): bigint {
  const n = integerOf(v, label);
  if (n === undefined) fail(`expected an integer (${label}), got ${describe(v)}`);
  if (n < lo || n > hi) fail(`${String(v)} does not fit in ${label}`);
  return n;
}

/** Slow path of small-int writers: anything that is not already an in-range number. */
function toSmallInt(v: unknown, lo: number, hi: number, label: string): number {
  return Number(toBigInt(v, BigInt(lo), BigInt(hi), label));
}

function intRange(bits: number, signed: boolean): [bigint, bigint] {
  return signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];
}

type SmallGet = (dv: DataView, off: number) => number;
type SmallSet = (dv: DataView, off: number, v: number) => void;

function smallAccessors(size: number, signed: boolean, le: boolean): [SmallGet, SmallSet] {
  switch (size) {
    case 1: return signed ? [(d, o) => d.getInt8(o), (d, o, v) => d.setInt8(o, v)] : [(d, o) => d.getUint8(o), (d, o, v) => d.setUint8(o, v)];
    case 2: return signed
      ? [(d, o) => d.getInt16(o, le), (d, o, v) => d.setInt16(o, v, le)]
      : [(d, o) => d.getUint16(o, le), (d, o, v) => d.setUint16(o, v, le)];
    case 4: return signed
      ? [(d, o) => d.getInt32(o, le), (d, o, v) => d.setInt32(o, v, le)]
      : [(d, o) => d.getUint32(o, le), (d, o, v) => d.setUint32(o, v, le)];
    default: throw new Error(`BTF codec: no ${size}-byte small integer`);
  }
}

function smallIntNode(size: number, signed: boolean, le: boolean, label: string): Node {
  const [get, set] = smallAccessors(size, signed, le);
  const [blo, bhi] = intRange(size * 8, signed);
  const lo = Number(blo), hi = Number(bhi);
  return {
    size,
    read: (dv, _b, off) => get(dv, off),
    write: (dv, _b, off, v) => {
      set(dv, off, typeof v === 'number' && v >= lo && v <= hi && Number.isInteger(v) ? v : toSmallInt(v, lo, hi, label));
    },
  };
}

function int64Node(signed: boolean, le: boolean, label: string): Node {
  const [lo, hi] = intRange(64, signed);
  const read: Reader = signed ? (dv, _b, off) => dv.getBigInt64(off, le) : (dv, _b, off) => dv.getBigUint64(off, le);
  const set = signed
    ? (dv: DataView, off: number, v: bigint) => dv.setBigInt64(off, v, le)
    : (dv: DataView, off: number, v: bigint) => dv.setBigUint64(off, v, le);
  return {
    size: 8,
    read,
    write: (dv, _b, off, v) => set(dv, off, typeof v === 'bigint' && v >= lo && v <= hi ? v : toBigInt(v, lo, hi, label)),
  };
}

function int128Node(signed: boolean, le: boolean, label: string): Node {
  const [lo, hi] = intRange(128, signed);
  const [loAt, hiAt] = le ? [0, 8] : [8, 0];
  return {
    size: 16,
    read: (dv, _b, off) => {
      const v = (dv.getBigUint64(off + hiAt, le) << 64n) | dv.getBigUint64(off + loAt, le);
      return signed ? BigInt.asIntN(128, v) : v;
    },
    write: (dv, _b, off, v) => {
      const n = BigInt.asUintN(128, toBigInt(v, lo, hi, label));
      dv.setBigUint64(off + loAt, BigInt.asUintN(64, n), le);
      dv.setBigUint64(off + hiAt, n >> 64n, le);
    },
  };
}

function intNode(size: number, signed: boolean, le: boolean, label: string): Node {
  if (size === 1 || size === 2 || size === 4) return smallIntNode(size, signed, le, label);
  if (size === 8) return int64Node(signed, le, label);
  if (size === 16) return int128Node(signed, le, label);
  return bytesNode(size, label);
}

function boolNode(size: number, le: boolean, label: string): Node {
  const int = intNode(size, false, le, label);
  return {
    size,
    lossy: true,
    read: (dv, b, off) => {
      const v = int.read(dv, b, off);
      return v !== 0 && v !== 0n;
    },
    write: (dv, b, off, v) => {
      if (typeof v !== 'boolean') fail(`expected a boolean (${label}), got ${describe(v)}`);
      if (v) int.write(dv, b, off, 1);
    },
  };
}

// ---------------------------------------------------------------- enums

interface EnumInfo {
  /** Decoded value (number or bigint, matching what the integer reader returns) → name. */
  names: Map<number | bigint, string>;
  byName: Map<string, number | bigint>;
  label: string;
}

function enumInfo(t: BtfEnum | BtfEnum64, bits: number, signed: boolean, big: boolean, label: string): EnumInfo {
  const names = new Map<number | bigint, string>();
  const byName = new Map<string, number | bigint>();
  for (const e of t.values) {
    const raw = signed ? BigInt.asIntN(bits, BigInt(e.value)) : BigInt.asUintN(bits, BigInt(e.value));
    const key = big ? raw : Number(raw);
    if (!names.has(key)) names.set(key, e.name);
    byName.set(e.name, key);
  }
  return { names, byName, label };
}

/** name, number, bigint or numeric string → the integer to store (checked to fit `bits`). */
function enumValue(info: EnumInfo, v: unknown, bits: number): bigint {
  if (typeof v === 'string') {
    const known = info.byName.get(v);
    if (known !== undefined) return BigInt(known);
    if (!INT_TEXT.test(v.trim())) {
      const some = [...info.byName.keys()];
      const list = some.length > 12 ? `${some.slice(0, 12).join(', ')}, ...` : some.join(', ');
      fail(`${describe(v)} is not an enumerator of ${info.label} (${list})`);
    }
  }
  const n = integerOf(v, info.label);
  if (n === undefined) fail(`expected an enumerator name or an integer (${info.label}), got ${describe(v)}`);
  // Accept both the signed and the unsigned reading of the storage: compilers before clang 15
  // mark every enum unsigned, even those with negative enumerators.
  if (n < -(1n << BigInt(bits - 1)) || n > (1n << BigInt(bits)) - 1n) fail(`${String(v)} does not fit in ${info.label}`);
  return n;
}

function enumNode(t: BtfEnum | BtfEnum64, le: boolean, label: string): Node {
  const size = t.size;
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) return bytesNode(size, label);
  const big = size === 8;
  const info = enumInfo(t, size * 8, t.signed, big, label);
  if (big) {
    const read: Reader = t.signed ? (dv, _b, off) => dv.getBigInt64(off, le) : (dv, _b, off) => dv.getBigUint64(off, le);
    return {
      size,
      read: (dv, b, off) => {
        const v = read(dv, b, off) as bigint;
        return info.names.get(v) ?? v;
      },
      write: (dv, _b, off, v) => dv.setBigUint64(off, BigInt.asUintN(64, enumValue(info, v, 64)), le),
    };
  }
  const [get] = smallAccessors(size, t.signed, le);
  const [, set] = smallAccessors(size, false, le);
  const mod = 2 ** (size * 8);
  return {
    size,
    read: (dv, _b, off) => {
      const v = get(dv, off);
      return info.names.get(v) ?? v;
    },
    write: (dv, _b, off, v) => {
      const n = Number(enumValue(info, v, size * 8));
      set(dv, off, n < 0 ? n + mod : n);
    },
  };
}

// ---------------------------------------------------------------- floats, bytes, strings

const FLT_MAX = 3.4028234663852886e38;

function floatNode(size: number, le: boolean, label: string): Node {
  if (size !== 4 && size !== 8) return bytesNode(size, label);
  const check = (v: unknown): number => {
    if (typeof v !== 'number') fail(`expected a number (${label}), got ${describe(v)}`);
    if (size === 4 && Number.isFinite(v) && Math.abs(v) > FLT_MAX) fail(`${v} does not fit in ${label}`);
    return v;
  };
  return size === 4
    ? { size, read: (dv, _b, off) => dv.getFloat32(off, le), write: (dv, _b, off, v) => dv.setFloat32(off, check(v), le) }
    : { size, read: (dv, _b, off) => dv.getFloat64(off, le), write: (dv, _b, off, v) => dv.setFloat64(off, check(v), le) };
}

/** Opaque bytes (unions, long double, odd sizes): decodes to a copy; encodes from a Uint8Array. */
function bytesNode(size: number, label: string): Node {
  return {
    size,
    read: (_dv, bytes, off) => bytes.slice(off, off + size),
    write: (_dv, bytes, off, v) => {
      if (!(v instanceof Uint8Array) || v.length > size) {
        fail(`expected a Uint8Array of at most ${size} bytes (${label}), got ${describe(v)}`);
      }
      bytes.set(v, off);
    },
  };
}

const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

function charArrayNode(n: number, label: string): Node {
  return {
    size: n,
    lossy: true,
    read: (_dv, bytes, off) => {
      const end = off + n;
      let s = '';
      for (let i = off; i < end; i++) {
        const c = bytes[i];
        if (c === 0) return s;
        if (c >= 0x80) {
          const nul = bytes.indexOf(0, i);
          return s + utf8Decoder.decode(bytes.subarray(i, nul < 0 || nul > end ? end : nul));
        }
        s += String.fromCharCode(c);
      }
      return s;
    },
    write: (_dv, bytes, off, v) => {
      if (typeof v !== 'string') fail(`expected a string (${label}), got ${describe(v)}`);
      if (v.includes('\0')) fail(`${describe(v)} contains a NUL character (${label})`);
      // The string may fill the whole array (no NUL), which is how decode reads it back.
      const { read } = utf8Encoder.encodeInto(v, bytes.subarray(off, off + n));
      if (read < v.length) fail(`${describe(v)} is ${utf8Encoder.encode(v).length} bytes, does not fit in ${label}`);
    },
  };
}

function arrayNode(elem: Node, n: number, label: string): Node {
  const es = elem.size;
  return {
    size: es * n,
    read: (dv, bytes, off) => {
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = elem.read(dv, bytes, off + i * es);
      return out;
    },
    write: (dv, bytes, off, v) => {
      if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView))) {
        fail(`expected an array (${label}), got ${describe(v)}`);
      }
      const a = v as ArrayLike<unknown>;
      if (a.length > n) fail(`${a.length} elements do not fit in ${label}`);
      let i = 0;
      try {
        for (; i < a.length; i++) if (a[i] !== undefined) elem.write(dv, bytes, off + i * es, a[i]);
      } catch (e) {
        throw within(e, `[${i}]`);
      }
    },
  };
}

// ---------------------------------------------------------------- bitfields

/** Reads/writes `bits` bits starting `shift` bits into the byte at `off`, as an unsigned number or bigint. */
interface BitAccess {
  get(bytes: Uint8Array, off: number): number | bigint;
  set(bytes: Uint8Array, off: number, v: number | bigint): void;
}

function bitAccess(shift: number, bits: number, le: boolean): BitAccess {
  const span = Math.ceil((shift + bits) / 8);
  // Position of the field's lowest bit within the span read as one integer.
  const low = le ? shift : span * 8 - shift - bits;
  if (bits <= 32) {
    // span ≤ 5 bytes: exact in doubles
    const unit = 2 ** low, mod = 2 ** bits;
    const load = (b: Uint8Array, off: number): number => {
      let acc = 0;
      if (le) for (let i = span - 1; i >= 0; i--) acc = acc * 256 + b[off + i];
      else for (let i = 0; i < span; i++) acc = acc * 256 + b[off + i];
      return acc;
    };
    return {
      get: (b, off) => Math.floor(load(b, off) / unit) % mod,
      set: (b, off, v) => {
        let acc = load(b, off);
        acc += ((v as number) - (Math.floor(acc / unit) % mod)) * unit;
        if (le) for (let i = 0; i < span; i++, acc = Math.floor(acc / 256)) b[off + i] = acc % 256;
        else for (let i = span - 1; i >= 0; i--, acc = Math.floor(acc / 256)) b[off + i] = acc % 256;
      },
    };
  }
  const blow = BigInt(low), mask = (1n << BigInt(bits)) - 1n;
  const load = (b: Uint8Array, off: number): bigint => {
    let acc = 0n;
    if (le) for (let i = span - 1; i >= 0; i--) acc = (acc << 8n) | BigInt(b[off + i]);
    else for (let i = 0; i < span; i++) acc = (acc << 8n) | BigInt(b[off + i]);
    return acc;
  };
  return {
    get: (b, off) => (load(b, off) >> blow) & mask,
    set: (b, off, v) => {
      let acc = (load(b, off) & ~(mask << blow)) | ((v as bigint) << blow);
      if (le) for (let i = 0; i < span; i++, acc >>= 8n) b[off + i] = Number(acc & 0xffn);
      else for (let i = span - 1; i >= 0; i--, acc >>= 8n) b[off + i] = Number(acc & 0xffn);
    },
  };
}

/** A bitfield at `bitOffset` bits from the node's offset, of declared (resolved) type `t`. */
function bitfieldNode(t: BtfType, bitOffset: number, bits: number, le: boolean, label: string): Node {
  const byte = Math.floor(bitOffset / 8);
  const acc = bitAccess(bitOffset % 8, bits, le);
  const big = bits > 32;
  const signed = (t.kind === 'INT' || t.kind === 'ENUM' || t.kind === 'ENUM64') && t.signed;
  const [lo, hi] = intRange(bits, signed);
  const toSigned = (u: number | bigint): number | bigint => {
    if (!signed) return u;
    return big ? BigInt.asIntN(bits, u as bigint) : (u as number) >= 2 ** (bits - 1) ? (u as number) - 2 ** bits : u;
  };
  const store = (b: Uint8Array, off: number, n: bigint): void => {
    const u = BigInt.asUintN(bits, n);
    acc.set(b, off + byte, big ? u : Number(u));
  };
  const node = (read: Reader, write: Writer, lossy = false): Node => ({ size: 0, read, write, lossy });

  if (t.kind === 'INT' && t.bool) {
    return node((_d, b, off) => acc.get(b, off + byte) != 0, (_d, b, off, v) => {
      if (typeof v !== 'boolean') fail(`expected a boolean (${label}), got ${describe(v)}`);
      if (v) store(b, off, 1n);
    }, true);
  }
  if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
    const info = enumInfo(t, bits, signed, big, label);
    return node(
      (_d, b, off) => {
        const v = toSigned(acc.get(b, off + byte));
        return info.names.get(v) ?? v;
      },
      (_d, b, off, v) => store(b, off, enumValue(info, v, bits)),
    );
  }
  if (t.kind !== 'INT') throw new Error(`BTF codec: bitfield of unsupported kind ${t.kind} (${label})`);
  return node((_d, b, off) => toSigned(acc.get(b, off + byte)), (_d, b, off, v) => store(b, off, toBigInt(v, lo, hi, label)));
}

// ---------------------------------------------------------------- structs

interface Field {
  readonly key: string;
  readonly off: number;
  readonly node: Node;
  /** Bytes of information the field carries: orders the variants of anonymous unions. */
  readonly weight: number;
}

const weightOf = (node: Node, bits?: number): number => (bits ? bits / 8 : node.size) - (node.lossy ? 0.5 : 0);
const sum = (fields: Field[]): number => fields.reduce((a, f) => a + f.weight, 0);

/** `fields` in declaration order for decoding; `writeOrder` the same fields in encoding order. */
function structNode(fields: Field[], writeOrder: Field[], size: number, label: string): Node {
  const keys = new Set(fields.map((f) => f.key));
  const n = fields.length;
  return {
    size,
    read: (dv, bytes, off) => {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const f = fields[i];
        o[f.key] = f.node.read(dv, bytes, off + f.off);
      }
      return o;
    },
    write: (dv, bytes, off, v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) {
        fail(`expected an object (${label}), got ${describe(v)}`);
      }
      const o = v as Record<string, unknown>;
      for (const k in o) {
        if (!keys.has(k)) throw new FieldError(`.${k}`, `unknown field of ${label} (fields: ${[...keys].join(', ')})`);
      }
      let i = 0;
      try {
        for (; i < n; i++) {
          const f = writeOrder[i];
          const x = o[f.key];
          if (x !== undefined) f.node.write(dv, bytes, off + f.off, x);
        }
      } catch (e) {
        throw within(e, `.${writeOrder[i].key}`);
      }
    },
  };
}

// ---------------------------------------------------------------- compiling types to nodes

const QUALIFIERS = new Set(['CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG']);

class Compiler {
  private readonly nodes = new Map<number, Node>();
  private readonly le: boolean;

  constructor(private readonly btf: Btf, private readonly strings: boolean) {
    this.le = btf.littleEndian;
  }

  node(id: number): Node {
    let n = this.nodes.get(id);
    if (!n) {
      n = this.build(id);
      this.nodes.set(id, n);
    }
    return n;
  }

  /** C name for messages, without top-level qualifiers: `__u16`, not `const volatile __u16`. */
  private label(id: number): string {
    let t = this.btf.type(id);
    while (QUALIFIERS.has(t.kind)) t = this.btf.type((t as { type: number }).type);
    return this.btf.typeName(t.id);
  }

  private build(id: number): Node {
    const { btf, le } = this;
    const label = this.label(id);
    const t = btf.type(btf.resolve(id));
    switch (t.kind) {
      case 'INT': return t.bool ? boolNode(t.size, le, label) : intNode(t.size, t.signed, le, label);
      case 'PTR': return intNode(8, false, le, label);
      case 'ENUM': case 'ENUM64': return enumNode(t, le, label);
      case 'FLOAT': return floatNode(t.size, le, label);
      case 'UNION': return bytesNode(t.size, label);
      case 'STRUCT': {
        const { read, write } = this.fields(t.members, 0, false, new Set());
        return structNode(read, write, t.size, label);
      }
      case 'VAR': return this.node(t.type);
      case 'DATASEC': return this.datasec(t.id);
      case 'ARRAY':
        if (this.strings && this.isChar(t.type)) return charArrayNode(t.nelems, label);
        return arrayNode(this.node(t.type), t.nelems, label);
      default:
        throw new Error(`BTF codec: cannot encode or decode ${t.kind} (${label}, type id ${id})`);
    }
  }

  /** `char`, `signed char` or `unsigned char`, the last two only when marked BTF_INT_CHAR. */
  private isChar(id: number): boolean {
    const t = this.btf.type(this.btf.resolve(id));
    if (t.kind !== 'INT' || t.size !== 1 || t.bool) return false;
    return t.name === 'char' || (t.char && (t.name === 'signed char' || t.name === 'unsigned char'));
  }

  /**
   * Struct members as fields at byte offsets, flattening anonymous struct/union members.
   * `read` is declaration order. In `write`, the variants of an anonymous union are sorted so
   * that when overlapping variants are all given (as decode returns them) the one that keeps
   * the most information is written last and wins: the widest variant, a u8 rather than a
   * bool sharing its byte, the first declared among equals.
   */
  private fields(members: readonly BtfMember[], baseBits: number, union: boolean, seen: Set<string>): { read: Field[]; write: Field[] } {
    const read: Field[] = [];
    const groups: Field[][] = [];
    for (const m of members) {
      const bitOffset = baseBits + m.bitOffset;
      const t = this.btf.type(this.btf.resolve(m.type));
      if (!m.name) {
        if (t.kind !== 'STRUCT' && t.kind !== 'UNION') continue; // unnamed bitfield: padding
        const sub = this.fields(t.members, bitOffset, t.kind === 'UNION', seen);
        read.push(...sub.read);
        groups.push(sub.write);
        continue;
      }
      if (seen.has(m.name)) continue;
      seen.add(m.name);
      const f = this.field(m, t, bitOffset);
      read.push(f);
      groups.push([f]);
    }
    if (union) groups.reverse().sort((a, b) => sum(a) - sum(b)); // stable: ties keep reversed order
    return { read, write: groups.flat() };
  }

  private field(m: BtfMember, t: BtfType, bitOffset: number): Field {
    // kind_flag structs give the bitfield size in the member; older ones encode it in an INT type.
    let bits = m.bitSize;
    if (!bits && t.kind === 'INT' && (t.bits !== t.size * 8 || t.bitOffset !== 0)) {
      bits = t.bits;
      bitOffset += t.bitOffset;
    }
    if (!bits && bitOffset % 8 !== 0 && (t.kind === 'INT' || t.kind === 'ENUM' || t.kind === 'ENUM64')) bits = t.size * 8;
    if (!bits) {
      const node = this.node(m.type);
      return { key: m.name, off: bitOffset / 8, node, weight: weightOf(node) };
    }
    const off = Math.floor(bitOffset / 8);
    const node = bitfieldNode(t, bitOffset - off * 8, bits, this.le, `${this.label(m.type)}:${bits}`);
    return { key: m.name, off, node, weight: weightOf(node, bits) };
  }

  private datasec(id: number): Node {
    const sec = this.btf.type(id);
    if (sec.kind !== 'DATASEC') throw new Error(`BTF codec: type ${id} is not a DATASEC`);
    if (sec.size === 0 && sec.vars.length > 0) {
      throw new Error(`BTF codec: DATASEC ${sec.name} has no layout (size 0); read the object with readObjectBtf() or call Btf.fixDatasec()`);
    }
    const fields = sec.vars.map((v) => {
      const node = this.node(v.type);
      return { key: this.btf.type(v.type).name, off: v.offset, node, weight: weightOf(node) };
    });
    return structNode(fields, fields, sec.size, `section ${sec.name}`);
  }
}

// ---------------------------------------------------------------- public entry point

interface Compiled {
  compiler: Compiler;
  codecs: Map<string, BtfCodec>;
}

const compiled = new WeakMap<Btf, Compiled[]>();

function compiledFor(btf: Btf, strings: boolean): Compiled {
  let pair = compiled.get(btf);
  if (!pair) compiled.set(btf, (pair = []));
  return (pair[strings ? 1 : 0] ??= { compiler: new Compiler(btf, strings), codecs: new Map() });
}

class TypeCodec implements BtfCodec {
  readonly size: number;
  private lastBuf: Uint8Array | undefined;
  private lastDv: DataView | undefined;
  private lastBytes: Uint8Array | undefined;

  constructor(private readonly node: Node, readonly typeId: number, readonly typeName: string, private readonly root: string) {
    this.size = node.size;
  }

  /** DataView and plain Uint8Array over the same bytes as `buf` (Buffer#slice would not copy). */
  private views(buf: Uint8Array): [DataView, Uint8Array] {
    if (buf !== this.lastBuf) {
      if (!(buf instanceof Uint8Array)) throw new TypeError(`${this.root}: expected a Uint8Array buffer`);
      this.lastBuf = buf;
      this.lastDv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.lastBytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    return [this.lastDv!, this.lastBytes!];
  }

  private check(buf: Uint8Array, offset: number): void {
    if (!(Number.isInteger(offset) && offset >= 0 && offset + this.size <= buf.byteLength)) {
      throw new RangeError(`${this.root}: ${this.typeName} needs ${this.size} bytes at offset ${offset}, buffer has ${buf.byteLength}`);
    }
  }

  decode(buf: Uint8Array, offset = 0): unknown {
    const [dv, bytes] = this.views(buf);
    this.check(buf, offset);
    return this.node.read(dv, bytes, offset);
  }

  encode(value: unknown, out?: Uint8Array, offset = 0): Uint8Array {
    out ??= new Uint8Array(this.size);
    const [dv, bytes] = this.views(out);
    this.check(out, offset);
    bytes.fill(0, offset, offset + this.size);
    try {
      this.node.write(dv, bytes, offset, value);
    } catch (e) {
      if (e instanceof FieldError) throw new EncodeError(this.root + e.path, e.reason);
      throw e;
    }
    return out;
  }
}

/**
 * The codec for values of BTF type `typeId` (VAR and DATASEC included: a DATASEC is an object
 * of its variables). Codecs are built once per Btf, type and options, then reused.
 */
export function codecFor(btf: Btf, typeId: number, opts: CodecOptions = {}): BtfCodec {
  const { compiler, codecs } = compiledFor(btf, opts.charArraysAsStrings ?? true);
  const root = opts.name ?? 'value';
  const key = `${typeId}:${root}`;
  let codec = codecs.get(key);
  if (!codec) {
    codec = new TypeCodec(compiler.node(typeId), typeId, btf.typeName(typeId), root);
    codecs.set(key, codec);
  }
  return codec;
}
