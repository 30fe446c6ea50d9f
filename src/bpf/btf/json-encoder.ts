// JSON text of BTF-described values, written straight from their bytes into an output buffer: no
// decoded object, no intermediate strings. An encoder is compiled once per codec (and field
// selection) into one straight-line function per struct, following the codec's layout
// (layout.ts), so that for every record
//
//     encoder.write(bytes, off, len, out, pos)  writes  JSON.stringify(jsonValue(codec.decode(bytes, off)))
//
// byte for byte (jsonValue: src/util/json.ts — 64-bit ints that fit a double as numbers, larger
// ones as decimal strings, byte arrays as hex). With `fields`, only those fields of a struct, in
// the order an object built from them has (what `Object.fromEntries(fields.map(...))` gives).
//
// Integers, booleans, enumerator names, char arrays (ASCII) and byte arrays are formatted byte by
// byte; floats, 128-bit ints, bitfields and non-ASCII strings go through the codec's reader and
// JSON.stringify (rare, and exact by construction).
//
// Generated code refers to run-time values only through parameters (`k0`, `k1`, ...): no text
// from the BTF — field names included, they are constant bytes — is ever part of it.
import { type Codec, codecLayout } from './codec.js';
import type { LayoutField, LayoutRead, ValueLayout } from './layout.js';

export interface JsonEncoder {
  /** Bytes of the value it reads; a shorter record reads as if zero-padded (as the codec's readers do). */
  readonly size: number;
  /** The longest JSON text of one value, in bytes: `out` must have this much room at `pos`. */
  readonly maxBytes: number;
  /** Writes the JSON text of the value at src[off, off + len) into out at pos; returns the end. */
  write(src: Uint8Array, off: number, len: number, out: Uint8Array, pos: number): number;
}

export interface JsonEncoderOptions {
  /** Only these fields of the (struct) value, in the order an object built from them has. */
  fields?: readonly string[];
}

/** Values whose JSON text may be longer than this get no encoder (callers decode them instead). */
export const MAX_JSON_ENCODER_BYTES = 1 << 20;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;

// ---------------------------------------------------------------- byte-level formatting

function decimalLength(v: number): number {
  if (v < 1e8) {
    if (v < 1e4) return v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : 4;
    return v < 1e5 ? 5 : v < 1e6 ? 6 : v < 1e7 ? 7 : 8;
  }
  let n = 9;
  for (let t = 1e9; v >= t && n < 16; t *= 10) n++;
  return n;
}

/** "00" .. "99": two digits per division. */
const PAIRS = (() => {
  const t = new Uint8Array(200);
  for (let i = 0; i < 100; i++) {
    t[2 * i] = 48 + Math.floor(i / 10);
    t[2 * i + 1] = 48 + (i % 10);
  }
  return t;
})();

/** Writes `v` (an integer, 0 ≤ v ≤ 2^53 - 1) in decimal at b[p]; returns the end. */
export function writeUint(b: Uint8Array, p: number, v: number): number {
  if (v < 10) {
    b[p] = 48 + v;
    return p + 1;
  }
  const end = p + decimalLength(v);
  let i = end;
  while (v >= 4294967296) {
    const q = Math.floor(v / 100);
    const r = 2 * (v - q * 100);
    b[--i] = PAIRS[r + 1]!;
    b[--i] = PAIRS[r]!;
    v = q;
  }
  // below 2^32: unsigned int arithmetic
  let u = v >>> 0;
  while (u >= 100) {
    const q = (u / 100) >>> 0;
    const r = 2 * (u - q * 100);
    b[--i] = PAIRS[r + 1]!;
    b[--i] = PAIRS[r]!;
    u = q;
  }
  if (u >= 10) {
    b[--i] = PAIRS[2 * u + 1]!;
    b[--i] = PAIRS[2 * u]!;
  } else b[--i] = 48 + u;
  return end;
}

/** Writes the integer `v` (|v| ≤ 2^53 - 1) in decimal; returns the end. */
function writeInt(b: Uint8Array, p: number, v: number): number {
  if (v < 0) {
    b[p++] = 45;
    v = -v;
  }
  return writeUint(b, p, v);
}

/** `"text"` for ASCII text that needs no escaping (decimal digits). */
function writeQuotedAscii(b: Uint8Array, p: number, s: string): number {
  b[p++] = 34;
  for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
  b[p++] = 34;
  return p;
}

function writeAscii(b: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
  return p;
}

