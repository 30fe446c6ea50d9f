// The user-space engines: our own conformance-style programs (run in both engines, which must
// agree), faults that name the instruction, helpers the engine lacks, and a package object with
// maps, globals, a subprogram, a ringbuf and a tail call.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Invalid, isKind, Unsupported } from '../../src/errors.js';
import { runConformance } from '../../src/vm/conformance.js';
import {
  assemble,
  ENGINES,
  type EngineName,
  encodeProgram,
  loadVmObject,
  runPacket,
  Vm,
  VmFault,
  type VmRingbuf,
  type VmValueMap,
} from '../../src/vm/index.js';
import { objectPath } from '../../testbed/kernel.js';
import { randomPrograms } from './random-programs.js';

function run(engine: EngineName, asm: string, memory?: number[]): bigint {
  const vm = new Vm({ engine, allowCallx: true });
  vm.load('main', assemble(asm));
  const args: bigint[] = [];
  if (memory) {
    const r = vm.give(Uint8Array.from(memory));
    args.push(BigInt(r.start), BigInt(memory.length));
  }
  return vm.run('main', args);
}

const CASES: { name: string; asm: string; mem?: number[]; result: bigint }[] = [
  { name: 'alu32 wraps and zero-extends', asm: 'mov %r0, -1\nadd32 %r0, 2\nexit', result: 1n },
  {
    name: 'div and mod by zero',
    asm: 'mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nmov %r2, 9\nmod %r2, %r1\nadd %r0, %r2\nexit',
    result: 9n,
  },
  {
    name: 'sdiv INT_MIN / -1',
    asm: 'lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit',
    result: 0x8000000000000000n,
  },
  { name: 'smod sign follows dividend', asm: 'mov %r0, -7\nsmod %r0, 3\nexit', result: BigInt.asUintN(64, -1n) },
  { name: 'sdiv32', asm: 'mov32 %r0, -8\nsdiv32 %r0, 2\nexit', result: 0xfffffffcn },
  { name: 'movsx', asm: 'mov %r1, 0x80\nmovsx864 %r0, %r1\nexit', result: BigInt.asUintN(64, -128n) },
  { name: 'movsx32', asm: 'mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit', result: 0xffff8000n },
  { name: 'bswap and be/le', asm: 'lddw %r0, 0x0102030405060708\nbswap64 %r0\nbe16 %r0\nexit', result: 0x0102n },
  { name: 'le32 truncates', asm: 'lddw %r0, 0x1122334455667788\nle32 %r0\nexit', result: 0x55667788n },
  {
    name: 'jmp32 compares low halves',
    asm: 'lddw %r1, 0x100000001\nmov %r0, 0\njeq32 %r1, 1, +1\nexit\nmov %r0, 1\nexit',
    result: 1n,
  },
  { name: 'gotol', asm: 'mov %r0, 1\nja32 skip\nmov %r0, 2\nskip:\nexit', result: 1n },
  { name: 'signed jumps', asm: 'mov %r0, 0\nmov %r1, -1\njsgt %r1, 0, +1\nmov %r0, 5\nexit', result: 5n },
  {
    name: 'atomics: fetch add, xchg, cmpxchg',
    asm: [
      'stdw [%r10-8], 10',
      'mov %r1, 5',
      'lock fetch add [%r10-8], %r1', // r1 = 10, mem 15
      'mov %r2, 100',
      'lock xchg [%r10-8], %r2', // r2 = 15, mem 100
      'mov %r0, 100',
      'mov %r3, 7',
      'lock cmpxchg [%r10-8], %r3', // r0 = 100, mem 7
      'ldxdw %r4, [%r10-8]',
      'add %r0, %r1',
      'add %r0, %r2',
      'add %r0, %r4',
      'exit',
    ].join('\n'),
    result: 132n,
  },
  {
    name: 'atomic32 and',
    asm: 'stw [%r10-4], 0xff\nmov %r1, 0x0f\nlock and32 [%r10-4], %r1\nldxw %r0, [%r10-4]\nexit',
    result: 0x0fn,
  },
  {
    name: 'local calls keep r6-r9 and get their own frame',
    asm: [
      'mov %r6, 6',
      'stdw [%r10-8], 1',
      'mov %r1, 4',
      'call local f',
      'ldxdw %r1, [%r10-8]',
      'add %r0, %r1',
      'add %r0, %r6',
      'exit',
      'f:',
      'stdw [%r10-8], 99',
      'mov %r6, 0',
      'mov %r0, %r1',
      'mul %r0, %r1',
      'exit',
    ].join('\n'),
    result: 23n,
  },
  { name: 'memory: r1 and r2', asm: 'ldxh %r0, [%r1+2]\nadd %r0, %r2\nexit', mem: [1, 2, 3, 4], result: 0x0403n + 4n },
  { name: 'sign-extending loads', asm: 'ldxsb %r0, [%r1]\nexit', mem: [0xfe], result: BigInt.asUintN(64, -2n) },
  { name: 'loop', asm: 'mov %r0, 0\nmov %r1, 10\nl:\nadd %r0, %r1\nsub %r1, 1\njne %r1, 0, l\nexit', result: 55n },
];

for (const c of CASES) {
  test(`both engines: ${c.name}`, () => {
    for (const e of ENGINES) assert.equal(run(e, c.asm, c.mem), c.result, e);
  });
}

