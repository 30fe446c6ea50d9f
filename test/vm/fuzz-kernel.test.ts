// The differential fuzz's kernel leg: generated programs (ALU of every kind, forward jumps, stack
// stores and loads, an array map lookup and a store through the value) are loaded into the kernel
// as socket filters and run with BPF_PROG_TEST_RUN, and run in both user-space engines; r0 and
// the map's four slots must agree in all three. KBPF_FUZZ_RUNS sets how many (default 300).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BpfMap, loadRawProgram, testRun } from '../../src/bpf/index.js';
import { assemble, ENGINES, encodeProgram, type Insn, Vm, type VmValueMap } from '../../src/vm/index.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';
import { MAP_PLACEHOLDER, randomPrograms } from './random-programs.js';

const RUNS = Number(process.env.KBPF_FUZZ_RUNS ?? 300);
const PACKET = new Uint8Array(64);
const SLOTS = [0, 1, 2, 3];

/** The program with its map lddw pointing at `imm` (a map fd for the kernel, a map index for the VM). */
function withMap(insns: readonly Insn[], imm: number): Insn[] {
  return insns.map((i) => (i.code === 0x18 && i.imm === MAP_PLACEHOLDER ? { ...i, src: 1, imm } : { ...i }));
}

const u64 = (b: Uint8Array | undefined) => (b ? Buffer.from(b).readBigUInt64LE(0) : undefined);

test(`differential fuzz: ${RUNS} generated programs agree in the kernel and both engines (r0 and map)`, async () => {
  const before = kernelIds();
  const map = BpfMap.create({ name: 'fuzz_out', type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 });
  let n = 0;
  try {
    for (const asm of randomPrograms(2024, RUNS, { kernel: true })) {
      const insns = assemble(asm);
      for (const k of SLOTS) map.update(k, 0n);
      const prog = loadRawProgram('socket_filter', encodeProgram(withMap(insns, map.fd)), { name: 'fuzz' });
      let kernel: { r0: number; slots: (bigint | undefined)[] };
      try {
        const r = testRun(prog, { data: PACKET });
        kernel = {
          r0: r.retval >>> 0,
          slots: SLOTS.map((k) => u64(map.lookupRaw(Buffer.from(Uint32Array.of(k).buffer)))),
        };
      } finally {
        prog.close();
      }
      for (const engine of ENGINES) {
        const vm = new Vm({ engine });
        const m = vm.addMap({ name: 'fuzz_out', type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 }) as VmValueMap;
        vm.load('fuzz', withMap(insns, 0));
        const r0 = Number(BigInt.asUintN(32, vm.run('fuzz')));
        const slots = SLOTS.map((k) => u64(m.get(Uint8Array.of(k, 0, 0, 0))));
        assert.deepEqual({ r0, slots }, kernel, `${engine} vs kernel:\n${asm}`);
      }
      n++;
    }
  } finally {
    map.close();
  }
  assert.equal(n, RUNS);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
