// Encoders/decoders between BTF-described bytes and plain JS values. A codec is compiled once
// per type: structs and arrays into one generated function each for decode and encode (see
// "code generation" below), scalars into small closures.
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
import { Corrupted, Invalid, KbpfError, Unsupported } from '../../errors.js';
import type { Btf } from './btf.js';
import { BtfError } from './errors.js';
import { type LayoutField, MAX_JSON_INT64, maxJsonOfNames, type ValueLayout } from './layout.js';
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
export class EncodeError extends KbpfError {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(Invalid, `${path}: ${reason}`);
    this.name = 'EncodeError';
  }
}

// Bounds on what one codec may do, whatever the BTF says: a crafted `int x[4294967295][0]` must
// not be unrolled, a struct of structs must not fan out without end, a union must not make
// encode allocate gigabytes.
/** Values (scalars, arrays and structs counted alike) one decode may produce. */
export const MAX_CODEC_VALUES = 1 << 22;
/** Bytes of one value a codec may read or write. */
export const MAX_CODEC_SIZE = 1 << 28;
/** Fields of one struct, anonymous members flattened. */
export const MAX_STRUCT_FIELDS = 1 << 16;
/** Qualifiers and typedefs followed to a type. */
const MAX_QUALIFIERS = 64;

type Reader = (dv: DataView, bytes: Uint8Array, off: number) => unknown;
type Writer = (dv: DataView, bytes: Uint8Array, off: number, v: unknown) => void;

/** Internal: a bad value, with the path (relative to the node that threw) built up while unwinding. */
class FieldError {
  constructor(
    public path: string,
    readonly reason: string,
  ) {}
}

function fail(reason: string): never {
  throw new FieldError('', reason);
}

/** Prepends a path segment to a FieldError passing through a struct or array. */
function within(e: unknown, segment: string): unknown {
  if (e instanceof FieldError) e.path = segment + e.path;
  return e;
}

// ---------------------------------------------------------------- code generation
//
// Structs and arrays are compiled with `new Function` into one specialised function per type
// (decode and encode): each field is read at its constant offset (DataView getters, byte loads
// for u8), a struct decodes to one object literal with fixed keys (a stable hidden class), and
// small nested structs and arrays are inlined. Scalars with a non-trivial mapping (enums,
// bitfields, strings, bytes) are emitted as calls to small closures, which V8 inlines.
// Generated code refers to run-time values only through parameters (`k0`, `k1`, ...): the only
// BTF-derived text in it is field names, emitted as JSON string literals.

/** Nested structs/arrays up to this many leaf reads are inlined into their parent's function. */
const INLINE_MAX = 64;

/** Index placeholder in a generated path: replaced by the loop index when an error is thrown. */
const IDX = '\u0000';

/** `at + n` for a generated offset expression `at` (`o`, `o+12`, or an identifier). */
function plus(at: string, n: number): string {
  if (n === 0) return at;
  const m = /^([A-Za-z_$][\w$]*)(?:\+(\d+))?$/.exec(at);
  if (!m) return `(${at})+${n}`;
  return `${m[1]}+${Number(m[2] ?? 0) + n}`;
}

/** A JS object-literal key for `k` (an own property even for `__proto__`). */
function litKey(k: string): string {
  return k === '__proto__' ? `[${JSON.stringify(k)}]` : JSON.stringify(k);
}

class Gen {
  private readonly values: unknown[] = [];
  private readonly names: string[] = [];
  private temps = 0;
  /** Loop depth in the current function, for index variables i0, i1, ... */
  depth = 0;
  maxDepth = 0;
  /** Static path of the value being written, relative to the function's root (IDX for indices). */
  path = '';

  /** A parameter name bound to `value`. */
  k(value: unknown): string {
    let i = this.values.indexOf(value);
    if (i < 0) {
      i = this.values.length;
      this.values.push(value);
      this.names.push(`k${i}`);
    }
    return this.names[i];
  }

  tmp(): string {
    return `t${this.temps++}`;
  }

  decls(): string {
    const vars: string[] = [];
    for (let i = 0; i < this.temps; i++) vars.push(`t${i}`);
    for (let i = 0; i < this.maxDepth; i++) vars.push(`i${i} = 0`);
    return vars.length ? `let ${vars.join(', ')};\n` : '';
  }

  indices(): string {
    const ix: string[] = [];
    for (let i = 0; i < this.maxDepth; i++) ix.push(`i${i}`);
    return ix.join(', ');
  }

  compile<F>(name: string, params: string, body: string): F {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const make = new Function(...this.names, `"use strict";\nreturn function ${name}(${params}) {\n${body}\n};`) as (
      ...a: unknown[]
    ) => F;
    return make(...this.values);
  }
}

/** Whether `new Function` is allowed (not under --disallow-code-generation-from-strings). */
const CAN_GENERATE = (() => {
  try {
    return (new Function('return 1') as () => number)() === 1;
  } catch {
    return false;
  }
})();

/** Prefixes `e`'s path (a FieldError) with `path`, its index placeholders filled from `idx`. */
function withinAt(e: unknown, path: string, ...idx: number[]): unknown {
  if (e instanceof FieldError) {
    let j = 0;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the index placeholder that callers put in `path`
    e.path = path.replace(/\u0000/g, () => String(idx[j++])) + e.path;
  }
  return e;
}

