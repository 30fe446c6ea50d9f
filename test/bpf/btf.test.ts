// Tests for src/bpf/btf: the parser on the running kernel's BTF and on the btf_types.bpf.c
// fixture, the ELF reader, and the value codecs (exact byte layouts, round trips, errors).
// Pure userspace: nothing is loaded into the kernel.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import {
  Btf,
  type BtfKind,
  codecFor,
  EncodeError,
  readElfSectionHeaders,
  readElfSections,
  readElfSymbols,
  readObjectBtf,
} from '../../src/bpf/btf/index.js';
import { BtfWriter, intEnc } from './btf-writer.js';

const objectBytes = (): Uint8Array => readFileSync(new URL('./btf_types.bpf.o', import.meta.url));

/** Bytes as lowercase hex, for readable layout assertions. */
const hex = (b: Uint8Array, from = 0, to = b.length): string => Buffer.from(b.subarray(from, to)).toString('hex');

function id(btf: Btf, name: string, kind?: BtfKind): number {
  const found = btf.findByName(name, kind);
  assert.ok(found, `type ${name} not found`);
  return found.id;
}

/** Key and value type ids of a map declared with __type(key, ...) / __type(value, ...). */
function mapTypes(btf: Btf, map: string): { key: number; value: number } {
  const sec = btf.datasec('.maps');
  assert.ok(sec);
  const v = sec.vars.find((x) => x.name === map);
  assert.ok(v, `map ${map}`);
  const def = btf.typeOf(btf.resolve(v.typeId), 'STRUCT');
  const target = (member: string): number => {
    const m = def.members.find((x) => x.name === member);
    assert.ok(m);
    return btf.typeOf(m.type, 'PTR').type;
  };
  return { key: target('key'), value: target('value') };
}