/** An unsigned 64-bit integer from its halves: a number when exact, else a decimal string. */
function writeU64(b: Uint8Array, p: number, lo: number, hi: number): number {
  if (hi < 0x200000) return writeUint(b, p, hi * TWO32 + lo);
  return writeQuotedAscii(b, p, ((BigInt(hi) << 32n) | BigInt(lo)).toString());
}

/** A signed 64-bit integer from its halves (hi signed). */
function writeS64(b: Uint8Array, p: number, lo: number, hi: number): number {
  // hi * 2^32 is exact; adding lo rounds only when |value| ≥ 2^53, which the test then rejects
  const v = hi * TWO32 + lo;
  if (v >= -MAX_SAFE && v <= MAX_SAFE) return writeInt(b, p, v);
  return writeQuotedAscii(b, p, ((BigInt(hi) << 32n) + BigInt(lo)).toString());
}

function writeBool(b: Uint8Array, p: number, v: boolean): number {
  if (v) {
    b[p] = 116; // true
    b[p + 1] = 114;
    b[p + 2] = 117;
    b[p + 3] = 101;
    return p + 4;
  }
  b[p] = 102; // false
  b[p + 1] = 97;
  b[p + 2] = 108;
  b[p + 3] = 115;
  b[p + 4] = 101;
  return p + 5;
}

const HEX = new Uint8Array(Buffer.from('0123456789abcdef', 'latin1'));

/** JSON.stringify's escape of an ASCII byte that needs one (`"`, `\`, control characters). */
function writeEscape(b: Uint8Array, p: number, c: number): number {
  b[p++] = 92;
  switch (c) {
    case 34:
    case 92:
      b[p++] = c;
      return p;
    case 8:
      b[p++] = 98;
      return p;
    case 9:
      b[p++] = 116;
      return p;
    case 10:
      b[p++] = 110;
      return p;
    case 12:
      b[p++] = 102;
      return p;
    case 13:
      b[p++] = 114;
      return p;
    default:
      b[p] = 117; // u00XX
      b[p + 1] = 48;
      b[p + 2] = 48;
      b[p + 3] = HEX[c >> 4]!;
      b[p + 4] = HEX[c & 15]!;
      return p + 5;
  }
}

const utf8Encoder = new TextEncoder();
// the codec's decoder, with its defaults (a leading BOM is dropped, bad bytes become U+FFFD)
const utf8Decoder = new TextDecoder();

/** JSON.stringify(s), UTF-8 encoded. */
function writeJsonString(b: Uint8Array, p: number, s: string): number {
  const j = JSON.stringify(s);
  for (let i = 0; i < j.length; i++) {
    const c = j.charCodeAt(i);
    if (c >= 0x80) return p - i + utf8Encoder.encodeInto(j, b.subarray(p - i)).written;
    b[p++] = c;
  }
  return p;
}

/** A char[n] at s[at]: the bytes up to the first NUL as a JSON string (UTF-8 as the codec decodes it). */
function writeChars(b: Uint8Array, p: number, s: Uint8Array, at: number, n: number): number {
  const start = p;
  b[p++] = 34;
  const end = at + n;
  for (let i = at; i < end; i++) {
    const c = s[i]!;
    if (c === 0) break;
    if (c >= 0x20 && c !== 34 && c !== 92 && c < 0x80) b[p++] = c;
    else if (c < 0x80) p = writeEscape(b, p, c);
    else return writeCharsDecoded(b, start, s, at, n);
  }
  b[p++] = 34;
  return p;
}

function writeCharsDecoded(b: Uint8Array, p: number, s: Uint8Array, at: number, n: number): number {
  let e = at;
  while (e < at + n && s[e] !== 0) e++;
  return writeJsonString(b, p, utf8Decoder.decode(s.subarray(at, e)));
}

/** n bytes at s[at] as a quoted lowercase hex string (Buffer#toString('hex')). */
function writeHex(b: Uint8Array, p: number, s: Uint8Array, at: number, n: number): number {
  b[p++] = 34;
  for (let i = at; i < at + n; i++) {
    const c = s[i]!;
    b[p] = HEX[c >> 4]!;
    b[p + 1] = HEX[c & 15]!;
    p += 2;
  }
  b[p++] = 34;
  return p;
}