abstract class Node {
  abstract readonly size: number;
  /** Decoding loses information (bool: any non-zero byte; string: bytes after the NUL). */
  lossy = false;
  /** Leaf reads when inlined (a parent inlines this node up to INLINE_MAX). */
  cost = 1;
  /** Values one decode of this node produces (this one included): bounded by MAX_CODEC_VALUES. */
  values = 1;
  /** The shape other readers of the same bytes follow (layout.ts). */
  abstract readonly layout: ValueLayout;
  /** Reads the value at `off`. */
  abstract read(dv: DataView, bytes: Uint8Array, off: number): unknown;
  /** Writes `v` at `off`. Assumes the target bytes are zero; writes only what `v` specifies. */
  abstract write(dv: DataView, bytes: Uint8Array, off: number, v: unknown): void;
  /** A JS expression reading the value at offset expression `at` (in scope: dv, b). */
  abstract rx(g: Gen, at: string): string;
  /** JS statements writing the value in variable `v` at `at`; may set `p` (error path) deeper. */
  abstract wx(g: Gen, at: string, v: string): string;

  /** rx, or a call of this node's own compiled reader when it is too big to inline. */
  readExpr(g: Gen, at: string): string {
    return this.cost <= INLINE_MAX ? this.rx(g, at) : `${g.k(this.reader())}(dv, b, ${at})`;
  }

  writeStmt(g: Gen, at: string, v: string): string {
    return this.cost <= INLINE_MAX ? this.wx(g, at, v) : `${g.k(this.writer())}(dv, b, ${at}, ${v});`;
  }

  /** The cost this node adds to a parent. */
  get inlineCost(): number {
    return this.cost <= INLINE_MAX ? this.cost : 1;
  }

  reader(): Reader {
    return (dv, b, off) => this.read(dv, b, off);
  }

  writer(): Writer {
    return (dv, b, off, v) => this.write(dv, b, off, v);
  }
}

/** A scalar: closures, plus optional inline code templates. */
class Leaf extends Node {
  readonly layout: ValueLayout;

  constructor(
    readonly size: number,
    private readonly r: Reader,
    private readonly w: Writer,
    private readonly inline: {
      rx?: (g: Gen, at: string) => string;
      wx?: (g: Gen, at: string, v: string) => string;
      lossy?: boolean;
      /** the layout; when omitted, an 'other' whose JSON text is at most maxJson bytes */
      layout?: ValueLayout;
      maxJson?: number;
    } = {},
  ) {
    super();
    this.lossy = inline.lossy ?? false;
    this.layout = inline.layout ?? { kind: 'other', size, read: r, maxJson: inline.maxJson ?? MAX_JSON_INT64 };
  }

  read(dv: DataView, b: Uint8Array, off: number): unknown {
    return this.r(dv, b, off);
  }

  write(dv: DataView, b: Uint8Array, off: number, v: unknown): void {
    this.w(dv, b, off, v);
  }

  rx(g: Gen, at: string): string {
    return this.inline.rx ? this.inline.rx(g, at) : `${g.k(this.r)}(dv, b, ${at})`;
  }

  wx(g: Gen, at: string, v: string): string {
    return this.inline.wx ? this.inline.wx(g, at, v) : `${g.k(this.w)}(dv, b, ${at}, ${v});`;
  }

  override reader(): Reader {
    return this.r;
  }

  override writer(): Writer {
    return this.w;
  }
}

/** A struct, union-as-struct (DATASEC) or array: compiled on first use. */
abstract class Composite extends Node {
  #read: Reader | undefined;
  #write: Writer | undefined;

  /** Body of the standalone reader `(dv, b, o)`. */
  protected readBody(g: Gen): string {
    return `return ${this.rx(g, 'o')};`;
  }

  /** The same without code generation. */
  protected abstract readSlow(dv: DataView, b: Uint8Array, off: number): unknown;
  protected abstract writeSlow(dv: DataView, b: Uint8Array, off: number, v: unknown): void;

  override reader(): Reader {
    if (!this.#read) {
      if (!CAN_GENERATE) {
        this.#read = (dv, b, off) => this.readSlow(dv, b, off);
      } else {
        const g = new Gen();
        const body = this.readBody(g);
        this.#read = g.compile<Reader>('decode', 'dv, b, o', g.decls() + body);
      }
    }
    return this.#read;
  }

  override writer(): Writer {
    if (!this.#write) {
      if (!CAN_GENERATE) {
        this.#write = (dv, b, off, v) => this.writeSlow(dv, b, off, v);
      } else {
        const g = new Gen();
        const body = this.wx(g, 'o', 'v');
        const within = g.k(withinAt);
        const ix = g.indices();
        this.#write = g.compile<Writer>(
          'encode',
          'dv, b, o, v',
          `let p = '';\n${g.decls()}try {\n${body}\n} catch (e) {\nthrow ${within}(e, p${ix ? `, ${ix}` : ''});\n}`,
        );
      }
    }
    return this.#write;
  }

  read(dv: DataView, b: Uint8Array, off: number): unknown {
    return this.reader()(dv, b, off);
  }

  write(dv: DataView, b: Uint8Array, off: number, v: unknown): void {
    this.writer()(dv, b, off, v);
  }
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
    case 1:
      return signed
        ? [(d, o) => d.getInt8(o), (d, o, v) => d.setInt8(o, v)]
        : [(d, o) => d.getUint8(o), (d, o, v) => d.setUint8(o, v)];
    case 2:
      return signed
        ? [(d, o) => d.getInt16(o, le), (d, o, v) => d.setInt16(o, v, le)]
        : [(d, o) => d.getUint16(o, le), (d, o, v) => d.setUint16(o, v, le)];
    case 4:
      return signed
        ? [(d, o) => d.getInt32(o, le), (d, o, v) => d.setInt32(o, v, le)]
        : [(d, o) => d.getUint32(o, le), (d, o, v) => d.setUint32(o, v, le)];
    default:
      throw new BtfError(`BTF codec: no ${size}-byte small integer`, Unsupported);
  }
}

