// A small WebAssembly binary encoder: LEB128, the opcodes the compiler emits, and a module
// builder for the sections it needs (type, import, function, global, export, code).

export const I32 = 0x7f;
export const I64 = 0x7e;
export const VOID = 0x40;

/** Opcodes (WebAssembly core spec, binary format). */
export const Op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  i32Load: 0x28,
  i32Load8U: 0x2d,
  i64Load: 0x29,
  i64Load8S: 0x30,
  i64Load8U: 0x31,
  i64Load16S: 0x32,
  i64Load16U: 0x33,
  i64Load32S: 0x34,
  i64Load32U: 0x35,
  i64Store: 0x37,
  i64Store8: 0x3c,
  i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GtU: 0x4b,
  i32LeS: 0x4c,
  i32LeU: 0x4d,
  i32GeS: 0x4e,
  i32GeU: 0x4f,
  i64Eqz: 0x50,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64LtS: 0x53,
  i64LtU: 0x54,
  i64GtS: 0x55,
  i64GtU: 0x56,
  i64LeS: 0x57,
  i64LeU: 0x58,
  i64GeS: 0x59,
  i64GeU: 0x5a,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32RemS: 0x6f,
  i32RemU: 0x70,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i32Rotl: 0x77,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64And: 0x83,
  i64Or: 0x84,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrS: 0x87,
  i64ShrU: 0x88,
  i64Rotl: 0x89,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
  i32Extend8S: 0xc0,
  i32Extend16S: 0xc1,
  i64Extend8S: 0xc2,
  i64Extend16S: 0xc3,
  i64Extend32S: 0xc4,
} as const;

