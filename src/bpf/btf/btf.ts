// Parser for raw BTF blobs (Documentation/bpf/btf.rst): a header, a type section and a
// string section. Types are located by one scan at parse time and decoded lazily on first
// use, so parsing the ~5 MB vmlinux BTF costs little until types are asked for.
import { readFileSync } from 'node:fs';
import { BtfError } from './errors.js';
import {
  BTF_KIND,
  BTF_KIND_NAMES,
  type BtfKind,
  type BtfLinkage,
  type BtfMember,
  type BtfType,
  type BtfTypeOf,
  type Datasec,
  type DatasecVar,
  MODIFIER_KINDS,
} from './types.js';

const BTF_MAGIC = 0xeb9f;
const HEADER_MIN = 24;
const TYPE_HEADER = 12;
const MAX_CHAIN = 64;
/** Steps (types visited) spelling one type name: crafted prototypes can fan out exponentially. */
const MAX_NAME_STEPS = 4096;
/** Longest type name spelled, and longest identifier taken into one. */
const MAX_NAME_LENGTH = 2048;
const MAX_IDENT_LENGTH = 256;
const LINKAGE: readonly BtfLinkage[] = ['static', 'global', 'extern'];
const VOID: BtfType = Object.freeze({ kind: 'VOID', id: 0, name: '' });
const KERNEL_BTF_PATH = '/sys/kernel/btf/vmlinux';

/** An identifier as it goes into a type name: crafted BTF may hold megabyte-long names. */
function ident(s: string): string {
  return s.length > MAX_IDENT_LENGTH ? `${s.slice(0, MAX_IDENT_LENGTH)}…` : s;
}

/** Bytes that follow the common 12-byte header of a type of this kind. */
function trailerSize(kind: number, vlen: number): number {
  switch (kind) {
    case BTF_KIND.INT:
    case BTF_KIND.VAR:
    case BTF_KIND.DECL_TAG:
      return 4;
    case BTF_KIND.ARRAY:
      return 12;
    case BTF_KIND.STRUCT:
    case BTF_KIND.UNION:
    case BTF_KIND.DATASEC:
    case BTF_KIND.ENUM64:
      return 12 * vlen;
    case BTF_KIND.ENUM:
    case BTF_KIND.FUNC_PROTO:
      return 8 * vlen;
    case BTF_KIND.PTR:
    case BTF_KIND.FWD:
    case BTF_KIND.TYPEDEF:
    case BTF_KIND.VOLATILE:
    case BTF_KIND.CONST:
    case BTF_KIND.RESTRICT:
    case BTF_KIND.FUNC:
    case BTF_KIND.FLOAT:
    case BTF_KIND.TYPE_TAG:
      return 0;
    default:
      return -1;
  }
}

interface Sections {
  littleEndian: boolean;
  types: Uint8Array;
  strings: Uint8Array;
}