const GETTER: Record<string, string> = {
  '1s': 'getInt8',
  '1u': 'getUint8',
  '2s': 'getInt16',
  '2u': 'getUint16',
  '4s': 'getInt32',
  '4u': 'getUint32',
  '8s': 'getBigInt64',
  '8u': 'getBigUint64',
};
const SETTER: Record<string, string> = {
  '1s': 'setInt8',
  '1u': 'setUint8',
  '2s': 'setInt16',
  '2u': 'setUint16',
  '4s': 'setInt32',
  '4u': 'setUint32',
  '8s': 'setBigInt64',
  '8u': 'setBigUint64',
};

/** Inline read of a 1/2/4/8-byte integer at `at`. */
function intRead(size: number, signed: boolean, le: boolean, at: string): string {
  if (size === 1 && !signed) return `b[${at}]`;
  const get = GETTER[`${size}${signed ? 's' : 'u'}`];
  return size === 1 ? `dv.${get}(${at})` : `dv.${get}(${at}, ${le})`;
}

/** Inline store of the already checked integer expression `x` at `at`. */
function intStore(size: number, signed: boolean, le: boolean, at: string, x: string): string {
  if (size === 1 && !signed) return `b[${at}] = ${x};`;
  const set = SETTER[`${size}${signed ? 's' : 'u'}`];
  return size === 1 ? `dv.${set}(${at}, ${x});` : `dv.${set}(${at}, ${x}, ${le});`;
}

function smallIntNode(size: number, signed: boolean, le: boolean, label: string): Node {
  const [get, set] = smallAccessors(size, signed, le);
  const [blo, bhi] = intRange(size * 8, signed);
  const lo = Number(blo),
    hi = Number(bhi);
  return new Leaf(
    size,
    (dv, _b, off) => get(dv, off),
    (dv, _b, off, v) => {
      set(
        dv,
        off,
        typeof v === 'number' && v >= lo && v <= hi && Number.isInteger(v) ? v : toSmallInt(v, lo, hi, label),
      );
    },
    {
      layout: { kind: 'int', size: size as 1 | 2 | 4, signed, le },
      rx: (_g, at) => intRead(size, signed, le, at),
      wx: (g, at, v) =>
        `${intStore(
          size,
          signed,
          le,
          at,
          `(typeof ${v} === 'number' && ${v} >= ${lo} && ${v} <= ${hi} && Number.isInteger(${v}) ? ${v} : ${g.k(toSmallInt)}(${v}, ${lo}, ${hi}, ${g.k(label)}))`,
        )}`,
    },
  );
}

function int64Node(signed: boolean, le: boolean, label: string): Node {
  const [lo, hi] = intRange(64, signed);
  const read: Reader = signed ? (dv, _b, off) => dv.getBigInt64(off, le) : (dv, _b, off) => dv.getBigUint64(off, le);
  const set = signed
    ? (dv: DataView, off: number, v: bigint) => dv.setBigInt64(off, v, le)
    : (dv: DataView, off: number, v: bigint) => dv.setBigUint64(off, v, le);
  return new Leaf(
    8,
    read,
    (dv, _b, off, v) => set(dv, off, typeof v === 'bigint' && v >= lo && v <= hi ? v : toBigInt(v, lo, hi, label)),
    {
      layout: { kind: 'int', size: 8, signed, le },
      rx: (_g, at) => intRead(8, signed, le, at),
      wx: (g, at, v) =>
        intStore(
          8,
          signed,
          le,
          at,
          `(typeof ${v} === 'bigint' && ${v} >= ${g.k(lo)} && ${v} <= ${g.k(hi)} ? ${v} : ${g.k(toBigInt)}(${v}, ${g.k(lo)}, ${g.k(hi)}, ${g.k(label)}))`,
        ),
    },
  );
}

function int128Node(signed: boolean, le: boolean, label: string): Node {
  const [lo, hi] = intRange(128, signed);
  const [loAt, hiAt] = le ? [0, 8] : [8, 0];
  return new Leaf(
    16,
    (dv, _b, off) => {
      const v = (dv.getBigUint64(off + hiAt, le) << 64n) | dv.getBigUint64(off + loAt, le);
      return signed ? BigInt.asIntN(128, v) : v;
    },
    (dv, _b, off, v) => {
      const n = BigInt.asUintN(128, toBigInt(v, lo, hi, label));
      dv.setBigUint64(off + loAt, BigInt.asUintN(64, n), le);
      dv.setBigUint64(off + hiAt, n >> 64n, le);
    },
    { maxJson: 42 },
  );
}

function intNode(size: number, signed: boolean, le: boolean, label: string): Node {
  if (size === 1 || size === 2 || size === 4) return smallIntNode(size, signed, le, label);
  if (size === 8) return int64Node(signed, le, label);
  if (size === 16) return int128Node(signed, le, label);
  return bytesNode(size, label);
}

function boolNode(size: number, le: boolean, label: string): Node {
  const int = intNode(size, false, le, label);
  const failBool = (v: unknown): never => fail(`expected a boolean (${label}), got ${describe(v)}`);
  return new Leaf(
    size,
    (dv, b, off) => {
      const v = int.read(dv, b, off);
      return v !== 0 && v !== 0n;
    },
    (dv, b, off, v) => {
      if (typeof v !== 'boolean') failBool(v);
      if (v) int.write(dv, b, off, 1);
    },
    {
      lossy: true,
      layout: size === 1 ? { kind: 'bool', size: 1 } : undefined,
      maxJson: 5,
      rx: size === 1 ? (_g, at) => `b[${at}] !== 0` : undefined,
      wx:
        size === 1
          ? (g, at, v) => `if (${v} === true) b[${at}] = 1; else if (${v} !== false) ${g.k(failBool)}(${v});`
          : undefined,
    },
  );
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
  if (n < -(1n << BigInt(bits - 1)) || n > (1n << BigInt(bits)) - 1n)
    fail(`${String(v)} does not fit in ${info.label}`);
  return n;
}