function expectEncodeError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EncodeError, `expected EncodeError, got ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

// ---------------------------------------------------------------- kernel BTF

describe('kernel BTF', () => {
  let k: Btf;
  before(() => {
    k = Btf.kernel();
  });

  it('is parsed once and cached', () => {
    assert.equal(Btf.kernel(), k);
    assert.ok(k.typeCount > 10_000);
    assert.equal(k.type(0).kind, 'VOID');
    assert.throws(() => k.type(k.typeCount), RangeError);
  });

  it('knows struct iphdr: 20 bytes, 4-bit ihl/version bitfields, flattened address union', () => {
    const ip = k.typeOf(id(k, 'iphdr', 'STRUCT'), 'STRUCT');
    assert.equal(ip.size, 20);
    assert.equal(k.sizeOf(ip.id), 20);
    const ihl = ip.members.find((m) => m.name === 'ihl');
    assert.ok(ihl);
    assert.equal(ihl.bitOffset, 0);
    // Kernel BTF (pahole) uses the kind_flag encoding: bitfield size in the member.
    assert.equal(ip.kindFlag, true);
    assert.equal(ihl.bitSize, 4);

    // A real IPv4 header: 45 00 0054 1c46 4000 40 06 b1e6 c0a80001 c0a800c7
    const hdr = Buffer.from('450000541c4640004006b1e6c0a80001c0a800c7', 'hex');
    const v = codecFor(k, ip.id).decode(hdr) as Record<string, unknown>;
    assert.equal(v.ihl, 5);
    assert.equal(v.version, 4);
    assert.equal(v.ttl, 64);
    assert.equal(v.protocol, 6);
    assert.equal(v.tot_len, 0x5400); // __be16 is a plain __u16 typedef: bytes read little-endian
    assert.equal(v.saddr, 0x0100a8c0);
    assert.deepEqual(v.addrs, { saddr: 0x0100a8c0, daddr: 0xc700a8c0 });
    assert.deepEqual(codecFor(k, ip.id).encode(v), new Uint8Array(hdr));
  });

  it('round-trips an anonymous union whose variants overlap lossily (struct fs_parse_result)', () => {
    // union { bool boolean; int int_32; unsigned int uint_32; u64 uint_64; ... } at offset 8:
    // decode shows every variant; encode lets the widest one win over the bool.
    const c = codecFor(k, id(k, 'fs_parse_result', 'STRUCT'));
    assert.equal(c.size, 16);
    const b = Buffer.from('01000000000000004545454545454545', 'hex');
    const v = c.decode(b) as Record<string, unknown>;
    assert.equal(v.negated, true);
    assert.equal(v.boolean, true);
    assert.equal(v.uint_64, 0x4545454545454545n);
    assert.equal(hex(c.encode(v)), hex(b));
  });

  it('has task_struct with a char[16] comm', () => {
    const ts = k.typeOf(id(k, 'task_struct', 'STRUCT'), 'STRUCT');
    assert.ok(ts.size > 1000);
    const comm = ts.members.find((m) => m.name === 'comm');
    assert.ok(comm);
    assert.equal(k.typeName(comm.type), 'char[16]');
    assert.equal(k.sizeOf(comm.type), 16);
  });

  it('spells type names like C', () => {
    assert.equal(k.typeName(id(k, 'iphdr', 'STRUCT')), 'struct iphdr');
    assert.equal(k.typeName(id(k, 'bpf_attr', 'UNION')), 'union bpf_attr');
    assert.equal(k.typeName(id(k, 'bpf_map_type', 'ENUM')), 'enum bpf_map_type');
    assert.equal(k.typeName(id(k, '__u32', 'TYPEDEF')), '__u32');
    assert.equal(k.typeName(k.resolve(id(k, '__u32', 'TYPEDEF'))), 'unsigned int');
    assert.equal(k.typeName(id(k, 'bpf_func_t', 'TYPEDEF')), 'bpf_func_t');
    assert.equal(k.typeName(k.resolve(id(k, 'bpf_func_t'))), 'unsigned int (*)(const void *, const struct bpf_insn *)');
    const ts = k.typeOf(id(k, 'task_struct', 'STRUCT'), 'STRUCT');
    const parent = ts.members.find((m) => m.name === 'real_parent');
    assert.ok(parent);
    assert.equal(k.typeName(parent.type), 'struct task_struct *');
  });

  it('resolves and sizes through typedefs and modifiers', () => {
    const u64 = id(k, '__u64', 'TYPEDEF');
    assert.equal(k.type(k.resolve(u64)).kind, 'INT');
    assert.equal(k.sizeOf(u64), 8);
    assert.equal(k.findByName('no_such_type_kbpf'), undefined);
    assert.equal(k.findByName('iphdr', 'UNION'), undefined);
    assert.equal(k.findByName('iphdr', 'struct')?.id, id(k, 'iphdr', 'STRUCT'));
  });

  it('decodes ENUM64 enumerators as names and bigints', () => {
    const e = k.typeOf(id(k, 'perf_callchain_context', 'ENUM64'), 'ENUM64');
    assert.equal(e.size, 8);
    const c = codecFor(k, e.id);
    const bytes = c.encode('PERF_CONTEXT_USER');
    assert.equal(new DataView(bytes.buffer).getBigUint64(0, true), 18446744073709551104n);
    assert.equal(c.decode(bytes), 'PERF_CONTEXT_USER');
    assert.equal(c.decode(c.encode(5n)), 5n);
  });

  it('has a laid-out .data..percpu DATASEC (the kernel fixes offsets)', () => {
    const sec = k.datasec('.data..percpu');
    assert.ok(sec && sec.size > 0 && sec.vars.length > 0);
    assert.ok(sec.vars.some((v) => v.offset > 0));
    for (const v of sec.vars) assert.ok(v.offset + v.size <= sec.size);
  });
});

// ---------------------------------------------------------------- the fixture object

describe('ELF reader', () => {
  it('lists sections, including .BTF and SEC() names; .bss reads as zeros', () => {
    const secs = readElfSections(objectBytes());
    for (const name of ['.BTF', '.BTF.ext', 'socket', 'license', '.maps', '.rodata', '.data', '.bss', '.symtab']) {
      assert.ok(secs.has(name), name);
    }
    assert.equal(Buffer.from(secs.get('license')!).toString(), 'GPL\0');
    assert.ok(secs.get('.bss')!.every((b) => b === 0));
    const bss = readElfSectionHeaders(objectBytes()).find((s) => s.name === '.bss');
    assert.equal(bss?.type, 8); // NOBITS
  });

  it('lists symbols with section, offset, size, type and binding', () => {
    const syms = readElfSymbols(objectBytes());
    const prog = syms.find((s) => s.name === 'kt_prog');
    assert.deepEqual(prog && { section: prog.section, type: prog.type, bind: prog.bind }, {
      section: 'socket',
      type: 'FUNC',
      bind: 'GLOBAL',
    });
    const name = syms.find((s) => s.name === 'cfg_name');
    assert.deepEqual(name && { section: name.section, value: name.value, size: name.size, type: name.type }, {
      section: '.rodata',
      value: 4,
      size: 16,
      type: 'OBJECT',
    });
  });

  it('rejects non-ELF input', () => {
    assert.throws(() => readElfSections(new Uint8Array(64)), /not an ELF file/);
  });
});

describe('fixture BTF', () => {
  let raw: Btf;
  let btf: Btf;
  before(() => {
    raw = Btf.parse(readElfSections(objectBytes()).get('.BTF')!);
    btf = readObjectBtf(objectBytes())!;
  });

  it('holds the fixture types', () => {
    assert.equal(raw.sizeOf(id(raw, 'kt_value', 'STRUCT')), 160);
    assert.equal(raw.sizeOf(id(raw, 'kt_addr', 'STRUCT')), 8);
    assert.equal(raw.sizeOf(id(raw, 'kt_bits', 'STRUCT')), 8);
    assert.equal(raw.sizeOf(id(raw, 'kt_raw', 'UNION')), 8);
    assert.equal(raw.typeOf(id(raw, 'kt_color', 'ENUM'), 'ENUM').values.length, 3);
    assert.equal(raw.type(id(raw, 'kt_prog', 'FUNC')).kind, 'FUNC');
    assert.equal(raw.typeName(id(raw, 'kt_prog', 'FUNC')), 'int kt_prog(struct __sk_buff *skb)');
    assert.deepEqual(mapTypes(raw, 'kt_values'), {
      key: id(raw, 'kt_key', 'STRUCT'),
      value: id(raw, 'kt_value', 'STRUCT'),
    });
  });

  it('raw .BTF DATASECs: variable names, types and sizes are reliable; section size and offsets are 0', () => {
    // clang leaves DATASEC size and variable offsets 0 in the object; libbpf fills them from the
    // ELF section size and symbol values before load. Only names, VAR types and sizes are usable.
    const ro = raw.datasec('.rodata');
    assert.ok(ro);
    assert.deepEqual(
      ro.vars.map((v) => [v.name, raw.typeName(v.typeId), v.size]),
      [
        ['cfg_port', 'const volatile __u32', 4],
        ['cfg_name', 'const volatile char[16]', 16],
        ['cfg_color', 'const volatile enum kt_color', 4],
      ],
    );
    assert.equal(ro.size, 0);
    assert.ok(ro.vars.every((v) => v.offset === 0));
    assert.deepEqual(
      raw.datasec('.bss')?.vars.map((v) => v.name),
      ['bss_hits', 'bss_bits'],
    );
    assert.equal(raw.datasec('.nope'), undefined);
    assert.throws(() => codecFor(raw, ro.id), /no layout/);
  });

  it('readObjectBtf fills DATASEC layouts from the ELF like libbpf', () => {
    const lay = (name: string) =>
      btf.datasec(name) && {
        size: btf.datasec(name)!.size,
        vars: btf.datasec(name)!.vars.map((v) => [v.name, v.offset]),
      };
    assert.deepEqual(lay('.rodata'), {
      size: 24,
      vars: [
        ['cfg_port', 0],
        ['cfg_name', 4],
        ['cfg_color', 20],
      ],
    });
    assert.deepEqual(lay('.data'), {
      size: 16,
      vars: [
        ['data_counter', 0],
        ['data_addr', 8],
      ],
    });
    assert.deepEqual(lay('.bss'), {
      size: 16,
      vars: [
        ['bss_hits', 0],
        ['bss_bits', 8],
      ],
    });
  });

  it('decodes and encodes global variables through their DATASEC', () => {
    const secs = readElfSections(objectBytes());
    const ro = codecFor(btf, btf.datasec('.rodata')!.id);
    assert.deepEqual(ro.decode(secs.get('.rodata')!), { cfg_port: 8080, cfg_name: 'kbpf', cfg_color: 'KT_GREEN' });
    const data = codecFor(btf, btf.datasec('.data')!.id);
    assert.deepEqual(data.decode(secs.get('.data')!), { data_counter: 7n, data_addr: { ip: 1, port: 2, proto: 3 } });

    const bytes = ro.encode({ cfg_port: 9090, cfg_name: 'demo', cfg_color: 'KT_BLUE' });
    assert.equal(hex(bytes), '82230000' + '64656d6f000000000000000000000000' + '2c010000');
    // One variable, by its own type and offset (what typed globals do).
    const nameVar = btf.datasec('.rodata')!.vars[1];
    assert.equal(codecFor(btf, nameVar.typeId).decode(bytes, nameVar.offset), 'demo');
  });
});

// ---------------------------------------------------------------- codecs on the fixture types

describe('codecs (fixture types)', () => {
  let btf: Btf;
  before(() => {
    btf = readObjectBtf(objectBytes())!;
  });
  const codec = (name: string, opts?: { name?: string }) => codecFor(btf, id(btf, name, 'STRUCT'), opts);

  it('encodes a nested struct at known offsets', () => {
    const c = codec('kt_value');
    assert.equal(c.size, 160);
    const b = c.encode({
      addr: { ip: 0x01020304, port: 8080, proto: 6 },
      peers: [{ ip: 1 }, { port: 0xbeef }],
      counts: [1, 2, 3, 0xffffffff],
      name: 'hello',
      color: 'KT_BLUE',
      sign: 'KT_NEG',
      inner_y: 0x4242,
      ptr: 0xdeadbeefn,
      f32: 1.5,
      f64: -2,
      matrix: [
        [1, 2, 3],
        [4, 5, 6],
      ],
    });
    assert.equal(hex(b, 0, 8), '04030201901f0600'); // addr: ip LE, port LE, proto, padding
    assert.equal(hex(b, 8, 24), '0100000000000000' + '00000000efbe0000'); // peers[0].ip; peers[1].port at 20
    assert.equal(hex(b, 24, 40), '010000000200000003000000ffffffff');
    assert.equal(hex(b, 40, 56), '68656c6c6f0000000000000000000000');
    assert.equal(hex(b, 56, 60), '2c010000'); // KT_BLUE = 300
    assert.equal(hex(b, 60, 64), 'fbffffff'); // KT_NEG = -5
    assert.equal(hex(b, 124, 128), '00004242'); // anonymous struct member inner_y at 126
    assert.equal(hex(b, 128, 136), 'efbeadde00000000');
    assert.equal(hex(b, 136, 140), '0000c03f'); // 1.5f
    assert.equal(hex(b, 144, 152), '00000000000000c0'); // -2.0
    assert.equal(hex(b, 152, 158), '010203040506');
    // Everything not given is zero.
    assert.equal(hex(b, 64, 124), '00'.repeat(60));
  });

  it('round-trips a full value', () => {
    const c = codec('kt_value');
    const value = {
      addr: { ip: 0xc0a80001, port: 443, proto: 17 },
      peers: [
        { ip: 1, port: 2, proto: 3 },
        { ip: 4, port: 5, proto: 6 },
      ],
      counts: [7, 8, 9, 10],
      name: 'sixteen-chars-xx', // fills the array: no NUL
      color: 'KT_RED',
      sign: 'KT_POS',
      raw: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
      bits: { a: 7, b: 31, c: -8, big: (1n << 40n) - 1n, on: true, col: 'KT_GREEN' },
      ints: {
        u8: 255,
        u16: 65535,
        u32: 4294967295,
        u64: 18446744073709551615n,
        s8: -128,
        s16: -32768,
        s32: -2147483648,
        s64: -9223372036854775808n,
        ok: true,
      },
      anon_word: 0x11223344,
      anon_half: [0x3344, 0x1122],
      inner_x: 1,
      inner_y: 2,
      ptr: 0xffff888000000000n,
      f32: 0.25,
      f64: Math.PI,
      matrix: [
        [9, 8, 7],
        [6, 5, 4],
      ],
    };
    const decoded = c.decode(c.encode(value));
    assert.deepEqual(decoded, value);
    // and decode → encode gives the same bytes back
    const bytes = c.encode(value);
    assert.deepEqual(c.encode(c.decode(bytes)), bytes);
  });

  it('flattens anonymous unions and structs the way C accesses them', () => {
    const c = codec('kt_value');
    const b = c.encode({ anon_word: 0x11223344, inner_x: 0xaaaa });
    assert.equal(hex(b, 120, 128), '44332211aaaa0000');
    const v = c.decode(b) as Record<string, unknown>;
    assert.equal(v.anon_word, 0x11223344);
    assert.deepEqual(v.anon_half, [0x3344, 0x1122]);
    assert.equal(v.inner_x, 0xaaaa);
  });

  it('encodes every integer width and signedness', () => {
    const c = codec('kt_ints');
    const b = c.encode({
      u8: 0xab,
      u16: 0xabcd,
      u32: 0x89abcdef,
      u64: '0x0123456789abcdef',
      s8: -2,
      s16: -3,
      s32: -4,
      s64: -5,
      ok: true,
    });
    assert.equal(
      hex(b),
      [
        'ab',
        '00',
        'cdab',
        'efcdab89', // u8, pad, u16, u32
        'efcdab8967452301', // u64 from a hex string
        'fe',
        '00',
        'fdff',
        'fcffffff', // s8, pad, s16, s32
        'fbffffffffffffff', // s64 from a number
        '01',
        '00'.repeat(7), // bool, tail padding
      ].join(''),
    );
    const v = c.decode(b) as Record<string, unknown>;
    assert.equal(v.u64, 0x0123456789abcdefn);
    assert.equal(v.s64, -5n);
    assert.equal(typeof v.u32, 'number');
    assert.equal(v.ok, true);
    // 64-bit fields accept number, bigint, decimal and hex strings
    for (const u64 of [42, 42n, '42', '0x2a']) assert.equal((c.decode(c.encode({ u64 })) as { u64: bigint }).u64, 42n);
  });

  it('encodes bitfields into the shared bytes (kind_flag encoding)', () => {
    const c = codec('kt_bits');
    const v = { a: 5, b: 17, c: -3, big: 0xabcdef1234n, on: true, col: 'KT_BLUE' };
    const b = c.encode(v);
    // a:3 @0, b:5 @3, c:4 @8, big:40 @12, on:1 @52, col:9 @53 in one little-endian u64
    const expected = 5n | (17n << 3n) | (13n << 8n) | (0xabcdef1234n << 12n) | (1n << 52n) | (300n << 53n);
    assert.equal(new DataView(b.buffer).getBigUint64(0, true), expected);
    assert.equal(hex(b), '8d4d23f1debc9a25');
    assert.deepEqual(c.decode(b), v);
    // a field left out keeps its bits zero while its neighbours are set
    assert.equal(hex(c.encode({ b: 31 })), `f8${'00'.repeat(7)}`);
    assert.deepEqual(c.decode(c.encode({ c: 7 })), { a: 0, b: 0, c: 7, big: 0n, on: false, col: 0 });
  });

  it('decodes enums to names, unknown values to numbers, and encodes names or numbers', () => {
    const c = codec('kt_key');
    assert.equal(hex(c.encode({ id: 1, color: 'KT_GREEN' })), '0100000002000000');
    assert.deepEqual(c.decode(c.encode({ color: 2 })), { id: 0, color: 'KT_GREEN' });
    assert.deepEqual(c.decode(Buffer.from('0000000007000000', 'hex')), { id: 0, color: 7 });
    // clang 14 marks every enum unsigned: -5 is still accepted for kt_sign
    const s = codecFor(btf, id(btf, 'kt_sign', 'ENUM'));
    assert.equal(s.decode(s.encode(-5)), 'KT_NEG');
  });

  it('decodes unions to bytes and encodes them from a Uint8Array', () => {
    const c = codecFor(btf, id(btf, 'kt_raw', 'UNION'));
    const b = Buffer.from('0102030405060708', 'hex');
    const v = c.decode(b) as Uint8Array;
    assert.ok(v instanceof Uint8Array);
    assert.equal(hex(v), '0102030405060708');
    v[0] = 9; // a copy, not a view
    assert.equal(b[0], 1);
    assert.equal(hex(c.encode(new Uint8Array([0xaa, 0xbb]))), 'aabb000000000000');
  });

  it('handles strings: NUL padding, full length, UTF-8, too long', () => {
    const c = codec('kt_value');
    const name = (s: string) => hex(c.encode({ name: s }), 40, 56);
    assert.equal(name('ab'), `6162${'00'.repeat(14)}`);
    assert.equal((c.decode(c.encode({ name: 'é' })) as { name: string }).name, 'é');
    const b = c.encode({ name: 'x' });
    b.set(Buffer.from('abc\0zzz'), 40);
    assert.equal((c.decode(b) as { name: string }).name, 'abc');
    expectEncodeError(
      () => c.encode({ name: 'x'.repeat(17) }),
      /^value\.name: "x+" is 17 bytes, does not fit in char\[16\]$/,
    );
  });

  it('writes at an offset into a caller buffer, zeroing only its own bytes', () => {
    const c = codec('kt_addr');
    const out = new Uint8Array(12).fill(0xee);
    assert.equal(c.encode({ port: 1 }, out, 2), out);
    assert.equal(hex(out), 'eeee' + '00000000' + '0100' + '00' + '00' + 'eeee');
    assert.deepEqual(c.decode(out, 2), { ip: 0, port: 1, proto: 0 });
    assert.throws(() => c.decode(out, 5), RangeError);
    assert.throws(() => c.encode({}, out, 6), RangeError);
  });

  it('rejects values that do not fit, naming the field path', () => {
    const c = codec('kt_value');
    expectEncodeError(() => c.encode({ addr: { port: 70000 } }), 'value.addr.port: 70000 does not fit in __u16');
    expectEncodeError(
      () => c.encode({ peers: [{}, { proto: 256 }] }),
      'value.peers[1].proto: 256 does not fit in __u8',
    );
    expectEncodeError(() => c.encode({ counts: [0, -1] }), 'value.counts[1]: -1 does not fit in __u32');
    expectEncodeError(() => c.encode({ counts: [1, 2, 3, 4, 5] }), 'value.counts: 5 elements do not fit in __u32[4]');
    expectEncodeError(() => c.encode({ bits: { c: 8 } }), 'value.bits.c: 8 does not fit in __s32:4');
    expectEncodeError(() => c.encode({ bits: { a: 8 } }), 'value.bits.a: 8 does not fit in __u32:3');
    expectEncodeError(() => c.encode({ ints: { s8: 128 } }), 'value.ints.s8: 128 does not fit in __s8');
    expectEncodeError(() => c.encode({ ints: { u64: -1n } }), 'value.ints.u64: -1 does not fit in __u64');
    expectEncodeError(
      () => c.encode({ ints: { u64: 2 ** 64 } }),
      /^value\.ints\.u64: 18446744073709552000 is not a safe integer/,
    );
    expectEncodeError(() => c.encode({ ints: { u32: 1.5 } }), 'value.ints.u32: 1.5 is not an integer (__u32)');
    expectEncodeError(() => c.encode({ matrix: [[], [0, 0, 300]] }), 'value.matrix[1][2]: 300 does not fit in __u8');
  });

  it('rejects unknown field names, naming the field path', () => {
    const c = codec('kt_value');
    expectEncodeError(
      () => c.encode({ addr: { prot: 6 } }),
      /^value\.addr\.prot: unknown field of struct kt_addr \(fields: ip, port, proto\)$/,
    );
    expectEncodeError(() => c.encode({ nme: 'x' }), /^value\.nme: unknown field of struct kt_value/);
    expectEncodeError(() => codec('kt_key', { name: 'key' }).encode({ colour: 1 }), /^key\.colour: unknown field/);
  });

  it('rejects wrong JS types, naming the field path', () => {
    const c = codec('kt_value');
    expectEncodeError(() => c.encode(42), 'value: expected an object (struct kt_value), got 42');
    expectEncodeError(
      () => c.encode({ addr: [] }),
      'value.addr: expected an object (struct kt_addr), got an array of 0',
    );
    expectEncodeError(() => c.encode({ addr: { ip: 'abc' } }), 'value.addr.ip: expected an integer (__u32), got "abc"');
    expectEncodeError(() => c.encode({ addr: { ip: true } }), 'value.addr.ip: expected an integer (__u32), got true');
    expectEncodeError(() => c.encode({ name: 5 }), 'value.name: expected a string (char[16]), got 5');
    expectEncodeError(() => c.encode({ counts: 'abcd' }), 'value.counts: expected an array (__u32[4]), got "abcd"');
    expectEncodeError(
      () => c.encode({ color: 'KT_PURPLE' }),
      'value.color: "KT_PURPLE" is not an enumerator of enum kt_color (KT_RED, KT_GREEN, KT_BLUE)',
    );
    expectEncodeError(
      () => c.encode({ color: {} }),
      'value.color: expected an enumerator name or an integer (enum kt_color), got an object',
    );
    expectEncodeError(() => c.encode({ ints: { ok: 1 } }), 'value.ints.ok: expected a boolean (bool), got 1');
    expectEncodeError(() => c.encode({ bits: { on: 'yes' } }), 'value.bits.on: expected a boolean (bool:1), got "yes"');
    expectEncodeError(
      () => c.encode({ raw: [1, 2] }),
      'value.raw: expected a Uint8Array of at most 8 bytes (union kt_raw), got an array of 2',
    );
    expectEncodeError(() => c.encode({ f32: '1' }), 'value.f32: expected a number (float), got "1"');
    expectEncodeError(() => c.encode({ f32: 1e39 }), 'value.f32: 1e+39 does not fit in float');
    expectEncodeError(() => c.encode({ ptr: null }), 'value.ptr: expected an integer (void *), got null');
  });

  it('builds each codec once and decodes/encodes 100k values', () => {
    const id0 = id(btf, 'kt_value', 'STRUCT');
    assert.equal(codecFor(btf, id0), codecFor(btf, id0));
    const c = codecFor(btf, id0);
    const buf = c.encode({ addr: { ip: 1, port: 2, proto: 3 }, name: 'bench', bits: { big: 5n }, ints: { u64: 9n } });
    let last: unknown;
    for (let i = 0; i < 100_000; i++) last = c.decode(buf);
    const out = new Uint8Array(c.size);
    for (let i = 0; i < 100_000; i++) c.encode(last, out);
    assert.deepEqual(out, buf);
  });

  it('can decode char arrays as numbers', () => {
    const c = codecFor(btf, id(btf, 'kt_value', 'STRUCT'), { charArraysAsStrings: false });
    const v = c.decode(codec('kt_value').encode({ name: 'AB' })) as { name: number[] };
    assert.deepEqual(v.name.slice(0, 3), [65, 66, 0]);
  });
});

// ---------------------------------------------------------------- synthetic BTF: split, legacy bitfields, rare kinds

describe('synthetic BTF', () => {
  it('parses split BTF: ids and string offsets continue after the base', () => {
    const bw = new BtfWriter();
    const u32 = bw.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const baseRaw = bw.build();
    const base = Btf.parse(baseRaw);
    assert.equal(base.typeCount, 2);

    const sw = new BtfWriter({ startId: base.typeCount, strBase: base.stringsEnd });
    const typedef = sw.add('TYPEDEF', 'my_u32', 0, false, u32);
    const st = sw.add('STRUCT', 'pair', 2, false, 8, sw.str('x'), u32, 0, sw.str('y'), typedef, 32);
    const split = Btf.parse(sw.build(), base);

    assert.equal(typedef, 2);
    assert.equal(split.typeCount, 4);
    assert.equal(split.type(1).name, 'unsigned int'); // from the base
    assert.equal(split.typeName(st), 'struct pair');
    assert.equal(split.findByName('unsigned int')?.id, 1);
    assert.equal(split.findByName('pair', 'STRUCT')?.id, st);
    assert.equal(split.typeName(split.typeOf(st, 'STRUCT').members[1].type), 'my_u32');
    assert.deepEqual(codecFor(split, st).decode(Buffer.from('0100000002000000', 'hex')), { x: 1, y: 2 });
  });

  it('reads legacy bitfields (kind_flag 0, width in the INT type)', () => {
    const w = new BtfWriter();
    const u8 = w.add('INT', 'unsigned char', 0, false, 1, intEnc(8));
    const u3 = w.add('INT', 'unsigned char', 0, false, 1, intEnc(3));
    const s5 = w.add('INT', 'signed char', 0, false, 1, intEnc(5, { signed: true }));
    const st = w.add('STRUCT', 'old', 3, false, 2, w.str('lo'), u3, 0, w.str('hi'), s5, 3, w.str('next'), u8, 8);
    const btf = Btf.parse(w.build());
    const c = codecFor(btf, st);
    assert.equal(hex(c.encode({ lo: 6, hi: -1, next: 9 })), 'fe09'); // 110 | 11111<<3
    assert.deepEqual(c.decode(Buffer.from('fe09', 'hex')), { lo: 6, hi: -1, next: 9 });
    expectEncodeError(() => c.encode({ hi: 16 }), 'value.hi: 16 does not fit in signed char:5');
  });

  it('handles big-endian BTF and data', () => {
    const w = new BtfWriter({ le: false });
    const u16 = w.add('INT', 'unsigned short', 0, false, 2, intEnc(16));
    const u8 = w.add('INT', 'unsigned char', 0, false, 1, intEnc(8));
    const st = w.add(
      'STRUCT',
      'be',
      3,
      true,
      4,
      w.str('port'),
      u16,
      0,
      w.str('hi'),
      u8,
      (4 << 24) | 16,
      w.str('lo'),
      u8,
      (4 << 24) | 20,
    );
    const btf = Btf.parse(w.build());
    assert.equal(btf.littleEndian, false);
    const c = codecFor(btf, st);
    assert.equal(hex(c.encode({ port: 0x1234, hi: 0xa, lo: 0xb })), '1234ab00');
    assert.deepEqual(c.decode(Buffer.from('1234ab00', 'hex')), { port: 0x1234, hi: 0xa, lo: 0xb });
  });

  it('models every kind and spells declarations', () => {
    const w = new BtfWriter();
    const int = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true }));
    const chr = w.add('INT', 'char', 0, false, 1, intEnc(8, { signed: true }));
    const cchr = w.add('CONST', '', 0, false, chr);
    const pc = w.add('PTR', '', 0, false, cchr);
    const rpc = w.add('RESTRICT', '', 0, false, pc);
    const proto = w.add('FUNC_PROTO', '', 3, false, int, w.str('fmt'), rpc, w.str('n'), int, 0, 0);
    const fn = w.add('FUNC', 'my_printf', 2, false, proto); // vlen = linkage (extern)
    const fwd = w.add('FWD', 'opaque', 0, true, 0);
    const vol = w.add('VOLATILE', '', 0, false, int);
    const tag = w.add('TYPE_TAG', 'user', 0, false, int);
    const ptag = w.add('PTR', '', 0, false, tag);
    const dtag = w.add('DECL_TAG', 'kfunc', 0, false, fn, -1);
    const flt = w.add('FLOAT', 'double', 0, false, 8);
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
    const arr = w.add('ARRAY', '', 0, false, 0, pc, int, 4);
    const parr = w.add('PTR', '', 0, false, arr);
    const i128 = w.add('INT', '__int128', 0, false, 16, intEnc(128, { signed: true }));
    const cptr = w.add('CONST', '', 0, false, pc);
    const v = w.add('VAR', 'counter', 0, false, vol, 1);
    const sec = w.add('DATASEC', '.data', 1, false, 4, v, 0, 4);
    const btf = Btf.parse(w.build());

    assert.equal(btf.typeName(fn), 'int my_printf(const char *restrict fmt, int n, ...)');
    assert.equal(btf.typeOf(fn, 'FUNC').linkage, 'extern');
    assert.deepEqual(btf.typeOf(proto, 'FUNC_PROTO').params.at(-1), { name: '', type: 0 });
    assert.equal(btf.typeName(fwd), 'union opaque');
    assert.equal(btf.typeName(vol), 'volatile int');
    assert.equal(btf.typeName(ptag), 'int *');
    assert.equal(btf.resolve(tag), int);
    assert.deepEqual(btf.typeOf(dtag, 'DECL_TAG'), {
      kind: 'DECL_TAG',
      id: dtag,
      name: 'kfunc',
      type: fn,
      componentIdx: -1,
      attr: false,
    });
    assert.equal(btf.typeName(arr), 'const char *[4]');
    assert.equal(btf.typeName(parr), 'const char *(*)[4]');
    assert.equal(btf.typeName(cptr), 'const char *const');
    assert.equal(btf.typeName(v), 'volatile int counter');
    assert.equal(btf.sizeOf(arr), 32);
    assert.equal(btf.sizeOf(v), 4);
    assert.throws(() => btf.sizeOf(fn), /has no size/);
    assert.equal(btf.typeOf(e64, 'ENUM64').values[0].value, -1n);
    assert.equal(btf.datasec('.data')?.vars[0].name, 'counter');

    // codecs on the rare kinds
    assert.equal(codecFor(btf, flt).decode(codecFor(btf, flt).encode(0.1)), 0.1);
    const e = codecFor(btf, e64);
    assert.equal(hex(e.encode('MINUS')), 'ffffffffffffffff');
    assert.equal(hex(e.encode('HUGE')), '0000000000000040');
    assert.equal(e.decode(e.encode(-2)), -2n);
    const big = codecFor(btf, i128);
    const n = -(2n ** 100n) + 3n;
    assert.equal(big.decode(big.encode(n)), n);
    assert.equal(hex(big.encode(-1)), 'ff'.repeat(16));
    expectEncodeError(() => big.encode(2n ** 127n), /does not fit in __int128$/);
    assert.deepEqual(codecFor(btf, sec).decode(Buffer.from('2a000000', 'hex')), { counter: 42 });
    assert.throws(() => codecFor(btf, fn), /cannot encode or decode FUNC/);
    assert.throws(() => codecFor(btf, fwd), /cannot encode or decode FWD/);
  });

  it('rejects malformed blobs', () => {
    assert.throws(() => Btf.parse(new Uint8Array(8)), /too short/);
    assert.throws(() => Btf.parse(new Uint8Array(24)), /bad magic/);
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32));
    const good = w.build();
    const truncated = good.slice();
    new DataView(truncated.buffer).setUint32(12, 100, true); // type_len past the end
    assert.throws(() => Btf.parse(truncated), /past end of blob/);
    const badKind = good.slice();
    badKind[24 + 7] = 31; // kind 31 in the info word
    assert.throws(() => Btf.parse(badKind), /unknown kind 31/);
  });
});

// ---------------------------------------------------------------- generated codecs: shapes, big types, odd names, fallback

describe('generated codecs', () => {
  /** struct big { u32 n; u32 arr[100]; struct pair { u8 a; u8 b; } ps[40]; char s40[40]; char s3[3]; u32 "__proto__"; u32 "a\"b\\"; } */
  function bigStruct(): { btf: Btf; st: number; pair: number } {
    const w = new BtfWriter();
    const u32 = w.add('INT', 'unsigned int', 0, false, 4, intEnc(32));
    const u8 = w.add('INT', 'unsigned char', 0, false, 1, intEnc(8));
    const chr = w.add('INT', 'char', 0, false, 1, intEnc(8, { signed: true }));
    const arr = w.add('ARRAY', '', 0, false, 0, u32, u32, 100);
    const pair = w.add('STRUCT', 'pair', 2, false, 2, w.str('a'), u8, 0, w.str('b'), u8, 8);
    const parr = w.add('ARRAY', '', 0, false, 0, pair, u32, 40);
    const s40 = w.add('ARRAY', '', 0, false, 0, chr, u32, 40);
    const s3 = w.add('ARRAY', '', 0, false, 0, chr, u32, 3);
    // offsets: n 0, arr 4, ps 404, s40 484, s3 524, __proto__ 528, a"b\ 532; size 536
    const st = w.add(
      'STRUCT',
      'big',
      7,
      false,
      536,
      w.str('n'),
      u32,
      0,
      w.str('arr'),
      arr,
      4 * 8,
      w.str('ps'),
      parr,
      404 * 8,
      w.str('s40'),
      s40,
      484 * 8,
      w.str('s3'),
      s3,
      524 * 8,
      w.str('__proto__'),
      u32,
      528 * 8,
      w.str('a"b\\'),
      u32,
      532 * 8,
    );
    return { btf: Btf.parse(w.build()), st, pair };
  }

  it('decodes to objects with the declared keys in order, one shape for every value', () => {
    const btf = readObjectBtf(objectBytes())!;
    const c = codecFor(btf, id(btf, 'kt_value', 'STRUCT'));
    const a = c.decode(c.encode({ name: 'a' })) as Record<string, unknown>;
    const b = c.decode(c.encode({ name: 'b', color: 'KT_RED', bits: { a: 1 } })) as Record<string, unknown>;
    assert.deepEqual(Object.keys(a), Object.keys(b));
    assert.deepEqual(Object.keys(a).slice(0, 6), ['addr', 'peers', 'counts', 'name', 'color', 'sign']);
    assert.deepEqual(Object.keys(a.addr as object), ['ip', 'port', 'proto']);
  });

  it('handles arrays too big to inline, with indices in error paths', () => {
    const { btf, st } = bigStruct();
    const c = codecFor(btf, st);
    assert.equal(c.size, 536);
    const value = {
      n: 7,
      arr: Array.from({ length: 100 }, (_, i) => i * 1000),
      ps: Array.from({ length: 40 }, (_, i) => ({ a: i, b: 255 - i })),
      s40: 'x'.repeat(39),
      s3: 'abc',
      ['__proto__']: 5,
      'a"b\\': 6,
    };
    Object.defineProperty(value, '__proto__', { value: 5, enumerable: true, configurable: true, writable: true });
    const bytes = c.encode(value);
    assert.equal(new DataView(bytes.buffer).getUint32(4 + 99 * 4, true), 99000);
    assert.equal(bytes[404 + 39 * 2 + 1], 216);
    const v = c.decode(bytes) as Record<string, unknown>;
    assert.deepEqual(v.arr, value.arr);
    assert.deepEqual(v.ps, value.ps);
    assert.equal(v.s40, 'x'.repeat(39));
    assert.equal(v.s3, 'abc');
    assert.ok(Object.hasOwn(v, '__proto__'), '__proto__ is an own property, not the prototype');
    assert.equal(Object.getOwnPropertyDescriptor(v, '__proto__')?.value, 5);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.equal(v['a"b\\'], 6);
    assert.deepEqual(c.encode(v), bytes);
    expectEncodeError(
      () => c.encode({ arr: [...Array(70).fill(0), -1] }),
      'value.arr[70]: -1 does not fit in unsigned int',
    );
    expectEncodeError(
      () => c.encode({ ps: [...Array(37).fill({}), { b: 256 }] }),
      'value.ps[37].b: 256 does not fit in unsigned char',
    );
    expectEncodeError(
      () => c.encode({ ps: [{}, { c: 1 }] }),
      /^value\.ps\[1\]\.c: unknown field of struct pair \(fields: a, b\)$/,
    );
    expectEncodeError(
      () => c.encode({ ps: Array(41).fill({}) }),
      'value.ps: 41 elements do not fit in struct pair[40]',
    );
    expectEncodeError(
      () => c.encode({ s40: 'y'.repeat(41) }),
      /^value\.s40: "y+…" is 41 bytes, does not fit in char\[40\]$/,
    );
  });

  it('decodes char arrays of every length up to the NUL, as UTF-8, from any buffer and offset', () => {
    const { btf, st } = bigStruct();
    const c = codecFor(btf, st);
    for (let n = 0; n <= 40; n++) {
      const s = 'abcdefghijklmnopqrstuvwxyz0123456789ABCD'.slice(0, n);
      assert.equal((c.decode(c.encode({ s40: s })) as { s40: string }).s40, s);
    }
    for (const s of ['é', 'aé', 'ü'.repeat(20), '日本語', 'x😀y']) {
      assert.equal((c.decode(c.encode({ s40: s })) as { s40: string }).s40, s);
    }
    // the same bytes in a Buffer at an offset, alternating with another buffer (cached views)
    const one = Buffer.alloc(600);
    c.encode({ n: 1, s40: 'one' }, one, 64);
    const two = c.encode({ n: 2, s40: 'two' });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(
        [(c.decode(one, 64) as { n: number }).n, (c.decode(one, 64) as { s40: string }).s40],
        [1, 'one'],
      );
      assert.deepEqual([(c.decode(two) as { n: number }).n, (c.decode(two) as { s40: string }).s40], [2, 'two']);
    }
  });

  it('copies union bytes even when decoding from a Buffer', () => {
    const btf = readObjectBtf(objectBytes())!;
    const c = codecFor(btf, id(btf, 'kt_value', 'STRUCT'));
    const buf = Buffer.from(c.encode({ raw: new Uint8Array([1, 2, 3]) }));
    const v = c.decode(buf) as { raw: Uint8Array };
    v.raw[0] = 99;
    assert.equal((c.decode(buf) as { raw: Uint8Array }).raw[0], 1);
  });

  it('works without code generation (--disallow-code-generation-from-strings)', () => {
    const index = new URL('../../src/bpf/btf/index.js', import.meta.url).href;
    const obj = new URL('./btf_types.bpf.o', import.meta.url).pathname;
    const script = `
      import { readFileSync } from 'node:fs';
      const { readObjectBtf, codecFor } = await import(${JSON.stringify(index)});
      const btf = readObjectBtf(readFileSync(${JSON.stringify(obj)}));
      const c = codecFor(btf, btf.findByName('kt_value', 'STRUCT').id);
      const v = c.decode(c.encode({ addr: { ip: 1, port: 2 }, peers: [{}, { proto: 3 }], name: 'n', bits: { c: -3 }, matrix: [[1], [0, 2]] }));
      let err = '';
      try { c.encode({ matrix: [[], [0, 0, 300]] }); } catch (e) { err = e.message; }
      console.log(JSON.stringify({ v, err }, (_k, x) => typeof x === 'bigint' ? String(x) : x instanceof Uint8Array ? [...x] : x));
    `;
    const out = execFileSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    const { v, err } = JSON.parse(out) as {
      v: { addr: unknown; peers: unknown; name: unknown; bits: { c: unknown }; matrix: unknown };
      err: string;
    };
    assert.deepEqual(v.addr, { ip: 1, port: 2, proto: 0 });
    assert.deepEqual(v.peers, [
      { ip: 0, port: 0, proto: 0 },
      { ip: 0, port: 0, proto: 3 },
    ]);
    assert.equal(v.name, 'n');
    assert.equal(v.bits.c, -3);
    assert.deepEqual(v.matrix, [
      [1, 0, 0],
      [0, 2, 0],
    ]);
    assert.equal(err, 'value.matrix[1][2]: 300 does not fit in __u8');
  });
});
