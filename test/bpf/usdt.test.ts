// USDT without the kernel: argument specs parsed per architecture, SDT notes read from real
// binaries (PIE and not) into file offsets that land on the probe's nop, and the spec bytes laid
// out as the object's usdt.bpf.h reads them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfObject, parseUsdtArgs, readElfSectionHeaders, readUsdtProbes, USDT_SPECS_MAP } from 'kbpf/bpf';
import { usdtSpecLayout } from '../../src/bpf/usdt/specs.js';
import { Invalid, isKind } from '../../src/errors.js';
import { objectPath, tempDir } from '../../testbed/kernel.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/usdt_target.c', import.meta.url));
const M = (v: number) => BigInt.asUintN(64, BigInt(v));

test('x86-64 argument specs: registers of every width, memory with and without an offset, constants, base+index', () => {
  const args = parseUsdtArgs(
    '-4@%edi 8@-8(%rbp) -8@(%rsi) 2@%ax 1@$-56 8@%r12 4@%r9d 8@0x10(%rsp) 8@16(%rax,%rdx,8)',
    'p',
    'x64',
  );
  assert.deepEqual(
    args.map((a) => [a.kind, a.size, a.signed, a.regOffset, a.value]),
    [
      ['reg', 4, true, 112, 0n],
      ['deref', 8, false, 32, M(-8)],
      ['deref', 8, true, 104, 0n],
      ['reg', 2, false, 80, 0n],
      ['const', 1, false, 0, M(-56)],
      ['reg', 8, false, 24, 0n],
      ['reg', 4, false, 64, 0n],
      ['deref', 8, false, 152, 16n],
      ['sib', 8, false, 80, 16n],
    ],
  );
  assert.deepEqual([args[8]!.indexRegOffset, args[8]!.scaleShift], [96, 3]);
  for (const [reg, off] of [
    ['%rip', 128],
    ['%sil', 104],
    ['%bpl', 32],
    ['%bl', 40],
    ['%spl', 152],
    ['%r15b', 0],
  ] as const)
    assert.equal(parseUsdtArgs(`1@${reg}`, 'p', 'x64')[0]!.regOffset, off, reg);
  assert.deepEqual(parseUsdtArgs('', 'p', 'x64'), []);
});

test('arm64 argument specs: x and w registers, [reg, off] memory, constants', () => {
  const args = parseUsdtArgs('-4@x1 8@[sp, 16] 8@[x0] 4@5 -8@w30 4@[x29, -12]', 'p', 'arm64');
  assert.deepEqual(
    args.map((a) => [a.kind, a.size, a.signed, a.regOffset, a.value]),
    [
      ['reg', 4, true, 8, 0n],
      ['deref', 8, false, 248, 16n],
      ['deref', 8, false, 0, 0n],
      ['const', 4, false, 0, 5n],
      ['reg', 8, true, 240, 0n],
      ['deref', 4, false, 232, M(-12)],
    ],
  );
});

test('argument specs kbpf cannot read are refused naming the argument', () => {
  for (const [spec, why] of [
    ['3@%eax', /argument 0 "3@%eax" is not SIZE@LOCATION with a size of 1, 2, 4 or 8/],
    ['4@%eax 8@%xmm0', /argument 1 "8@%xmm0": unknown register %xmm0/],
    ['4@*%eax', /argument 0 "4@\*%eax": not a constant, register or memory operand/],
    [Array(13).fill('4@%eax').join(' '), /has 13 arguments; usdt.bpf.h reads at most 12/],
  ] as const)
    assert.throws(
      () => parseUsdtArgs(spec, 'USDT p:n', 'x64'),
      (e: Error) => isKind(e, Invalid) && why.test(e.message),
    );
  assert.throws(() => parseUsdtArgs('4@%eax', 'p', 'mips'), /reads USDT arguments on x64 and arm64, not mips/);
});