function enumNode(t: BtfEnum | BtfEnum64, le: boolean, label: string): Node {
  const size = t.size;
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) return bytesNode(size, label);
  const big = size === 8;
  const info = enumInfo(t, size * 8, t.signed, big, label);
  const names = info.names;
  const name = (v: number | bigint): unknown => names.get(v) ?? v;
  if (big) {
    const read: Reader = t.signed
      ? (dv, _b, off) => dv.getBigInt64(off, le)
      : (dv, _b, off) => dv.getBigUint64(off, le);
    return new Leaf(
      size,
      (dv, b, off) => name(read(dv, b, off) as bigint),
      (dv, _b, off, v) => dv.setBigUint64(off, BigInt.asUintN(64, enumValue(info, v, 64)), le),
      { maxJson: maxJsonOfNames(names.values()), rx: (g, at) => `${g.k(name)}(${intRead(8, t.signed, le, at)})` },
    );
  }
  const [get] = smallAccessors(size, t.signed, le);
  const [, set] = smallAccessors(size, false, le);
  const mod = 2 ** (size * 8);
  return new Leaf(
    size,
    (dv, _b, off) => name(get(dv, off)),
    (dv, _b, off, v) => {
      const n = Number(enumValue(info, v, size * 8));
      set(dv, off, n < 0 ? n + mod : n);
    },
    {
      layout: { kind: 'enum', size: size as 1 | 2 | 4, signed: t.signed, le, names },
      rx: (g, at) => `${g.k(name)}(${intRead(size, t.signed, le, at)})`,
    },
  );
}

// ---------------------------------------------------------------- floats, bytes, strings

const FLT_MAX = 3.4028234663852886e38;
/** Longest text of a double: `-0.0000012345678901234567` is 25 bytes. */
const MAX_JSON_FLOAT = 26;

function floatNode(size: number, le: boolean, label: string): Node {
  if (size !== 4 && size !== 8) return bytesNode(size, label);
  const check = (v: unknown): number => {
    if (typeof v !== 'number') fail(`expected a number (${label}), got ${describe(v)}`);
    if (size === 4 && Number.isFinite(v) && Math.abs(v) > FLT_MAX) fail(`${v} does not fit in ${label}`);
    return v;
  };
  const f = size === 4 ? 'Float32' : 'Float64';
  return size === 4
    ? new Leaf(
        size,
        (dv, _b, off) => dv.getFloat32(off, le),
        (dv, _b, off, v) => dv.setFloat32(off, check(v), le),
        {
          maxJson: MAX_JSON_FLOAT,
          rx: (_g, at) => `dv.get${f}(${at}, ${le})`,
          wx: (g, at, v) => `dv.set${f}(${at}, ${g.k(check)}(${v}), ${le});`,
        },
      )
    : new Leaf(
        size,
        (dv, _b, off) => dv.getFloat64(off, le),
        (dv, _b, off, v) => dv.setFloat64(off, check(v), le),
        {
          maxJson: MAX_JSON_FLOAT,
          rx: (_g, at) => `dv.get${f}(${at}, ${le})`,
          wx: (g, at, v) => `dv.set${f}(${at}, (typeof ${v} === 'number' ? ${v} : ${g.k(check)}(${v})), ${le});`,
        },
      );
}

/** Opaque bytes (unions, long double, odd sizes): decodes to a copy; encodes from a Uint8Array. */
function bytesNode(size: number, label: string): Node {
  // `b` is always a plain Uint8Array (TypeCodec.views), so slice() copies (Buffer#slice would not).
  return new Leaf(
    size,
    (_dv, bytes, off) => bytes.slice(off, off + size),
    (_dv, bytes, off, v) => {
      if (!(v instanceof Uint8Array) || v.length > size) {
        fail(`expected a Uint8Array of at most ${size} bytes (${label}), got ${describe(v)}`);
      }
      bytes.set(v, off);
    },
    { layout: { kind: 'bytes', size }, rx: (_g, at) => `b.slice(${at}, ${plus(at, size)})` },
  );
}

const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();
const fromCharCode = String.fromCharCode;
/** Node's Buffer#latin1Slice works on any Uint8Array: one copy into a one-byte string. */
const latin1Slice = (
  Buffer.prototype as unknown as { latin1Slice?: (this: Uint8Array, start: number, end: number) => string }
).latin1Slice;

/** `b[s, e)`, all bytes below 0x80, as a string. */
function asciiString(b: Uint8Array, s: number, e: number): string {
  // String.fromCharCode with one argument per byte allocates the string once (measured: 2-3×
  // faster than latin1Slice, TextDecoder or += for 1-16 bytes, which is what most char arrays hold).
  switch (e - s) {
    case 0:
      return '';
    case 1:
      return fromCharCode(b[s]);
    case 2:
      return fromCharCode(b[s], b[s + 1]);
    case 3:
      return fromCharCode(b[s], b[s + 1], b[s + 2]);
    case 4:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3]);
    case 5:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]);
    case 6:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]);
    case 7:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]);
    case 8:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]);
    case 9:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7], b[s + 8]);
    case 10:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
      );
    case 11:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
      );
    case 12:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
      );
    case 13:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
      );
    case 14:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
      );
    case 15:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
      );
    case 16:
      return fromCharCode(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
      );
    default:
      return latin1Slice ? latin1Slice.call(b, s, e) : utf8Decoder.decode(b.subarray(s, e));
  }
}