function faultOf(engine: EngineName, asm: string, memory?: number[]): VmFault {
  try {
    run(engine, asm, memory);
  } catch (e) {
    assert.ok(e instanceof VmFault, String(e));
    return e;
  }
  assert.fail('no fault');
}

test('a bad access stops the program naming the instruction, the same in both engines', () => {
  const programs = [
    { asm: 'mov %r0, 0\nldxw %r0, [%r1+0]\nexit', pc: 1, msg: /read of 4 byte\(s\) at 0x0: outside every region/ },
    { asm: 'stdw [%r10+0], 1\nmov %r0, 0\nexit', pc: 0, msg: /write of 8 byte\(s\)/ },
    { asm: 'mov %r0, 0\nldxdw %r0, [%r1+2]\nexit', mem: [1, 2, 3, 4], pc: 1, msg: /outside every region/ },
    { asm: 'lddw %r1, 0xffffffffffff0000\nldxb %r0, [%r1]\nexit', pc: 2, msg: /outside memory/ },
  ];
  for (const p of programs) {
    const faults = ENGINES.map((e) => faultOf(e, p.asm, p.mem));
    for (const f of faults) {
      assert.equal(f.pc, p.pc);
      assert.match(f.message, p.msg);
      assert.match(f.message, new RegExp(`^insn ${p.pc}: `));
      assert.ok(isKind(f, Invalid));
    }
    assert.equal(faults[0]!.message, faults[1]!.message);
  }
});

test('a runaway loop is stopped by the budget in both engines', () => {
  for (const engine of ENGINES) {
    const vm = new Vm({ engine, budget: 1000 });
    vm.load('main', assemble('mov %r0, 0\nl:\nadd %r0, 1\nja l\nexit'));
    assert.throws(() => vm.run('main'), /insn 2: budget of backward jumps exhausted/);
  }
});

test('a program calling a helper the engine lacks fails to load, naming the helper', () => {
  const vm = new Vm();
  assert.throws(
    () => vm.load('main', assemble('call 14\nexit')),
    (e: unknown) => isKind(e, Unsupported) && /bpf_get_current_pid_tgid is not available/.test(String(e)),
  );
  assert.throws(() => vm.load('main', assemble('mov %r10, 1\nexit')), /insn 0 .*r10 is read-only/);
  assert.throws(() => vm.load('main', assemble('mov %r0, 1\nja +5\nexit')), /insn 1 .*outside its function/);
});

test('the conformance plugin protocol: r0 in hex, refusals on stderr with exit 1', () => {
  const program = encodeProgram(assemble('ldxb %r0, [%r1+1]\nexit'));
  for (const engine of ENGINES) {
    assert.deepEqual(runConformance({ program, memory: Uint8Array.of(1, 0xab), engine }), {
      code: 0,
      stdout: 'ab\n',
      stderr: '',
    });
    const bad = runConformance({ program: encodeProgram(assemble('mov %r10, 1\nexit')), engine });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /r10 is read-only/);
  }
});

test('a package object: maps, .rodata and .bss, a subprogram, a ringbuf and a tail call', () => {
  const obj = readFileSync(objectPath(import.meta.url, 'vm.bpf.o'));
  for (const engine of ENGINES) {
    const vm = new Vm({ engine });
    const spec = loadVmObject(vm, obj);
    assert.deepEqual(spec.programs.map((p) => `${p.name}:${p.type}`).sort(), [
      'compute:xdp',
      'tail_caller:xdp',
      'tail_target:xdp',
    ]);
    const packet = new Uint8Array(64);
    for (let i = 0; i < 2; i++) assert.equal(runPacket(vm, 'compute', 'xdp', { data: packet }).retval, 2);
    const counters = vm.map('counters') as VmValueMap;
    const key = (n: number) => Uint8Array.of(n, 0, 0, 0);
    assert.equal(Buffer.from(counters.get(key(1))!).readBigUInt64LE(), 6n, `${engine}: counters[1] += factor`);
    const squares = vm.map('squares') as VmValueMap;
    assert.equal(Buffer.from(squares.get(key(4))!).readBigUInt64LE(), 16n);
    assert.equal(squares.keys().length, 5);
    const bss = vm.map('.bss') as VmValueMap;
    assert.equal(Buffer.from(bss.get(key(0))!).readBigUInt64LE(), 2n);
    const events = (vm.map('events') as VmRingbuf).drain();
    assert.equal(events.length, 10);
    assert.deepEqual([...events[2]!.data], [3, 0, 0, 0, 9, 0, 0, 0]);
    assert.equal(runPacket(vm, 'tail_caller', 'xdp', { data: packet }).retval, 42, `${engine}: tail call`);
  }
});

test('.rodata is read-only to the program', () => {
  for (const engine of ENGINES) {
    const vm = new Vm({ engine });
    vm.addMap({ name: '.rodata', type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, readOnly: true });
    const insns = assemble('lddw %r1, 0\nstdw [%r1+0], 1\nmov %r0, 0\nexit');
    insns[0]!.src = 2; // map value of map 0
    vm.load('main', insns);
    assert.throws(() => vm.run('main'), /insn 2: write of 8 byte\(s\) at 0x[0-9a-f]+: region \.rodata is read-only/);
  }
});

test('differential fuzz: generated programs give the same r0 in both engines', () => {
  let n = 0;
  for (const asm of randomPrograms(13, 300)) {
    const [a, b] = ENGINES.map((e) => run(e, asm));
    assert.equal(a, b, asm);
    n++;
  }
  assert.equal(n, 300);
});
