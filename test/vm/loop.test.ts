// bpf_loop and bpf_set_retval in both user-space engines: callbacks linked from a real object
// (BPF_PSEUDO_FUNC loads of .text subprograms) stop early, run to nr, call bpf_loop themselves
// with their own ctx; bad flags, a too large nr, a forged handle, runaway callbacks and
// callbacks nested past the frame limit are refused the same way in both engines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { assemble, ENGINES, loadVmObject, runContext, runPacket, Vm, type VmValueMap } from '../../src/vm/index.js';
import { PSEUDO_FUNC } from '../../src/vm/insn.js';
import { objectPath } from '../../testbed/kernel.js';

const obj = readFileSync(objectPath(import.meta.url, 'loop.bpf.o'));
const u64 = (n: number | bigint) => BigInt.asUintN(64, BigInt(n));

/** results[0..3] after running an xdp program of the fixture on `packet`. */
function results(engine: (typeof ENGINES)[number], program: string, packet = new Uint8Array(0)): bigint[] {
  const vm = new Vm({ engine });
  loadVmObject(vm, obj);
  assert.equal(runPacket(vm, program, 'xdp', { data: packet }).retval, 2, `${engine}: XDP_PASS`);
  const m = vm.map('results') as VmValueMap;
  return [0, 1, 2, 3].map((k) => Buffer.from(m.get(Uint8Array.of(k, 0, 0, 0))!).readBigUInt64LE());
}

test('bpf_loop stops when the callback returns 1 and gives the number of calls made', () => {
  for (const engine of ENGINES) {
    // stop_at 4: calls for i = 0…3, the fourth returns 1
    assert.deepEqual(results(engine, 'loop_sum', Uint8Array.of(4)).slice(0, 3), [4n, 0n + 1n + 2n + 3n, 4n], engine);
    // stop_at 1: the first call stops it
    assert.deepEqual(results(engine, 'loop_sum', Uint8Array.of(1)).slice(0, 3), [1n, 0n, 1n], engine);
  }
});

test('bpf_loop runs nr times when the callback never stops it', () => {
  for (const engine of ENGINES) {
    // no packet: stop_at 100, nr 10 — i = 0…9
    assert.deepEqual(results(engine, 'loop_sum').slice(0, 3), [10n, 45n, 10n], engine);
    // stop_at 10 is reached at the last call: the callback's 1 still counts the call
    assert.deepEqual(results(engine, 'loop_sum', Uint8Array.of(10)).slice(0, 3), [10n, 45n, 10n], engine);
  }
});

test('a callback calls bpf_loop itself: the inner callback sees the ctx and the index of its own loop', () => {
  let weighted = 0;
  for (let r = 0; r < 4; r++) for (let c = 0; c < 3; c++) weighted += (r + 1) * 10 + c;
  for (const engine of ENGINES)
    assert.deepEqual(results(engine, 'loop_nested'), [4n, 12n, BigInt(weighted), 4n], engine);
});

test('bpf_loop refuses flags and nr over 1 << 23 without calling the callback', () => {
  for (const engine of ENGINES)
    assert.deepEqual(results(engine, 'loop_refused').slice(0, 3), [u64(-22), u64(-7), 0n], engine);
});

test('bpf_set_retval: a cgroup program sets the return value the syscall would get', () => {
  for (const engine of ENGINES) {
    const vm = new Vm({ engine });
    loadVmObject(vm, obj);
    const ctx = new Uint8Array(72);
    new DataView(ctx.buffer).setUint16(24, 80 << 8, true); // user_port = htons(80)
    assert.equal(runContext(vm, 'refuse', ctx).r0, 0n);
    assert.equal(vm.retval, -111, engine);
    new DataView(ctx.buffer).setUint16(24, 9 << 8, true);
    assert.equal(runContext(vm, 'refuse', ctx).r0, 1n);
    assert.equal(vm.retval, 0, `${engine}: each run starts at 0`);
  }
});

/** Assembles `asm`, turning each `lddw %rN, 0xcb` into a pseudo-func load of instruction `cb`. */
function withCallback(asm: string, cb: number) {
  const insns = assemble(asm);
  insns.forEach((i, pc) => {
    if (i.code === 0x18 && i.imm === 0xcb) {
      i.src = PSEUDO_FUNC;
      i.imm = cb - pc - 1;
    }
  });
  return insns;
}

const LOOP_CALL = 'mov %r1, 1\nlddw %r2, 0xcb\nmov %r3, 0\nmov %r4, 0\ncall 181\n';

test('callbacks nested past 8 frames, runaway callbacks and forged handles fault in both engines', () => {
  for (const engine of ENGINES) {
    const vm = new Vm({ engine, budget: 1000 });
    // a callback that loops over itself: one frame more each time
    vm.load('deep', withCallback(`${LOOP_CALL}exit\n${LOOP_CALL}exit`, 7));
    assert.throws(() => vm.run('deep'), /call depth over 8 frames/, engine);
    vm.load('runaway', withCallback(`${LOOP_CALL}exit\nmov %r0, 0\nja -1\nexit`, 7));
    assert.throws(() => vm.run('runaway'), /budget of backward jumps exhausted/, engine);
    // nr 1 << 23 of an empty callback: each call counts against the budget
    vm.load(
      'many',
      withCallback('lddw %r1, 0x800000\nlddw %r2, 0xcb\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\nmov %r0, 0\nexit', 8),
    );
    assert.throws(() => vm.run('many'), /budget of backward jumps exhausted/, engine);
    // the handle of a callback is not something a program can make up
    vm.load(
      'forged',
      assemble('mov %r1, 1\nlddw %r2, 0x100000007\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\nmov %r0, 0\nexit'),
    );
    assert.throws(() => vm.run('forged'), /insn 5: 0x100000007 is not a callback of the running program/, engine);
  }
});

test('bpf_loop with the default budget runs 1 << 23 calls of a short callback the same in both engines', () => {
  for (const engine of ENGINES) {
    const vm = new Vm({ engine });
    vm.load(
      'many',
      withCallback('lddw %r1, 0x800000\nlddw %r2, 0xcb\nmov %r3, 0\nmov %r4, 0\ncall 181\nexit\nmov %r0, 0\nexit', 8),
    );
    assert.equal(vm.run('many'), 1n << 23n, engine);
  }
});