/** A char[n] at `off`: the bytes up to the first NUL (or all n), as UTF-8. */
function readCharArray(b: Uint8Array, off: number, n: number): string {
  const end = off + n;
  let i = off,
    high = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c === 0) break;
    high |= c;
  }
  return high < 0x80 ? asciiString(b, off, i) : utf8Decoder.decode(b.subarray(off, i));
}

function charArrayNode(n: number, label: string): Node {
  const read: Reader = (_dv, bytes, off) => readCharArray(bytes, off, n);
  return new Leaf(
    n,
    read,
    (_dv, bytes, off, v) => {
      if (typeof v !== 'string') fail(`expected a string (${label}), got ${describe(v)}`);
      if (v.includes('\0')) fail(`${describe(v)} contains a NUL character (${label})`);
      // The string may fill the whole array (no NUL), which is how decode reads it back.
      const { read } = utf8Encoder.encodeInto(v, bytes.subarray(off, off + n));
      if (read < v.length) fail(`${describe(v)} is ${utf8Encoder.encode(v).length} bytes, does not fit in ${label}`);
    },
    { lossy: true, layout: { kind: 'chars', size: n }, rx: (g, at) => `${g.k(readCharArray)}(b, ${at}, ${n})` },
  );
}

/** A size or count field bounding a char array of NUL-separated strings: `args` → `args_size`, `args_len`, `args_count`. */
const STRINGS_BOUND = ['_size', '_len', '_count'] as const;

/** Whether a string read from an event is text a human can read (no control characters but tab). */
function printable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 9) || c === 0x7f) return false;
  }
  return true;
}

/**
 * A char[n] holding NUL-separated strings (execsnoop's argv), bounded by a sibling field at
 * `delta` bytes from it: its byte size (`_size`, `_len`) or its number of strings (`_count`).
 * Reads the strings joined by spaces; the first string alone when the bound is out of range or
 * what follows the first NUL is not printable text.
 */
function stringsNode(n: number, label: string, bound: { delta: number; read: SmallGet; count: boolean }): Node {
  const plain = charArrayNode(n, label);
  const read: Reader = (dv, bytes, off) => {
    const first = readCharArray(bytes, off, n);
    const limit = Number(bound.read(dv, off + bound.delta));
    if (!Number.isSafeInteger(limit) || limit <= 0 || (!bound.count && limit > n)) return first;
    const parts: string[] = [];
    let at = off;
    const end = bound.count ? off + n : off + limit;
    while (at < end && (!bound.count || parts.length < limit)) {
      let nul = at;
      while (nul < end && bytes[nul] !== 0) nul++;
      parts.push(readCharArray(bytes, at, nul - at));
      at = nul + 1;
    }
    while (parts.length > 1 && parts.at(-1) === '') parts.pop();
    return parts.length > 1 && parts.every(printable) ? parts.join(' ') : first;
  };
  return new Leaf(n, read, plain.writer(), {
    lossy: true,
    layout: { kind: 'other', size: n, read, maxJson: 6 * n + 2 },
  });
}

/** Char array fields with a sibling bounding them (STRINGS_BOUND) read as their NUL-separated strings. */
function withStringLists(fields: Field[], le: boolean): Field[] {
  const byKey = new Map(fields.map((f) => [f.key, f]));
  return fields.map((f) => {
    if (f.node.layout.kind !== 'chars') return f;
    for (const suffix of STRINGS_BOUND) {
      const sib = byKey.get(f.key + suffix);
      const l = sib?.node.layout;
      if (!sib || l?.kind !== 'int' || l.size > 4) continue;
      const [read] = smallAccessors(l.size, l.signed, le);
      const node = stringsNode(f.node.size, f.key, { delta: sib.off - f.off, read, count: suffix === '_count' });
      return { ...f, node };
    }
    return f;
  });
}