/** Any value a codec's reader returns for the kinds formatted in JS: what jsonValue + JSON.stringify make of it. */
function writeAny(b: Uint8Array, p: number, v: unknown): number {
  switch (typeof v) {
    case 'number':
      if (Number.isInteger(v) && v >= -MAX_SAFE && v <= MAX_SAFE) return writeInt(b, p, v);
      return writeAscii(b, p, Number.isFinite(v) ? String(v) : 'null');
    case 'bigint':
      if (v >= -MAX_SAFE && v <= MAX_SAFE) return writeInt(b, p, Number(v));
      return writeQuotedAscii(b, p, v.toString());
    case 'boolean':
      return writeBool(b, p, v);
    case 'string':
      return writeJsonString(b, p, v);
    default:
      if (v instanceof Uint8Array) return writeHex(b, p, v, 0, v.length);
      return writeAscii(b, p, 'null');
  }
}

/** Enumerator names by value as JSON bytes; values without a name as numbers. */
function enumWriter(names: ReadonlyMap<number | bigint, string>): (b: Uint8Array, p: number, v: number) => number {
  const json = new Map<number, Uint8Array>();
  for (const [v, name] of names) json.set(Number(v), new Uint8Array(Buffer.from(JSON.stringify(name))));
  return (b, p, v) => {
    const t = json.get(v);
    if (t === undefined) return writeInt(b, p, v);
    for (let i = 0; i < t.length; i++) b[p + i] = t[i]!;
    return p + t.length;
  };
}

// ---------------------------------------------------------------- sizes, key order

const jsonBytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(s)));

/**
 * The keys of an object created with `keys` in this order, as its JSON text lists them (integer
 * keys first, ascending; then the rest in creation order; a repeated key where it was first),
 * without `__proto__`, which jsonValue cannot copy as an own property.
 */
function jsonKeyOrder(keys: readonly string[]): string[] {
  return Object.keys(Object.fromEntries(keys.map((k) => [k, 0]))).filter((k) => k !== '__proto__');
}

function orderedFields(fields: readonly LayoutField[], only?: readonly string[]): LayoutField[] {
  const byKey = new Map(fields.map((f) => [f.key, f]));
  const out: LayoutField[] = [];
  for (const k of jsonKeyOrder(only ?? fields.map((f) => f.key))) {
    const f = byKey.get(k);
    if (f && f.key !== '__proto__') out.push(f);
  }
  return out;
}

const maxCache = new WeakMap<ValueLayout, number>();

/** The longest JSON text of a value of this layout, in bytes. */
function maxJson(l: ValueLayout, fields?: readonly LayoutField[]): number {
  if (!fields) {
    const known = maxCache.get(l);
    if (known !== undefined) return known;
  }
  let n: number;
  switch (l.kind) {
    case 'int':
      n = l.size === 8 ? 22 : 11;
      break;
    case 'bool':
      n = 5;
      break;
    case 'enum': {
      n = 11;
      for (const name of l.names.values()) n = Math.max(n, jsonBytes(name).length);
      break;
    }
    case 'chars':
      n = 6 * l.size + 2; // \u00XX per byte at worst (U+FFFD is 3)
      break;
    case 'bytes':
      n = 2 * l.size + 2;
      break;
    case 'array':
      n = 2 + l.n * (maxJson(l.elem) + 1);
      break;
    case 'struct': {
      n = 2;
      for (const f of fields ?? orderedFields(l.fields)) n += jsonBytes(f.key).length + 2 + maxJson(f.layout);
      break;
    }
    case 'other':
      n = l.maxJson;
      break;
  }
  n = Math.min(n, Number.MAX_SAFE_INTEGER);
  if (!fields) maxCache.set(l, n);
  return n;
}

// ---------------------------------------------------------------- code generation

/** Leaf writes a nested struct or array may have to be inlined into its parent's function. */
const INLINE_MAX = 64;
/** Arrays up to this many elements are unrolled. */
const UNROLL_MAX = 4;

type EncodeFn = (dv: DataView, s: Uint8Array, o: number, b: Uint8Array, p: number) => number;

const costCache = new WeakMap<ValueLayout, number>();

function cost(l: ValueLayout): number {
  const known = costCache.get(l);
  if (known !== undefined) return known;
  let c = 1;
  if (l.kind === 'array') c = l.n <= UNROLL_MAX ? 1 + l.n * inlineCost(l.elem) : 2 + inlineCost(l.elem);
  else if (l.kind === 'struct') c = 1 + l.fields.reduce((a, f) => a + inlineCost(f.layout), 0);
  costCache.set(l, c);
  return c;
}

const inlineCost = (l: ValueLayout): number => (cost(l) <= INLINE_MAX ? cost(l) : 1);

