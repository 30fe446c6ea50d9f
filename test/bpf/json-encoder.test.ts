// The BTF JSON encoder (src/bpf/btf/json-encoder.ts): for every shape the codec supports, its
// text is exactly JSON.stringify(jsonValue(codec.decode(bytes))) — on the btf_types.bpf.c
// fixture, on synthetic BTF for the shapes a compiler does not emit there (128-bit ints, wide
// bools, 64-bit enums, odd sizes, big-endian, integer-like and inherited field names, deep
// nesting), on chosen edge values, and fuzzed: random bytes over every type, random structs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Btf, type Codec, codecFor, jsonEncoderFor, readObjectBtf } from '../../src/bpf/btf/index.js';
import { jsonValue } from '../../src/util/json.js';
import { BtfWriter, intEnc } from './btf-writer.js';

/** A small seeded PRNG (xorshift32), so that a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function expected(codec: Codec, bytes: Uint8Array, fields?: string[]): string {
  let v = jsonValue(codec.decode(bytes));
  if (fields) {
    const all = v as Record<string, unknown>;
    v = Object.fromEntries(fields.map((c) => [c, all[c]]));
  }
  return JSON.stringify(v);
}

function encoded(codec: Codec, bytes: Uint8Array, fields?: string[], len = bytes.length): string {
  const enc = jsonEncoderFor(codec, { fields });
  assert.ok(enc, 'an encoder');
  // written at an offset into a bigger buffer, read from an offset of a bigger one
  const src = new Uint8Array(bytes.length + 13);
  src.set(bytes, 7);
  const out = Buffer.alloc(enc.maxBytes + 20, 0xee);
  const end = enc.write(src, 7, len, out, 5);
  assert.ok(end - 5 <= enc.maxBytes, `wrote ${end - 5} bytes, more than maxBytes ${enc.maxBytes}`);
  assert.equal(out[end], 0xee, 'nothing written past the end');
  return out.subarray(5, end).toString('utf8');
}

function same(codec: Codec, bytes: Uint8Array, fields?: string[]): void {
  assert.equal(
    encoded(codec, bytes, fields),
    expected(codec, bytes, fields),
    `bytes ${Buffer.from(bytes).toString('hex')}`,
  );
}

/** Random bytes with the values that matter over-represented: zeros, 0xff, ASCII, NULs, high bits. */
function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  const mode = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const x = r();
    if (mode === 0) b[i] = Math.floor(x * 256);
    else if (mode === 1) b[i] = x < 0.3 ? 0 : x < 0.6 ? 0xff : Math.floor(r() * 256);
    else if (mode === 2)
      b[i] = x < 0.1 ? 0 : 0x20 + Math.floor(r() * 95); // printable ASCII
    else if (mode === 3)
      b[i] = x < 0.5 ? Math.floor(r() * 32) : x < 0.7 ? 0x22 : 0x5c; // escapes
    else b[i] = x < 0.5 ? 0x80 + Math.floor(r() * 64) : 0xc0 + Math.floor(r() * 64); // UTF-8-ish
  }
  return b;
}

const fixture = readObjectBtf(readFileSync(new URL('./btf_types.bpf.o', import.meta.url)))!;

function structIds(btf: Btf): number[] {
  const ids: number[] = [];
  for (let id = 1; id < btf.typeCount; id++) {
    const t = btf.type(id);
    if ((t.kind === 'STRUCT' || t.kind === 'DATASEC') && t.size > 0) ids.push(id);
  }
  return ids;
}