function isArrayValue(v: unknown): boolean {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

class ArrayNode extends Composite {
  readonly size: number;
  readonly layout: ValueLayout;

  constructor(
    private readonly elem: Node,
    private readonly n: number,
    private readonly label: string,
  ) {
    super();
    this.size = elem.size * n;
    this.values = 1 + elem.values * n;
    if (this.values > MAX_CODEC_VALUES)
      throw new BtfError(
        `BTF codec: ${label} has ${this.values - 1} elements in all, more than the ${MAX_CODEC_VALUES} one value may hold`,
        Unsupported,
      );
    // Elements of no size still cost one read each: `int x[N][0]` must not be inlined N times.
    this.cost = Math.max(1, elem.inlineCost) * n;
    this.lossy = elem.lossy;
    this.layout = { kind: 'array', size: this.size, n, elem: elem.layout };
  }

  private get literal(): boolean {
    return this.cost <= INLINE_MAX;
  }

  rx(g: Gen, at: string): string {
    if (!this.literal) return `${g.k(this.reader())}(dv, b, ${at})`;
    const es = this.elem.size;
    const items: string[] = [];
    for (let i = 0; i < this.n; i++) items.push(this.elem.readExpr(g, plus(at, i * es)));
    return `[${items.join(', ')}]`;
  }

  protected override readBody(g: Gen): string {
    if (this.literal) return super.readBody(g);
    const q = g.tmp();
    return `const a = [];\nfor (let i = 0; i < ${this.n}; i++) {\n${q} = o + i * ${this.elem.size};\na.push(${this.elem.readExpr(g, q)});\n}\nreturn a;`;
  }

  wx(g: Gen, at: string, v: string): string {
    const { n, label } = this;
    const es = this.elem.size;
    const bad = g.k((x: unknown): never => fail(`expected an array (${label}), got ${describe(x)}`));
    const tooMany = g.k((len: number): never => fail(`${len} elements do not fit in ${label}`));
    const d = g.depth++;
    g.maxDepth = Math.max(g.maxDepth, g.depth);
    const x = g.tmp(),
      q = g.tmp();
    const outer = g.path;
    g.path = `${outer}[${IDX}]`;
    const elemCode = this.elem.writeStmt(g, q, x);
    const path = JSON.stringify(g.path);
    g.path = outer;
    g.depth--;
    return `if (!${g.k(isArrayValue)}(${v})) ${bad}(${v});
if (${v}.length > ${n}) ${tooMany}(${v}.length);
for (i${d} = 0; i${d} < ${v}.length; i${d}++) {
${x} = ${v}[i${d}];
if (${x} !== undefined) {
p = ${path};
${q} = ${at} + i${d} * ${es};
${elemCode}
}
}`;
  }

  protected readSlow(dv: DataView, bytes: Uint8Array, off: number): unknown {
    const out = new Array<unknown>(this.n);
    for (let i = 0; i < this.n; i++) out[i] = this.elem.read(dv, bytes, off + i * this.elem.size);
    return out;
  }

  protected writeSlow(dv: DataView, bytes: Uint8Array, off: number, v: unknown): void {
    const { n, label, elem } = this;
    if (!isArrayValue(v)) fail(`expected an array (${label}), got ${describe(v)}`);
    const a = v as ArrayLike<unknown>;
    if (a.length > n) fail(`${a.length} elements do not fit in ${label}`);
    let i = 0;
    try {
      for (; i < a.length; i++) if (a[i] !== undefined) elem.write(dv, bytes, off + i * elem.size, a[i]);
    } catch (e) {
      throw within(e, `[${i}]`);
    }
  }
}

function arrayNode(elem: Node, n: number, label: string): Node {
  return new ArrayNode(elem, n, label);
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
    const unit = 2 ** low,
      mod = 2 ** bits;
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
  const blow = BigInt(low),
    mask = (1n << BigInt(bits)) - 1n;
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
  // size 0: a bitfield shares its bytes with its neighbours
  const node = (read: Reader, write: Writer, lossy = false, maxJson = MAX_JSON_INT64): Node =>
    new Leaf(0, read, write, { lossy, maxJson });

  if (t.kind === 'INT' && t.bool) {
    return node(
      (_d, b, off) => acc.get(b, off + byte) !== 0,
      (_d, b, off, v) => {
        if (typeof v !== 'boolean') fail(`expected a boolean (${label}), got ${describe(v)}`);
        if (v) store(b, off, 1n);
      },
      true,
    );
  }
  if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
    const info = enumInfo(t, bits, signed, big, label);
    return node(
      (_d, b, off) => {
        const v = toSigned(acc.get(b, off + byte));
        return info.names.get(v) ?? v;
      },
      (_d, b, off, v) => store(b, off, enumValue(info, v, bits)),
      false,
      maxJsonOfNames(info.names.values()),
    );
  }
  if (t.kind !== 'INT') throw new BtfError(`BTF codec: bitfield of unsupported kind ${t.kind} (${label})`, Unsupported);
  return node(
    (_d, b, off) => toSigned(acc.get(b, off + byte)),
    (_d, b, off, v) => store(b, off, toBigInt(v, lo, hi, label)),
  );
}

// ---------------------------------------------------------------- structs

interface Field {
  readonly key: string;
  readonly off: number;
  readonly node: Node;
  /** Bytes of information the field carries: orders the variants of anonymous unions. */
  readonly weight: number;
  /** One past the last byte the field reads (bitfields have no size of their own). */
  readonly end: number;
}

const weightOf = (node: Node, bits?: number): number => (bits ? bits / 8 : node.size) - (node.lossy ? 0.5 : 0);
const sum = (fields: Field[]): number => fields.reduce((a, f) => a + f.weight, 0);

/** A key every plain object has without owning it: read such a field only as an own property. */
function inherited(key: string): boolean {
  return key in Object.prototype;
}