/** `at + n` for an offset expression `at` (`o`, `o+12`, `q0`, `q0+4`). */
function plus(at: string, n: number): string {
  if (n === 0) return at;
  const m = /^([A-Za-z_$][\w$]*)(?:\+(\d+))?$/.exec(at);
  if (!m) return `(${at})+${n}`;
  return `${m[1]}+${Number(m[2] ?? 0) + n}`;
}

/** Compiled functions of one encoder, by the layout they write (shared sub-structs compile once). */
type Compiled = Map<ValueLayout, EncodeFn>;

class Emitter {
  private readonly values: unknown[] = [];
  private readonly names: string[] = [];
  private readonly code: string[] = [];
  private bytes: number[] = [];
  private loops = 0;

  constructor(private readonly compiled: Compiled) {}

  /** A parameter name bound to `value`. */
  k(value: unknown): string {
    let i = this.values.indexOf(value);
    if (i < 0) {
      i = this.values.length;
      this.values.push(value);
      this.names.push(`k${i}`);
    }
    return this.names[i]!;
  }

  /** Constant bytes, written with the next statement. */
  lit(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.bytes.push(bytes[i]!);
  }

  private flush(): void {
    const n = this.bytes.length;
    if (n === 0) return;
    if (n <= 24) {
      this.code.push(`${this.bytes.map((c, i) => `b[p${i ? `+${i}` : ''}]=${c};`).join('')}p+=${n};`);
    } else {
      this.code.push(`b.set(${this.k(new Uint8Array(this.bytes))}, p); p+=${n};`);
    }
    this.bytes = [];
  }

  stmt(code: string): void {
    this.flush();
    this.code.push(code);
  }

  /** Statements writing the value of layout `l` at offset expression `at` (`root`: never as a call). */
  value(l: ValueLayout, at: string, fields?: readonly LayoutField[], root = false): void {
    switch (l.kind) {
      case 'int':
        this.stmt(this.int(l.size, l.signed, l.le, at));
        return;
      case 'bool':
        this.stmt(`p=${this.k(writeBool)}(b,p,s[${at}]!==0);`);
        return;
      case 'enum':
        this.stmt(`p=${this.k(enumWriter(l.names))}(b,p,${intRead(l.size, l.signed, l.le, at)});`);
        return;
      case 'chars':
        this.stmt(`p=${this.k(writeChars)}(b,p,s,${at},${l.size});`);
        return;
      case 'bytes':
        this.stmt(`p=${this.k(writeHex)}(b,p,s,${at},${l.size});`);
        return;
      case 'other':
        this.stmt(`p=${this.k(writeAny)}(b,p,${this.k(l.read as LayoutRead)}(dv,s,${at}));`);
        return;
      case 'array':
      case 'struct':
        if (!root && cost(l) > INLINE_MAX) {
          this.stmt(`p=${this.k(compile(l, this.compiled))}(dv,s,${at},b,p);`);
          return;
        }
        if (l.kind === 'struct') this.struct(fields ?? orderedFields(l.fields), at);
        else this.array(l.elem, l.n, at);
    }
  }

  private int(size: 1 | 2 | 4 | 8, signed: boolean, le: boolean, at: string): string {
    if (size === 8) {
      const [lo, hi] = le ? [at, plus(at, 4)] : [plus(at, 4), at];
      return signed
        ? `p=${this.k(writeS64)}(b,p,dv.getUint32(${lo},${le}),dv.getInt32(${hi},${le}));`
        : `p=${this.k(writeU64)}(b,p,dv.getUint32(${lo},${le}),dv.getUint32(${hi},${le}));`;
    }
    return `p=${this.k(signed ? writeInt : writeUint)}(b,p,${intRead(size, signed, le, at)});`;
  }

  private struct(fields: readonly LayoutField[], at: string): void {
    this.lit([123]);
    fields.forEach((f, i) => {
      if (i > 0) this.lit([44]);
      this.lit(jsonBytes(f.key));
      this.lit([58]);
      this.value(f.layout, plus(at, f.off));
    });
    this.lit([125]);
  }

  private array(elem: ValueLayout, n: number, at: string): void {
    this.lit([91]);
    const es = elem.size;
    if (n <= UNROLL_MAX) {
      for (let i = 0; i < n; i++) {
        if (i > 0) this.lit([44]);
        this.value(elem, plus(at, i * es));
      }
    } else {
      const d = this.loops++;
      this.stmt(`for (let i${d} = 0; i${d} < ${n}; i${d}++) {`);
      this.stmt(`if (i${d} !== 0) b[p++]=44;\nconst q${d} = ${at} + i${d} * ${es};`);
      this.value(elem, `q${d}`);
      this.stmt('}');
    }
    this.lit([93]);
  }