describe('JSON encoder', () => {
  it('matches jsonValue + JSON.stringify on every struct of the fixture, zeroed, all ones, random', () => {
    const ids = structIds(fixture);
    assert.ok(ids.length >= 6, `structs in the fixture: ${ids.map((i) => fixture.typeName(i)).join(', ')}`);
    const r = rng(1);
    for (const id of ids) {
      const codec = codecFor(fixture, id);
      same(codec, new Uint8Array(codec.size));
      same(codec, new Uint8Array(codec.size).fill(0xff));
      for (let i = 0; i < 300; i++) same(codec, randomBytes(r, codec.size));
    }
  });

  it('writes u64 above 2^53 and s64 below -2^53 as the strings jsonValue gives, the rest as numbers', () => {
    const codec = codecFor(fixture, fixture.findByName('kt_ints', 'STRUCT')!.id);
    const probe = codec.decode(new Uint8Array(codec.size)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(probe), ['u8', 'u16', 'u32', 'u64', 's8', 's16', 's32', 's64', 'ok']);
    const u64s = [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n];
    const s64s = [0n, -1n, -(2n ** 31n), -(2n ** 53n) + 1n, -(2n ** 53n), -(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n];
    for (let i = 0; i < u64s.length; i++) {
      const bytes = codec.encode({ ...probe, u64: u64s[i], s64: s64s[i], s8: -128, s16: -32768, s32: -(2 ** 31) });
      same(codec, bytes);
    }
    const text = encoded(codec, codec.encode({ ...probe, u64: 2n ** 64n - 1n, s64: -(2n ** 63n) }));
    assert.match(text, /"u64":"18446744073709551615"/);
    assert.match(text, /"s64":"-9223372036854775808"/);
    assert.match(encoded(codec, codec.encode({ ...probe, u64: 2n ** 53n - 1n })), /"u64":9007199254740991,/);
  });

  it("reads a char array of NUL-separated strings (execsnoop's args) up to its size or count sibling", () => {
    const w = new BtfWriter();
    const chr = w.add('INT', 'char', 0, false, 1, intEnc(8, { signed: true }));
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const i32 = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true }));
    const arr = w.add('ARRAY', '', 0, false, 0, chr, u32, 24);
    // { int args_count; unsigned args_size; char args[24]; char comm[24]; unsigned comm_len... none }
    const st = w.add(
      'STRUCT',
      'event',
      3,
      false,
      32,
      w.str('args_count'),
      i32,
      0,
      w.str('args_size'),
      u32,
      32,
      w.str('args'),
      arr,
      64,
    );
    const counted = w.add('STRUCT', 'counted', 2, false, 28, w.str('argv'), arr, 0, w.str('argv_count'), i32, 24 * 8);
    const plain = w.add('STRUCT', 'plain', 2, false, 28, w.str('argv'), arr, 0, w.str('other'), i32, 24 * 8);
    const btf = Btf.parse(w.build());
    const codec = codecFor(btf, st);
    const ev = (count: number, size: number, text: string): Uint8Array => {
      const b = new Uint8Array(32);
      const dv = new DataView(b.buffer);
      dv.setInt32(0, count, true);
      dv.setUint32(4, size, true);
      b.set(Buffer.from(text, 'latin1').subarray(0, 24), 8);
      return b;
    };
    // stale bytes past the size (a ring buffer's reused memory) are not read
    const b = ev(3, 12, '/bin/ls\0\0-l\0stale\0junk');
    assert.deepEqual(codec.decode(b), { args_count: 3, args_size: 12, args: '/bin/ls  -l' });
    same(codec, b);
    assert.equal((codec.decode(ev(2, 10, '/bin/ls\0-l\0xx')) as { args: string }).args, '/bin/ls -l');
    // a size out of range, or bytes after the NUL that are not text: the first string
    assert.equal((codec.decode(ev(2, 99, 'a\0b\0')) as { args: string }).args, 'a');
    assert.equal((codec.decode(ev(2, 6, 'a\0\x01\x02\x03\0')) as { args: string }).args, 'a');
    assert.equal((codec.decode(ev(0, 0, 'a\0b\0')) as { args: string }).args, 'a');
    same(codec, ev(2, 99, 'a\0b\0'));
    // bounded by a count of strings
    const c = codecFor(btf, counted);
    const cb = new Uint8Array(28);
    cb.set(Buffer.from('x\0yy\0zzz\0more\0'));
    new DataView(cb.buffer).setInt32(24, 2, true);
    assert.deepEqual(c.decode(cb), { argv: 'x yy', argv_count: 2 });
    same(c, cb);
    // no sibling bounding it: the first string, as every char array
    assert.equal((codecFor(btf, plain).decode(cb) as { argv: string }).argv, 'x');
  });

  it('writes char arrays as strings: escapes, non-ASCII, invalid UTF-8, no NUL, a leading BOM', () => {
    const w = new BtfWriter();
    const chr = w.add('INT', 'char', 0, false, 1, intEnc(8, { signed: true }));
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const arr = w.add('ARRAY', '', 0, false, 0, chr, u32, 8);
    const st = w.add('STRUCT', 's', 1, false, 8, w.str('name'), arr, 0);
    const codec = codecFor(Btf.parse(w.build()), st);
    const texts = [
      'plain',
      'a"b\\c',
      'tab\there',
      '\n\r\b\f\u0001\u001f',
      'é✓',
      '\u007f',
      '12345678', // fills the array: no NUL
    ];
    for (const t of texts) {
      const b = new Uint8Array(8);
      b.set(Buffer.from(t).subarray(0, 8));
      same(codec, b);
    }
    for (const hex of ['ff00', 'c3', 'e29c', 'efbbbf41', 'f09f98', '41c328', '00414141']) {
      const b = new Uint8Array(8);
      b.set(Buffer.from(hex, 'hex'));
      same(codec, b);
    }
  });

  it('covers 128-bit ints, wide bools, 64-bit and small signed enums, floats, odd sizes and unions', () => {
    const w = new BtfWriter();
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const i128 = w.add('INT', '__int128', 0, false, 16, intEnc(128, { signed: true }));
    const u128 = w.add('INT', 'unsigned __int128', 0, false, 16, intEnc(128));
    const b4 = w.add('INT', '_Bool4', 0, false, 4, intEnc(32, { bool: true }));
    const b1 = w.add('INT', '_Bool', 0, false, 1, intEnc(8, { bool: true }));
    const e64 = w.add(
      'ENUM64',
      'big',
      2,
      true,
      8,
      w.str('MINUS'),
      0xffffffff,
      0xffffffff,
      w.str('HUGE'),
      0,
      0x40000000,
    );
    const e8 = w.add('ENUM', 'tiny', 2, true, 1, w.str('NEG "one"'), -1, w.str('TWO'), 2);
    const e2 = w.add('ENUM', 'half', 1, false, 2, w.str('ÉTÉ'), 0xfffe);
    const f32 = w.add('FLOAT', 'float', 0, false, 4);
    const f64 = w.add('FLOAT', 'double', 0, false, 8);
    const odd = w.add('INT', 'u24', 0, false, 3, intEnc(24));
    const un = w.add('UNION', 'u', 2, false, 4, w.str('w'), u32, 0, w.str('x'), u32, 0);
    const ptr = w.add('PTR', '', 0, false, u32);
    const fields: [string, number, number][] = [
      ['i128', i128, 16],
      ['u128', u128, 16],
      ['b4', b4, 4],
      ['b1', b1, 1],
      ['e64', e64, 8],
      ['e8', e8, 1],
      ['e2', e2, 2],
      ['f32', f32, 4],
      ['f64', f64, 8],
      ['odd', odd, 3],
      ['un', un, 4],
      ['ptr', ptr, 8],
    ];
    const members: number[] = [];
    let off = 0;
    for (const [name, type, size] of fields) {
      members.push(w.str(name), type, off * 8);
      off += size;
    }
    const st = w.add('STRUCT', 'mix', fields.length, false, off, ...members);
    const codec = codecFor(Btf.parse(w.build()), st);
    const r = rng(7);
    same(codec, new Uint8Array(codec.size));
    same(codec, new Uint8Array(codec.size).fill(0xff));
    for (let i = 0; i < 2000; i++) same(codec, randomBytes(r, codec.size));
    // named values, the enum names escaped
    const named = codec.encode({ e64: 'HUGE', e8: 'NEG "one"', e2: 'ÉTÉ', f32: 1.5, f64: Number.NaN, b4: true });
    same(codec, named);
    assert.match(encoded(codec, named), /"e8":"NEG \\"one\\"","e2":"ÉTÉ"/);
  });

  it('bitfields (kind_flag and legacy), big-endian data', () => {
    const bits = codecFor(fixture, fixture.findByName('kt_bits', 'STRUCT')!.id);
    const r = rng(3);
    for (let i = 0; i < 1000; i++) same(bits, randomBytes(r, bits.size));

    const w = new BtfWriter({ le: false });
    const u16 = w.add('INT', 'unsigned short', 0, false, 2, intEnc(16));
    const u8 = w.add('INT', 'unsigned char', 0, false, 1, intEnc(8));
    const s64 = w.add('INT', 'long', 0, false, 8, intEnc(64, { signed: true }));
    const u64 = w.add('INT', 'unsigned long', 0, false, 8, intEnc(64));
    const s3 = w.add('INT', 'signed char', 0, false, 1, intEnc(3, { signed: true }));
    const st = w.add(
      'STRUCT',
      'be',
      6,
      true,
      24,
      ...[w.str('port'), u16, 0],
      ...[w.str('hi'), u8, (4 << 24) | 16],
      ...[w.str('lo'), s3, (3 << 24) | 20],
      ...[w.str('s'), s64, 64],
      ...[w.str('u'), u64, 128],
      ...[w.str('wide'), u64, (40 << 24) | 24],
    );
    const be = codecFor(Btf.parse(w.build()), st);
    for (let i = 0; i < 1000; i++) same(be, randomBytes(r, be.size));
  });

  it('orders keys as the decoded object does (integer-like names first), drops __proto__, keeps inherited names', () => {
    const w = new BtfWriter();
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const names = ['b', '10', 'constructor', '__proto__', '2', 'toString', 'a'];
    const st = w.add(
      'STRUCT',
      'odd',
      names.length,
      false,
      4 * names.length,
      ...names.flatMap((n, i) => [w.str(n), u32, i * 32]),
    );
    const codec = codecFor(Btf.parse(w.build()), st);
    const r = rng(11);
    for (let i = 0; i < 50; i++) same(codec, randomBytes(r, codec.size));
    const text = encoded(codec, new Uint8Array(codec.size));
    assert.equal(text, '{"2":0,"10":0,"b":0,"constructor":0,"toString":0,"a":0}');
  });

  it('selects fields as the event columns do: their order, unknown and repeated names, inherited names', () => {
    const codec = codecFor(fixture, fixture.findByName('kt_value', 'STRUCT')!.id);
    const r = rng(5);
    const choices = [
      ['name', 'counts'],
      ['ints', 'nope', 'name', 'name'],
      ['constructor', 'toString', 'addr'],
      ['inner_y', 'anon_word', 'bits'],
      [],
    ];
    for (const fields of choices) for (let i = 0; i < 50; i++) same(codec, randomBytes(r, codec.size), fields);
    assert.equal(jsonEncoderFor(codec, { fields: ['__proto__'] }), null, 'no encoder: the caller decodes');
    const ints = codecFor(fixture, fixture.findByName('kt_ints', 'STRUCT')!.id);
    assert.equal(encoded(ints, new Uint8Array(ints.size), ['s8', 'u8']), '{"s8":0,"u8":0}');
  });

  it('reads a record shorter than its type zero-padded, as the readers decode it', () => {
    const codec = codecFor(fixture, fixture.findByName('kt_ints', 'STRUCT')!.id);
    const bytes = randomBytes(rng(9), codec.size);
    for (const len of [0, 1, 5, codec.size - 1]) {
      const padded = new Uint8Array(codec.size);
      padded.set(bytes.subarray(0, len));
      assert.equal(encoded(codec, bytes, undefined, len), expected(codec, padded));
    }
  });

  it('compiles deep and wide types into functions that call each other; big arrays loop', () => {
    const w = new BtfWriter();
    const u16 = w.add('INT', 'unsigned short', 0, false, 2, intEnc(16));
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    // leaf: 40 fields; then each level holds 3 of the one below and an array of 7 of it
    let t = w.add(
      'STRUCT',
      'l0',
      40,
      false,
      80,
      ...Array.from({ length: 40 }, (_, i) => [w.str(`f${i}`), u16, i * 16]).flat(),
    );
    let size = 80;
    for (let level = 1; level <= 3; level++) {
      const arr = w.add('ARRAY', '', 0, false, 0, t, u32, 7);
      t = w.add(
        'STRUCT',
        `l${level}`,
        4,
        false,
        size * 10,
        ...[w.str('a'), t, 0],
        ...[w.str('b'), t, size * 8],
        ...[w.str('c'), t, size * 16],
        ...[w.str('many'), arr, size * 24],
      );
      size *= 10;
    }
    const codec = codecFor(Btf.parse(w.build()), t);
    const enc = jsonEncoderFor(codec);
    assert.ok(enc, 'an encoder for an 80 KB value');
    const r = rng(13);
    same(codec, randomBytes(r, codec.size));
  });

  it('fuzz: random struct shapes, random bytes', () => {
    const r = rng(2026);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
    for (let round = 0; round < 60; round++) {
      const w = new BtfWriter({ le: r() < 0.8 });
      const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
      const scalars: [number, number][] = [
        [w.add('INT', 'unsigned char', 0, false, 1, intEnc(8)), 1],
        [w.add('INT', 'signed char', 0, false, 1, intEnc(8, { signed: true })), 1],
        [w.add('INT', 'short', 0, false, 2, intEnc(16, { signed: true })), 2],
        [w.add('INT', 'unsigned short', 0, false, 2, intEnc(16)), 2],
        [w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })), 4],
        [u32, 4],
        [w.add('INT', 'long', 0, false, 8, intEnc(64, { signed: true })), 8],
        [w.add('INT', 'unsigned long', 0, false, 8, intEnc(64)), 8],
        [w.add('INT', '_Bool', 0, false, 1, intEnc(8, { bool: true })), 1],
        [w.add('ENUM', 'e', 2, r() < 0.5, 4, w.str('A'), 1, w.str('B'), -2), 4],
        [w.add('FLOAT', 'double', 0, false, 8), 8],
      ];
      const chr = w.add('INT', 'char', 0, false, 1, intEnc(8, { signed: true }));
      const shape = (depth: number): [number, number] => {
        const x = r();
        if (depth > 2 || x < 0.5) return pick(scalars);
        if (x < 0.6) {
          const n = 1 + Math.floor(r() * 20);
          return [w.add('ARRAY', '', 0, false, 0, chr, u32, n), n];
        }
        if (x < 0.75) {
          const [et, es] = shape(depth + 1);
          const n = Math.floor(r() * 9);
          return [w.add('ARRAY', '', 0, false, 0, et, u32, n), es * n];
        }
        const n = 1 + Math.floor(r() * 6);
        const members: number[] = [];
        let off = 0;
        for (let i = 0; i < n; i++) {
          const [mt, ms] = shape(depth + 1);
          members.push(w.str(`m${depth}_${i}`), mt, off * 8);
          off += ms;
        }
        return [w.add(r() < 0.1 ? 'UNION' : 'STRUCT', '', n, false, off, ...members), off];
      };
      const members: number[] = [];
      let off = 0;
      const n = 1 + Math.floor(r() * 10);
      for (let i = 0; i < n; i++) {
        const [mt, ms] = shape(0);
        // some anonymous members: flattened into the parent
        members.push(r() < 0.1 ? 0 : w.str(`f${i}`), mt, off * 8);
        off += ms;
      }
      const st = w.add('STRUCT', 'rnd', n, false, off, ...members);
      let codec: Codec;
      try {
        codec = codecFor(Btf.parse(w.build()), st);
      } catch {
        continue; // an anonymous scalar member, say: the codec refuses the shape, so has no encoder
      }
      for (let i = 0; i < 40; i++) same(codec, randomBytes(r, codec.size));
    }
  });
});