/** A growable byte buffer with LEB128 writers. */
export class Bytes {
  #buf: Uint8Array;
  length = 0;
  constructor(capacity = 64) {
    this.#buf = new Uint8Array(capacity);
  }
  byte(b: number): this {
    if (this.length === this.#buf.length) {
      const n = new Uint8Array(this.#buf.length * 2);
      n.set(this.#buf);
      this.#buf = n;
    }
    this.#buf[this.length++] = b;
    return this;
  }
  bytes(bs: ArrayLike<number>): this {
    if (bs instanceof Uint8Array) {
      let cap = this.#buf.length;
      while (this.length + bs.length > cap) cap *= 2;
      if (cap !== this.#buf.length) {
        const n = new Uint8Array(cap);
        n.set(this.#buf.subarray(0, this.length));
        this.#buf = n;
      }
      this.#buf.set(bs, this.length);
      this.length += bs.length;
      return this;
    }
    for (let i = 0; i < bs.length; i++) this.byte(bs[i]!);
    return this;
  }
  u32(v: number): this {
    let x = v >>> 0;
    do {
      const b = x & 0x7f;
      x >>>= 7;
      this.byte(x ? b | 0x80 : b);
    } while (x);
    return this;
  }
  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      if ((x === 0 && !(b & 0x40)) || (x === -1 && b & 0x40)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }
  /** Signed LEB128 of any safe integer (an i64 constant without BigInt). */
  sNum(v: number): this {
    if (v >= -0x8000_0000 && v <= 0x7fff_ffff) return this.s32(v);
    let x = v;
    for (;;) {
      const b = ((x % 128) + 128) % 128;
      x = Math.floor(x / 128);
      if ((x === 0 && !(b & 0x40)) || (x === -1 && b & 0x40)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }
  s64(v: bigint): this {
    // a value that fits in 32 bits has the same signed LEB128 encoding either way
    if (v >= -0x8000_0000n && v <= 0x7fff_ffffn) return this.s32(Number(v));
    let x = BigInt.asIntN(64, v);
    for (;;) {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      if ((x === 0n && !(b & 0x40)) || (x === -1n && b & 0x40)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }
  name(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.u32(b.length).bytes(b);
  }
  /** A length-prefixed copy of another buffer. */
  vec(b: Bytes): this {
    return this.u32(b.length).bytes(b.#buf.subarray(0, b.length));
  }
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

export interface FuncType {
  params: number[];
  results: number[];
}

interface Import {
  module: string;
  name: string;
  kind: 'func' | 'memory';
  type?: number;
}

export class ModuleBuilder {
  readonly #types: FuncType[] = [];
  readonly #imports: Import[] = [];
  readonly #funcs: { type: number; locals: number[]; body: Bytes }[] = [];
  readonly #globals: { type: number; init: Bytes; mutable: boolean }[] = [];
  readonly #exports: { name: string; kind: number; index: number }[] = [];
  #importedFuncs = 0;

  readonly #typeIndex = new Map<string, number>();
  type(t: FuncType): number {
    const key = `${t.params.join(',')}:${t.results.join(',')}`;
    const i = this.#typeIndex.get(key);
    if (i !== undefined) return i;
    this.#types.push(t);
    this.#typeIndex.set(key, this.#types.length - 1);
    return this.#types.length - 1;
  }
  importMemory(module: string, name: string): void {
    this.#imports.push({ module, name, kind: 'memory' });
  }
  /** Imports a function; all imports must come before the first function is added. */
  importFunc(module: string, name: string, t: FuncType): number {
    this.#imports.push({ module, name, kind: 'func', type: this.type(t) });
    return this.#importedFuncs++;
  }
  /** Reserves a function index; its body is given later with `define`. */
  declare(t: FuncType): number {
    this.#funcs.push({ type: this.type(t), locals: [], body: new Bytes() });
    return this.#importedFuncs + this.#funcs.length - 1;
  }
  define(index: number, locals: number[], body: Bytes): void {
    const f = this.#funcs[index - this.#importedFuncs]!;
    f.locals = locals;
    f.body = body;
  }
  global(type: number, init: bigint | number, mutable = true): number {
    const b = new Bytes();
    if (type === I64) b.byte(Op.i64Const).s64(BigInt(init));
    else b.byte(Op.i32Const).s32(Number(init));
    b.byte(Op.end);
    this.#globals.push({ type, init: b, mutable });
    return this.#globals.length - 1;
  }
  export(name: string, kind: 'func' | 'global', index: number): void {
    this.#exports.push({ name, kind: kind === 'func' ? 0 : 3, index });
  }

  finish(): Uint8Array {
    const out = new Bytes().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, content: Bytes) => out.byte(id).vec(content);
    const types = new Bytes().u32(this.#types.length);
    for (const t of this.#types) {
      types.byte(0x60).u32(t.params.length).bytes(t.params).u32(t.results.length).bytes(t.results);
    }
    section(1, types);
    const imports = new Bytes().u32(this.#imports.length);
    for (const im of this.#imports) {
      imports.name(im.module).name(im.name);
      if (im.kind === 'memory') imports.byte(0x02).byte(0x00).u32(1);
      else imports.byte(0x00).u32(im.type!);
    }
    section(2, imports);
    const funcs = new Bytes().u32(this.#funcs.length);
    for (const f of this.#funcs) funcs.u32(f.type);
    section(3, funcs);
    if (this.#globals.length) {
      const g = new Bytes().u32(this.#globals.length);
      for (const x of this.#globals)
        g.byte(x.type)
          .byte(x.mutable ? 0x01 : 0x00)
          .bytes(x.init.finish());
      section(6, g);
    }
    const ex = new Bytes().u32(this.#exports.length);
    for (const e of this.#exports) ex.name(e.name).byte(e.kind).u32(e.index);
    section(7, ex);
    const code = new Bytes().u32(this.#funcs.length);
    for (const f of this.#funcs) {
      const body = new Bytes();
      // Locals, run-length encoded by type.
      const groups: [number, number][] = [];
      for (const l of f.locals) {
        const last = groups[groups.length - 1];
        if (last && last[1] === l) last[0]++;
        else groups.push([1, l]);
      }
      body.u32(groups.length);
      for (const [n, t] of groups) body.u32(n).byte(t);
      body.bytes(f.body.finish()).byte(Op.end);
      code.vec(body);
    }
    section(10, code);
    return out.finish().slice();
  }
}