  build(): EncodeFn {
    this.flush();
    const body = `"use strict";\nreturn function encodeJson(dv, s, o, b, p) {\n${this.code.join('\n')}\nreturn p;\n};`;
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const make = new Function(...this.names, body) as (...a: unknown[]) => EncodeFn;
    return make(...this.values);
  }
}

function intRead(size: 1 | 2 | 4, signed: boolean, le: boolean, at: string): string {
  if (size === 1) return signed ? `dv.getInt8(${at})` : `s[${at}]`;
  return `dv.${signed ? 'getInt' : 'getUint'}${size * 8}(${at},${le})`;
}

/** The function writing a value of layout `l` (the root's fields chosen, when given). */
function compile(l: ValueLayout, compiled: Compiled, fields?: readonly LayoutField[]): EncodeFn {
  if (!fields) {
    const known = compiled.get(l);
    if (known) return known;
  }
  const e = new Emitter(compiled);
  e.value(l, 'o', fields, true);
  const fn = e.build();
  if (!fields) compiled.set(l, fn);
  return fn;
}

/** Whether `new Function` is allowed (not under --disallow-code-generation-from-strings). */
const CAN_GENERATE = (() => {
  try {
    return (new Function('return 1') as () => number)() === 1;
  } catch {
    return false;
  }
})();

// ---------------------------------------------------------------- public entry point

class CompiledEncoder implements JsonEncoder {
  #src: Uint8Array | undefined;
  #dv: DataView | undefined;
  #scratch: Uint8Array | undefined;

  constructor(
    readonly size: number,
    readonly maxBytes: number,
    private readonly fn: EncodeFn,
  ) {}

  write(src: Uint8Array, off: number, len: number, out: Uint8Array, pos: number): number {
    let s = src;
    let o = off;
    if (len < this.size) {
      // a record shorter than its type (a variable-length tail): read zero-padded
      if (!this.#scratch) this.#scratch = new Uint8Array(this.size);
      const scratch = this.#scratch;
      scratch.fill(0);
      scratch.set(src.subarray(off, off + Math.max(0, len)));
      s = scratch;
      o = 0;
    } else if (!(off >= 0 && off + this.size <= src.byteLength)) {
      throw new RangeError(`JSON encoder: ${this.size} bytes at offset ${off}, buffer has ${src.byteLength}`);
    }
    let dv = this.#dv;
    if (s !== this.#src || dv === undefined) {
      this.#src = s;
      this.#dv = dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
    }
    return this.fn(dv, s, o, out, pos);
  }
}

const encoders = new WeakMap<ValueLayout, Map<string, { fn: EncodeFn; maxBytes: number } | null>>();
const sessions = new WeakMap<ValueLayout, Compiled>();

/**
 * The JSON encoder of the values `codec` (from codecFor) decodes, or null when there is none:
 * another kind of codec, code generation disallowed, `fields` for a value that is not a struct
 * or naming `__proto__`, or text that may pass MAX_JSON_ENCODER_BYTES. Callers then decode and
 * stringify. Compiled once per codec and fields; each call returns its own encoder (it keeps
 * views of the last buffer it read, so use one per reader).
 */
export function jsonEncoderFor(codec: Codec, opts: JsonEncoderOptions = {}): JsonEncoder | null {
  const layout = codecLayout(codec);
  if (!layout || !CAN_GENERATE) return null;
  const only = opts.fields;
  const key = only ? JSON.stringify(only) : '';
  let byKey = encoders.get(layout);
  if (!byKey) {
    byKey = new Map();
    encoders.set(layout, byKey);
  }
  let made = byKey.get(key);
  if (made === undefined) {
    made = null;
    if (!only || (layout.kind === 'struct' && !only.includes('__proto__'))) {
      const fields = only && layout.kind === 'struct' ? orderedFields(layout.fields, only) : undefined;
      const maxBytes = maxJson(layout, fields);
      if (maxBytes <= MAX_JSON_ENCODER_BYTES) {
        let compiled = sessions.get(layout);
        if (!compiled) {
          compiled = new Map();
          sessions.set(layout, compiled);
        }
        made = { fn: compile(layout, compiled, fields), maxBytes };
      }
    }
    byKey.set(key, made);
  }
  return made && new CompiledEncoder(layout.size, made.maxBytes, made.fn);
}