for (const pie of [true, false])
  test(`SDT notes of a ${pie ? 'PIE' : 'non-PIE'} binary: each probe's file offset is its nop, semaphores are in .probes, prelink moves are added back`, (t) => {
    const bin = join(tempDir(t, 'kbpf-usdt-'), 'target');
    execFileSync('cc', ['-O2', ...(pie ? ['-pie', '-fPIE'] : ['-no-pie', '-fno-PIE']), '-o', bin, FIXTURE]);
    const buf = readFileSync(bin);
    const probes = readUsdtProbes(buf, bin);
    assert.deepEqual(
      probes.map((p) => [p.provider, p.name, p.args]),
      [
        ['kbpftest', 'tick', '-4@%edi -8@(%rsi) -2@%ax 1@$-56'],
        ['kbpftest', 'konst', '-4@$42 -4@$-5'],
        ['kbpftest', 'guarded', '-4@%edi'],
      ],
    );
    const sections = readElfSectionHeaders(buf);
    const probesSection = sections.find((s) => s.name === '.probes')!;
    for (const p of probes) {
      assert.equal(buf[p.offset], 0x90, `${p.name}: a nop at file offset 0x${p.offset.toString(16)}`);
      assert.ok(
        p.semaphoreOffset >= probesSection.offset && p.semaphoreOffset < probesSection.offset + probesSection.size,
      );
    }
    if (!pie) assert.ok(probes[0]!.address > probes[0]!.offset, 'a non-PIE binary is linked at a high address');

    // a note written before prelink moved .stapsdt.base by 16 bytes: the probe moved with it
    const moved = Buffer.from(buf);
    const notes = sections.find((s) => s.name === '.note.stapsdt')!;
    const desc = notes.offset + 12 + 8; // first note: header, "stapsdt\0"
    moved.writeBigUInt64LE(moved.readBigUInt64LE(desc + 8) - 16n, desc + 8);
    const first = readUsdtProbes(moved, bin)[0]!;
    assert.deepEqual([first.address, first.offset], [probes[0]!.address + 16, probes[0]!.offset + 16]);
  });

test('a binary without SDT notes has no probes, and a file that is not an executable or library is refused', () => {
  assert.deepEqual(readUsdtProbes(readFileSync('/bin/true'), '/bin/true'), []);
  const obj = objectPath(import.meta.url, '../agent/packages/usdt_probe/usdt_probe.bpf.o');
  assert.throws(() => readUsdtProbes(readFileSync(obj), obj), /not an executable or a shared library \(ELF type 1\)/);
});

test("spec bytes follow the object's own usdt.bpf.h layout (Debian's libbpf 1.1: 16-byte arg specs, cookie, count)", () => {
  const obj = BpfObject.open(objectPath(import.meta.url, '../agent/packages/usdt_probe/usdt_probe.bpf.o'));
  try {
    const layout = usdtSpecLayout(obj.map(USDT_SPECS_MAP));
    assert.equal(layout.maxArgs, 12);
    const bytes = Buffer.from(layout.encode(parseUsdtArgs('-4@%edi 8@-8(%rbp) 1@$-56', 'p', 'x64'), 7n, 'p'));
    assert.equal(bytes.length, layout.size);
    const arg = (i: number) => ({
      val: bytes.readBigUInt64LE(i * 16),
      type: bytes.readUInt32LE(i * 16 + 8),
      reg: bytes.readInt16LE(i * 16 + 12),
      signed: bytes[i * 16 + 14],
      shift: bytes[i * 16 + 15],
    });
    assert.deepEqual(arg(0), { val: 0n, type: 1, reg: 112, signed: 1, shift: 32 });
    assert.deepEqual(arg(1), { val: M(-8), type: 2, reg: 32, signed: 0, shift: 0 });
    assert.deepEqual(arg(2), { val: M(-56), type: 0, reg: 0, signed: 0, shift: 56 });
    assert.equal(bytes.readBigUInt64LE(12 * 16), 7n, 'usdt_cookie');
    assert.equal(bytes.readInt16LE(12 * 16 + 8), 3, 'arg_cnt');
    // this header has no base+index operands
    assert.throws(
      () => layout.encode(parseUsdtArgs('8@16(%rax,%rdx,8)', 'p', 'x64'), 0n, 'USDT p:n'),
      /argument 0 is a base\+index\*scale memory operand one, which the program's usdt.bpf.h cannot read/,
    );
  } finally {
    obj.close();
  }
});