function isObjectValue(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** `fields` in declaration order for decoding; `writeOrder` the same fields in encoding order. */
class StructNode extends Composite {
  private readonly keys: Set<string>;
  readonly layout: ValueLayout;

  constructor(
    private readonly fields: Field[],
    private readonly writeOrder: Field[],
    readonly size: number,
    private readonly label: string,
  ) {
    super();
    this.keys = new Set(fields.map((f) => f.key));
    const layoutFields: LayoutField[] = fields.map((f) => ({ key: f.key, off: f.off, layout: f.node.layout }));
    this.layout = { kind: 'struct', size, fields: layoutFields };
    this.cost = 1 + fields.reduce((a, f) => a + f.node.inlineCost, 0);
    this.values = 1 + fields.reduce((a, f) => a + f.node.values, 0);
    if (this.values > MAX_CODEC_VALUES)
      throw new BtfError(
        `BTF codec: ${label} holds ${this.values - 1} values in all, more than the ${MAX_CODEC_VALUES} one value may hold`,
        Unsupported,
      );
    for (const f of fields) {
      if (f.end > size)
        throw new BtfError(
          `BTF codec: field ${JSON.stringify(f.key)} of ${label} (bytes ${f.off}..${f.end}) lies outside its ${size} bytes`,
        );
    }
  }

  private badValue = (v: unknown): never => fail(`expected an object (${this.label}), got ${describe(v)}`);

  /** Throws for the first key of `o` that is not a field. */
  private checkKeys = (o: Record<string, unknown>): void => {
    for (const k of Object.keys(o)) {
      if (!this.keys.has(k))
        throw new FieldError(`.${k}`, `unknown field of ${this.label} (fields: ${[...this.keys].join(', ')})`);
    }
  };

  rx(g: Gen, at: string): string {
    // One object literal: every decoded value of this type gets the same hidden class.
    return `{${this.fields.map((f) => `${litKey(f.key)}: ${f.node.readExpr(g, plus(at, f.off))}`).join(', ')}}`;
  }

  wx(g: Gen, at: string, v: string): string {
    const lines = [`if (!${g.k(isObjectValue)}(${v})) ${g.k(this.badValue)}(${v});`, `${g.k(this.checkKeys)}(${v});`];
    const outer = g.path;
    for (const f of this.writeOrder) {
      const x = g.tmp();
      g.path = `${outer}.${f.key}`;
      const path = JSON.stringify(g.path);
      const code = f.node.writeStmt(g, plus(at, f.off), x);
      // Names every object inherits (`__proto__`, `constructor`, `toString`…) only as own properties.
      const get = inherited(f.key)
        ? `(Object.hasOwn(${v}, ${JSON.stringify(f.key)}) ? ${v}[${JSON.stringify(f.key)}] : undefined)`
        : `${v}[${JSON.stringify(f.key)}]`;
      lines.push(`${x} = ${get};\nif (${x} !== undefined) {\np = ${path};\n${code}\n}`);
    }
    g.path = outer;
    return lines.join('\n');
  }

  protected readSlow(dv: DataView, bytes: Uint8Array, off: number): unknown {
    const o: Record<string, unknown> = {};
    for (const f of this.fields) {
      const x = f.node.read(dv, bytes, off + f.off);
      if (f.key === '__proto__')
        Object.defineProperty(o, f.key, { value: x, enumerable: true, writable: true, configurable: true });
      else o[f.key] = x;
    }
    return o;
  }

  protected writeSlow(dv: DataView, bytes: Uint8Array, off: number, v: unknown): void {
    if (!isObjectValue(v)) this.badValue(v);
    const o = v as Record<string, unknown>;
    this.checkKeys(o);
    let i = 0;
    try {
      for (; i < this.writeOrder.length; i++) {
        const f = this.writeOrder[i];
        const x = inherited(f.key) && !Object.hasOwn(o, f.key) ? undefined : o[f.key];
        if (x !== undefined) f.node.write(dv, bytes, off + f.off, x);
      }
    } catch (e) {
      throw within(e, `.${this.writeOrder[i].key}`);
    }
  }
}

function structNode(fields: Field[], writeOrder: Field[], size: number, label: string): Node {
  return new StructNode(fields, writeOrder, size, label);
}

// ---------------------------------------------------------------- compiling types to nodes

const QUALIFIERS = new Set(['CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG']);

class Compiler {
  private readonly nodes = new Map<number, Node>();
  private readonly le: boolean;

  constructor(
    private readonly btf: Btf,
    private readonly strings: boolean,
  ) {
    this.le = btf.littleEndian;
  }

  /** Types being built: met again while building, a type contains itself (by value). */
  private readonly building = new Set<number>();

  node(id: number): Node {
    let n = this.nodes.get(id);
    if (!n) {
      if (this.building.has(id))
        throw new BtfError(`BTF codec: type id ${id} contains itself (a value of it would be infinite)`, Corrupted);
      this.building.add(id);
      try {
        n = this.build(id);
      } finally {
        this.building.delete(id);
      }
      this.nodes.set(id, n);
    }
    return n;
  }

  /** C name for messages, without top-level qualifiers: `__u16`, not `const volatile __u16`. */
  private label(id: number): string {
    let t = this.btf.type(id);
    for (let i = 0; QUALIFIERS.has(t.kind); i++) {
      if (i >= MAX_QUALIFIERS)
        throw new BtfError(`BTF: qualifier chain too long at type id ${id} (it refers to itself?)`);
      t = this.btf.type((t as { type: number }).type);
    }
    return this.btf.typeName(t.id);
  }

  private build(id: number): Node {
    const { btf, le } = this;
    const label = this.label(id);
    const t = btf.type(btf.resolve(id));
    switch (t.kind) {
      case 'INT':
        return t.bool ? boolNode(t.size, le, label) : intNode(t.size, t.signed, le, label);
      case 'PTR':
        return intNode(8, false, le, label);
      case 'ENUM':
      case 'ENUM64':
        return enumNode(t, le, label);
      case 'FLOAT':
        return floatNode(t.size, le, label);
      case 'UNION':
        return bytesNode(t.size, label);
      case 'STRUCT': {
        const { read, write } = this.fields(t.members, 0, false, new Set(), { fields: 0, path: new Set([t.id]) });
        if (!this.strings) return structNode(read, write, t.size, label);
        const lists = withStringLists(read, le);
        const swap = new Map(read.map((f, i) => [f, lists[i]!]));
        return structNode(
          lists,
          write.map((f) => swap.get(f)!),
          t.size,
          label,
        );
      }
      case 'VAR':
        return this.node(t.type);
      case 'DATASEC':
        return this.datasec(t.id);
      case 'ARRAY':
        if (this.strings && this.isChar(t.type)) return charArrayNode(t.nelems, label);
        return arrayNode(this.node(t.type), t.nelems, label);
      default:
        throw new BtfError(`BTF codec: cannot encode or decode ${t.kind} (${label}, type id ${id})`, Unsupported);
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
  private fields(
    members: readonly BtfMember[],
    baseBits: number,
    union: boolean,
    seen: Set<string>,
    walk: { fields: number; path: Set<number> },
  ): { read: Field[]; write: Field[] } {
    const read: Field[] = [];
    const groups: Field[][] = [];
    for (const m of members) {
      if (++walk.fields > MAX_STRUCT_FIELDS)
        throw new BtfError(
          `BTF codec: a struct with more than ${MAX_STRUCT_FIELDS} fields (anonymous members flattened)`,
          Unsupported,
        );
      const bitOffset = baseBits + m.bitOffset;
      const t = this.btf.type(this.btf.resolve(m.type));
      if (!m.name) {
        if (t.kind !== 'STRUCT' && t.kind !== 'UNION') continue; // unnamed bitfield: padding
        if (walk.path.has(t.id))
          throw new BtfError(`BTF codec: type id ${t.id} contains itself (as an anonymous member)`, Corrupted);
        walk.path.add(t.id);
        const sub = this.fields(t.members, bitOffset, t.kind === 'UNION', seen, walk);
        walk.path.delete(t.id);
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
    if (!bits && bitOffset % 8 !== 0 && (t.kind === 'INT' || t.kind === 'ENUM' || t.kind === 'ENUM64'))
      bits = t.size * 8;
    if (!bits) {
      const node = this.node(m.type);
      const off = bitOffset / 8;
      if (!Number.isInteger(off))
        throw new BtfError(`BTF codec: member ${JSON.stringify(m.name)} starts at bit ${bitOffset}, inside a byte`);
      return { key: m.name, off, node, weight: weightOf(node), end: off + node.size };
    }
    const off = Math.floor(bitOffset / 8);
    const node = bitfieldNode(t, bitOffset - off * 8, bits, this.le, `${this.label(m.type)}:${bits}`);
    return { key: m.name, off, node, weight: weightOf(node, bits), end: Math.ceil((bitOffset + bits) / 8) };
  }

  private datasec(id: number): Node {
    const sec = this.btf.type(id);
    if (sec.kind !== 'DATASEC') throw new BtfError(`BTF codec: type ${id} is not a DATASEC`, Unsupported);
    if (sec.size === 0 && sec.vars.length > 0) {
      throw new BtfError(
        `BTF codec: DATASEC ${sec.name} has no layout (size 0); read the object with readObjectBtf() or call Btf.fixDatasec()`,
      );
    }
    const fields = sec.vars.map((v) => {
      const node = this.node(v.type);
      return {
        key: this.btf.type(v.type).name,
        off: v.offset,
        node,
        weight: weightOf(node),
        end: v.offset + node.size,
      };
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
  if (!pair) {
    pair = [];
    compiled.set(btf, pair);
  }
  const k = strings ? 1 : 0;
  let c = pair[k];
  if (c === undefined) {
    c = { compiler: new Compiler(btf, strings), codecs: new Map() };
    pair[k] = c;
  }
  return c;
}

/** A DataView and a plain Uint8Array (whose slice() copies, unlike Buffer's) over the bytes of `buf`. */
class Views {
  readonly dv: DataView;
  readonly bytes: Uint8Array;
  constructor(readonly buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.bytes = buf.constructor === Uint8Array ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
}

class TypeCodec implements BtfCodec {
  readonly size: number;
  /** Views of the last buffer decoded from / encoded into: a ring reader passes the same mapped bytes every time. */
  private lastIn: Views | undefined;
  private lastOut: Views | undefined;
  private readFn: Reader | undefined;
  private writeFn: Writer | undefined;

  constructor(
    private readonly node: Node,
    readonly typeId: number,
    readonly typeName: string,
    private readonly root: string,
  ) {
    this.size = node.size;
  }

  get layout(): ValueLayout {
    return this.node.layout;
  }

  private views(buf: Uint8Array): Views {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`${this.root}: expected a Uint8Array buffer`);
    return new Views(buf);
  }

  private outOfRange(buf: Uint8Array, offset: number): RangeError {
    return new RangeError(
      `${this.root}: ${this.typeName} needs ${this.size} bytes at offset ${offset}, buffer has ${buf.byteLength}`,
    );
  }

  decode(buf: Uint8Array, offset = 0): unknown {
    let v = this.lastIn;
    if (v === undefined || v.buf !== buf) this.lastIn = v = this.views(buf);
    if (!(Number.isInteger(offset) && offset >= 0 && offset + this.size <= buf.byteLength))
      throw this.outOfRange(buf, offset);
    let read = this.readFn;
    if (read === undefined) {
      read = this.node.reader();
      this.readFn = read;
    }
    return read(v.dv, v.bytes, offset);
  }

  encode(value: unknown, out?: Uint8Array, offset = 0): Uint8Array {
    out ??= new Uint8Array(this.size);
    let v = this.lastOut;
    if (v === undefined || v.buf !== out) this.lastOut = v = this.views(out);
    if (!(Number.isInteger(offset) && offset >= 0 && offset + this.size <= out.byteLength))
      throw this.outOfRange(out, offset);
    const bytes = v.bytes;
    bytes.fill(0, offset, offset + this.size);
    try {
      let write = this.writeFn;
      if (write === undefined) {
        write = this.node.writer();
        this.writeFn = write;
      }
      write(v.dv, bytes, offset, value);
    } catch (e) {
      if (e instanceof FieldError) throw new EncodeError(this.root + e.path, e.reason);
      throw e;
    }
    return out;
  }
}

/** The layout a codec from `codecFor` reads its bytes by (undefined for other codecs). */
export function codecLayout(codec: Codec): ValueLayout | undefined {
  return codec instanceof TypeCodec ? codec.layout : undefined;
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
    const node = compiler.node(typeId);
    if (node.size > MAX_CODEC_SIZE)
      throw new BtfError(
        `BTF codec: ${btf.typeName(typeId)} is ${node.size} bytes, more than the ${MAX_CODEC_SIZE} a value may have`,
        Unsupported,
      );
    codec = new TypeCodec(node, typeId, btf.typeName(typeId), root);
    codecs.set(key, codec);
  }
  return codec;
}