function readHeader(raw: Uint8Array): Sections {
  if (raw.byteLength < HEADER_MIN) throw new BtfError(`BTF: blob too short (${raw.byteLength} bytes)`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = dv.getUint16(0, true);
  let le: boolean;
  if (magic === BTF_MAGIC) le = true;
  else if (magic === 0x9feb) le = false;
  else throw new BtfError(`BTF: bad magic 0x${magic.toString(16)}`);
  if (raw[2] !== 1) throw new BtfError(`BTF: unsupported version ${raw[2]}`);
  const hdrLen = dv.getUint32(4, le);
  if (hdrLen < HEADER_MIN || hdrLen > raw.byteLength) throw new BtfError(`BTF: bad header length ${hdrLen}`);
  const section = (what: string, offAt: number): Uint8Array => {
    const start = hdrLen + dv.getUint32(offAt, le);
    const end = start + dv.getUint32(offAt + 4, le);
    if (end > raw.byteLength)
      throw new BtfError(`BTF: ${what} section [${start}, ${end}) past end of blob (${raw.byteLength})`);
    return raw.subarray(start, end);
  };
  return { littleEndian: le, types: section('type', 8), strings: section('string', 16) };
}

/** Parsed BTF. Ids 1..typeCount-1 are types; id 0 is void. Split BTF delegates base ids to its base. */
export class Btf {
  private static kernelBtf: Btf | undefined;

  readonly littleEndian: boolean;
  readonly base: Btf | undefined;
  /** First id defined by this blob (1, or the base's typeCount for split BTF). */
  readonly startId: number;
  /** First string offset defined by this blob (0, or where the base's strings end). */
  readonly startStrOff: number;

  private readonly dv: DataView;
  private readonly strings: Buffer;
  private readonly offsets: Uint32Array;
  private readonly cache: (BtfType | undefined)[];
  private readonly strCache = new Map<number, string>();
  private nameIndex: Map<string, number[]> | undefined;
  private readonly nameCache = new Map<number, string>();

  private constructor(s: Sections, base: Btf | undefined) {
    this.littleEndian = s.littleEndian;
    this.base = base;
    this.startId = base ? base.typeCount : 1;
    this.startStrOff = base ? base.stringsEnd : 0;
    this.strings = Buffer.from(s.strings.buffer, s.strings.byteOffset, s.strings.byteLength);
    this.dv = new DataView(s.types.buffer, s.types.byteOffset, s.types.byteLength);
    this.offsets = this.scan();
    this.cache = new Array(this.offsets.length);
  }

  /** Parses a raw BTF blob (copied). With `base`, the blob is split BTF on top of it (e.g. a module's). */
  static parse(raw: Uint8Array, base?: Btf): Btf {
    const s = readHeader(new Uint8Array(raw));
    if (base && base.littleEndian !== s.littleEndian)
      throw new BtfError('BTF: split BTF and its base differ in endianness');
    return new Btf(s, base);
  }

  /** Reads a BTF file, e.g. /sys/kernel/btf/<module> with the kernel's BTF as base. */
  static load(path: string, base?: Btf): Btf {
    return Btf.parse(readFileSync(path), base);
  }

  /** The running kernel's BTF, read once. */
  static kernel(): Btf {
    Btf.kernelBtf ??= Btf.load(KERNEL_BTF_PATH);
    return Btf.kernelBtf;
  }

  /** One past the last valid type id (includes void, like libbpf's btf__type_cnt). */
  get typeCount(): number {
    return this.startId + this.offsets.length;
  }

  /** One past the last string offset (split BTF of this one starts its offsets here). */
  get stringsEnd(): number {
    return this.startStrOff + this.strings.byteLength;
  }

  /** Locates each type in the type section; checks kinds and bounds once. */
  private scan(): Uint32Array {
    const { dv } = this;
    const out: number[] = [];
    let pos = 0;
    while (pos < dv.byteLength) {
      if (pos + TYPE_HEADER > dv.byteLength) throw new BtfError(`BTF: truncated type at byte ${pos}`);
      const info = dv.getUint32(pos + 4, this.littleEndian);
      const kind = (info >>> 24) & 0x1f;
      const extra = trailerSize(kind, info & 0xffff);
      if (extra < 0) throw new BtfError(`BTF: unknown kind ${kind} for type id ${this.startId + out.length}`);
      out.push(pos);
      pos += TYPE_HEADER + extra;
    }
    if (pos !== dv.byteLength) throw new BtfError('BTF: type section ends inside a type');
    const offsets = Uint32Array.from(out);
    this.checkReferences(offsets);
    return offsets;
  }

  /** Every type id a type refers to must exist: decoding then never follows a dangling id. */
  private checkReferences(offsets: Uint32Array): void {
    const { dv } = this;
    const le = this.littleEndian;
    const count = this.startId + offsets.length;
    for (let i = 0; i < offsets.length; i++) {
      const pos = offsets[i]!;
      const info = dv.getUint32(pos + 4, le);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const p = pos + TYPE_HEADER;
      const check = (ref: number, what: string): void => {
        if (ref >= count)
          throw new BtfError(
            `BTF: type id ${this.startId + i} (${BTF_KIND_NAMES[kind]}) refers to type id ${ref} ${what}, past the last type (${count - 1})`,
          );
      };
      switch (kind) {
        case BTF_KIND.PTR:
        case BTF_KIND.TYPEDEF:
        case BTF_KIND.VOLATILE:
        case BTF_KIND.CONST:
        case BTF_KIND.RESTRICT:
        case BTF_KIND.TYPE_TAG:
        case BTF_KIND.FUNC:
        case BTF_KIND.VAR:
        case BTF_KIND.DECL_TAG:
          check(dv.getUint32(pos + 8, le), 'as its target');
          break;
        case BTF_KIND.ARRAY:
          check(dv.getUint32(p, le), 'as its element type');
          check(dv.getUint32(p + 4, le), 'as its index type');
          break;
        case BTF_KIND.STRUCT:
        case BTF_KIND.UNION:
          for (let m = 0; m < vlen; m++) check(dv.getUint32(p + m * 12 + 4, le), `as member ${m}`);
          break;
        case BTF_KIND.FUNC_PROTO:
          check(dv.getUint32(pos + 8, le), 'as its return type');
          for (let m = 0; m < vlen; m++) check(dv.getUint32(p + m * 8 + 4, le), `as parameter ${m}`);
          break;
        case BTF_KIND.DATASEC:
          for (let m = 0; m < vlen; m++) check(dv.getUint32(p + m * 12, le), `as variable ${m}`);
          break;
      }
    }
  }

  /** The string at a string-section offset ('' for 0). */
  str(off: number): string {
    if (off < this.startStrOff) {
      if (!this.base) throw new BtfError(`BTF: string offset ${off} out of range`);
      return this.base.str(off);
    }
    let s = this.strCache.get(off);
    if (s !== undefined) return s;
    const start = off - this.startStrOff;
    if (start >= this.strings.byteLength) {
      if (off === 0) return '';
      throw new BtfError(`BTF: string offset ${off} out of range`);
    }
    let end = this.strings.indexOf(0, start);
    if (end < 0) end = this.strings.byteLength;
    s = this.strings.toString('utf8', start, end);
    this.strCache.set(off, s);
    return s;
  }

  /** The type with this id; id 0 is void. Throws for an id out of range. */
  type(id: number): BtfType {
    if (id === 0) return VOID;
    if (id < this.startId) {
      if (!this.base) throw new RangeError(`BTF: no type id ${id}`);
      return this.base.type(id);
    }
    const i = id - this.startId;
    if (!(i < this.offsets.length) || !Number.isInteger(i)) throw new RangeError(`BTF: no type id ${id}`);
    let t = this.cache[i];
    if (t === undefined) {
      t = this.decode(id, this.offsets[i]);
      this.cache[i] = t;
    }
    return t;
  }

  /** `type(id)`, checked to be of `kind`. */
  typeOf<K extends BtfKind>(id: number, kind: K): BtfTypeOf<K> {
    const t = this.type(id);
    if (t.kind !== kind) throw new BtfError(`BTF: type ${id} is ${t.kind}, not ${kind}`);
    return t as BtfTypeOf<K>;
  }

  private decode(id: number, pos: number): BtfType {
    const { dv } = this;
    const le = this.littleEndian;
    const u32 = (at: number): number => dv.getUint32(at, le);
    const name = this.str(u32(pos));
    const info = u32(pos + 4);
    const kind = BTF_KIND_NAMES[(info >>> 24) & 0x1f];
    const vlen = info & 0xffff;
    const kindFlag = info >>> 31 === 1;
    const sizeOrType = u32(pos + 8);
    const p = pos + TYPE_HEADER;
    const list = <T>(stride: number, f: (at: number) => T): T[] => {
      const out = new Array<T>(vlen);
      for (let i = 0; i < vlen; i++) out[i] = f(p + i * stride);
      return out;
    };
    switch (kind) {
      case 'INT': {
        const enc = u32(p);
        const bits = enc & 0xff,
          bitOffset = (enc >>> 16) & 0xff,
          e = (enc >>> 24) & 0x0f;
        return {
          kind,
          id,
          name,
          size: sizeOrType,
          signed: (e & 1) !== 0,
          char: (e & 2) !== 0,
          bool: (e & 4) !== 0,
          bitOffset,
          bits,
        };
      }
      case 'PTR':
      case 'TYPEDEF':
      case 'VOLATILE':
      case 'CONST':
      case 'RESTRICT':
        return { kind, id, name, type: sizeOrType };
      case 'TYPE_TAG':
        return { kind, id, name, type: sizeOrType, attr: kindFlag };
      case 'ARRAY':
        return { kind, id, name, type: u32(p), indexType: u32(p + 4), nelems: u32(p + 8) };
      case 'STRUCT':
      case 'UNION': {
        const members = list<BtfMember>(12, (at) => {
          const off = u32(at + 8);
          return {
            name: this.str(u32(at)),
            type: u32(at + 4),
            bitOffset: kindFlag ? off & 0xffffff : off,
            bitSize: kindFlag ? off >>> 24 : 0,
          };
        });
        return { kind, id, name, size: sizeOrType, kindFlag, members };
      }
      case 'ENUM':
        return {
          kind,
          id,
          name,
          size: sizeOrType,
          signed: kindFlag,
          values: list(8, (at) => ({
            name: this.str(u32(at)),
            value: kindFlag ? dv.getInt32(at + 4, le) : u32(at + 4),
          })),
        };
      case 'ENUM64':
        return {
          kind,
          id,
          name,
          size: sizeOrType,
          signed: kindFlag,
          values: list(12, (at) => {
            const v = (BigInt(u32(at + 8)) << 32n) | BigInt(u32(at + 4));
            return { name: this.str(u32(at)), value: kindFlag ? BigInt.asIntN(64, v) : v };
          }),
        };
      case 'FWD':
        return { kind, id, name, fwdKind: kindFlag ? 'union' : 'struct' };
      case 'FUNC':
        return { kind, id, name, type: sizeOrType, linkage: LINKAGE[vlen] ?? 'static' };
      case 'FUNC_PROTO':
        return {
          kind,
          id,
          name,
          returnType: sizeOrType,
          params: list(8, (at) => ({ name: this.str(u32(at)), type: u32(at + 4) })),
        };
      case 'VAR':
        return { kind, id, name, type: sizeOrType, linkage: LINKAGE[u32(p)] ?? 'static' };
      case 'DATASEC':
        return {
          kind,
          id,
          name,
          size: sizeOrType,
          vars: list(12, (at) => ({ type: u32(at), offset: u32(at + 4), size: u32(at + 8) })),
        };
      case 'FLOAT':
        return { kind, id, name, size: sizeOrType };
      case 'DECL_TAG':
        return { kind, id, name, type: sizeOrType, componentIdx: dv.getInt32(p, le), attr: kindFlag };
      default:
        throw new BtfError(`BTF: unexpected kind ${kind} for type id ${id}`);
    }
  }

  /** All types from id 1 (including the base's), in id order. */
  *types(): IterableIterator<BtfType> {
    for (let id = 1; id < this.typeCount; id++) yield this.type(id);
  }

  /** First type (lowest id, base first) with this name and, if given, kind ('STRUCT' or 'struct'). */
  findByName(name: string, kind?: BtfKind | Lowercase<BtfKind>): { id: number; type: BtfType } | undefined {
    const k = kind?.toUpperCase();
    for (const id of this.idsNamed(name)) {
      const type = this.type(id);
      if (!k || type.kind === k) return { id, type };
    }
    return undefined;
  }

  /**
   * A struct by its tag, or by a typedef's name (`typedef struct { ... } event_t;`): the struct
   * itself (the typedef resolved), or undefined.
   */
  findStruct(name: string): { id: number; type: BtfType & { kind: 'STRUCT' } } | undefined {
    const tagged = this.findByName(name, 'STRUCT');
    if (tagged) return tagged as { id: number; type: BtfType & { kind: 'STRUCT' } };
    for (const id of this.idsNamed(name)) {
      if (this.type(id).kind !== 'TYPEDEF') continue;
      const sid = this.resolve(id);
      const type = this.type(sid);
      if (type.kind === 'STRUCT') return { id: sid, type };
    }
    return undefined;
  }

  /** Every type with this name (and kind), base first. */
  findAllByName(name: string, kind?: BtfKind | Lowercase<BtfKind>): BtfType[] {
    const k = kind?.toUpperCase();
    return this.idsNamed(name)
      .map((id) => this.type(id))
      .filter((t) => !k || t.kind === k);
  }

  private idsNamed(name: string): number[] {
    const own = this.ownIndex().get(name) ?? [];
    return this.base ? [...this.base.idsNamed(name), ...own] : own;
  }

  /** name → ids, built on first lookup from name offsets alone (no type decoding). */
  private ownIndex(): Map<string, number[]> {
    if (this.nameIndex) return this.nameIndex;
    const index = new Map<string, number[]>();
    for (let i = 0; i < this.offsets.length; i++) {
      const off = this.dv.getUint32(this.offsets[i], this.littleEndian);
      if (off === 0) continue;
      const name = this.str(off);
      const ids = index.get(name);
      if (ids) ids.push(this.startId + i);
      else index.set(name, [this.startId + i]);
    }
    this.strCache.clear(); // the index holds the names now; don't keep 100k+ cache entries too
    this.nameIndex = index;
    return index;
  }

  /** Follows typedef / const / volatile / restrict / type_tag to the underlying type id. */
  resolve(id: number): number {
    for (let i = 0; i < MAX_CHAIN; i++) {
      const t = this.type(id);
      if (!MODIFIER_KINDS.has(t.kind)) return id;
      id = (t as { type: number }).type;
    }
    throw new BtfError(`BTF: modifier chain too long at type ${id}`);
  }

  /** Size in bytes of a value of this type (pointers are 8 bytes: BPF is 64-bit). */
  sizeOf(id: number): number {
    let mult = 1;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const t = this.type(this.resolve(id));
      switch (t.kind) {
        case 'INT':
        case 'STRUCT':
        case 'UNION':
        case 'ENUM':
        case 'ENUM64':
        case 'FLOAT':
        case 'DATASEC':
          return mult * t.size;
        case 'PTR':
          return mult * 8;
        case 'ARRAY':
          mult *= t.nelems;
          id = t.type;
          break;
        case 'VAR':
          id = t.type;
          break;
        default:
          throw new BtfError(`BTF: type ${id} (${t.kind}) has no size`);
      }
    }
    throw new BtfError(`BTF: array nesting too deep at type ${id}`);
  }

  /** C spelling of a type: `struct foo`, `unsigned int`, `char[16]`, `__u32`, `int (*)(void *)`. */
  typeName(id: number): string {
    let name = this.nameCache.get(id);
    if (name === undefined) {
      name = this.declare(id, '', { steps: 0, path: new Set() });
      if (name.length > MAX_NAME_LENGTH) name = `${name.slice(0, MAX_NAME_LENGTH)}…`;
      this.nameCache.set(id, name);
    }
    return name;
  }

  /**
   * Writes the C declaration of `declarator` having type `id` (like cdecl, inside-out). Only
   * named types (struct, union, enum, typedef) end a legitimate cycle; a prototype, pointer,
   * array or qualifier met again on the way is a type containing itself, and is refused. The
   * work is bounded: past MAX_NAME_STEPS types, or MAX_NAME_LENGTH characters, the rest is "…".
   */
  private declare(id: number, declarator: string, ctx: { steps: number; path: Set<number> }): string {
    if (++ctx.steps > MAX_NAME_STEPS || declarator.length > MAX_NAME_LENGTH) return `…${declarator.slice(0, 64)}`;
    const t = this.type(id);
    const named = (base: string): string => {
      const b = ident(base);
      return !declarator ? b : declarator[0] === '[' ? b + declarator : `${b} ${declarator}`;
    };
    switch (t.kind) {
      case 'VOID':
        return named('void');
      case 'INT':
      case 'FLOAT':
      case 'TYPEDEF':
        return named(t.name);
      case 'STRUCT':
      case 'UNION':
      case 'ENUM':
      case 'ENUM64': {
        const tag = t.kind === 'ENUM64' ? 'enum' : t.kind.toLowerCase();
        return named(`${tag} ${t.name || '(anon)'}`);
      }
      case 'FWD':
        return named(`${t.fwdKind} ${t.name}`);
      case 'DATASEC':
      case 'DECL_TAG':
        return named(t.name);
      default:
        break;
    }
    if (ctx.path.has(id)) throw new BtfError(`BTF: type id ${id} (${t.kind}) refers to itself`);
    ctx.path.add(id);
    try {
      switch (t.kind) {
        case 'PTR': {
          const target = this.type(t.type).kind;
          const wrap = target === 'ARRAY' || target === 'FUNC_PROTO';
          return this.declare(t.type, wrap ? `(*${declarator})` : `*${declarator}`, ctx);
        }
        case 'ARRAY':
          return this.declare(t.type, `${declarator}[${t.nelems}]`, ctx);
        case 'CONST':
        case 'VOLATILE':
        case 'RESTRICT': {
          const q = t.kind.toLowerCase();
          // A qualified pointer reads `T *const p`; anything else reads `const T`.
          if (this.type(t.type).kind === 'PTR') return this.declare(t.type, declarator ? `${q} ${declarator}` : q, ctx);
          return `${q} ${this.declare(t.type, declarator, ctx)}`;
        }
        case 'TYPE_TAG':
          return this.declare(t.type, declarator, ctx);
        case 'FUNC_PROTO': {
          const params: string[] = [];
          for (const p of t.params) {
            if (ctx.steps > MAX_NAME_STEPS) {
              params.push('…');
              break;
            }
            params.push(p.type === 0 && !p.name ? '...' : this.declare(p.type, ident(p.name), ctx));
          }
          return this.declare(t.returnType, `${declarator}(${params.join(', ') || 'void'})`, ctx);
        }
        case 'FUNC':
        case 'VAR':
          return this.declare(t.type, declarator || ident(t.name), ctx);
        default:
          throw new BtfError(`BTF: cannot spell type id ${id} (${(t as BtfType).kind})`);
      }
    } finally {
      ctx.path.delete(id);
    }
  }

  /** A data section's variables (`.rodata`, `.data`, `.bss`, `.data.custom`, ...). */
  datasec(name: string): Datasec | undefined {
    const found = this.findByName(name, 'DATASEC');
    if (found?.type.kind !== 'DATASEC') return undefined;
    const sec = found.type;
    const vars: DatasecVar[] = sec.vars.map((v) => {
      const t = this.type(v.type);
      const typeId = t.kind === 'VAR' || t.kind === 'FUNC' ? t.type : v.type;
      return { name: t.name, typeId, varId: v.type, offset: v.offset, size: v.size };
    });
    return { id: found.id, name: sec.name, size: sec.size, vars };
  }

  /**
   * Fills in a DATASEC's size and variable offsets, as libbpf does before load: compilers
   * leave them 0 in object files. `offsets` maps variable names to their ELF symbol value.
   */
  fixDatasec(name: string, size: number, offsets: ReadonlyMap<string, number>): void {
    const found = this.findByName(name, 'DATASEC');
    if (found?.type.kind !== 'DATASEC') throw new BtfError(`BTF: no DATASEC ${name}`);
    const sec = found.type;
    const vars = sec.vars.map((v) => {
      const varName = this.type(v.type).name;
      const offset = offsets.get(varName);
      if (offset === undefined) throw new BtfError(`BTF: no symbol for variable ${varName} of ${name}`);
      return { ...v, offset };
    });
    const i = found.id - this.startId;
    if (i < 0) throw new BtfError(`BTF: DATASEC ${name} belongs to the base BTF`);
    this.cache[i] = { ...sec, size, vars };
  }
}
