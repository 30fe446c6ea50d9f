// Differential against the kernel: the same XDP object runs under BPF_PROG_TEST_RUN and in both
// user-space engines on the same packets; verdicts, output packets and the map agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BpfObject, testRun } from '../../src/bpf/index.js';
import { ENGINES, loadVmObject, runPacket, Vm, type VmValueMap } from '../../src/vm/index.js';
import { objectPath } from '../../testbed/kernel.js';

function packet(proto: number, dport: number, ethType = 0x0800): Buffer {
  const b = Buffer.alloc(14 + 20 + 8 + 6);
  b.set([2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa]);
  b.writeUInt16BE(ethType, 12);
  b[14] = 0x45;
  b.writeUInt16BE(20 + 8 + 6, 16);
  b[22] = 64;
  b[23] = proto;
  b.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  b.writeUInt16BE(40000, 34);
  b.writeUInt16BE(dport, 36);
  b.writeUInt16BE(8 + 6, 38);
  b.write('kbpf!!', 42);
  return b;
}

test('the kernel and both engines agree on an XDP program (verdicts, packets, map)', () => {
  const path = objectPath(import.meta.url, '../bpf/testrun.bpf.o');
  const packets = [
    packet(17, 53),
    packet(17, 7),
    packet(17, 5353),
    packet(6, 80),
    packet(17, 53, 0x86dd),
    packet(17, 7).subarray(0, 20),
  ];
  const obj = BpfObject.open(path);
  try {
    obj.load();
    const prog = obj.program('xdp_udp');
    const kernel = packets.map((p) => {
      const r = testRun(prog, { data: p });
      return { retval: r.retval, data: [...(r.dataOut ?? [])] };
    });
    const kernelVerdicts = [0, 1, 2, 3, 4].map((k) => obj.map('verdicts').lookup(k));
    for (const engine of ENGINES) {
      const vm = new Vm({ engine });
      loadVmObject(vm, readFileSync(path));
      const mine = packets.map((p) => {
        const r = runPacket(vm, 'xdp_udp', 'xdp', { data: p });
        return { retval: r.retval, data: [...r.data] };
      });
      assert.deepEqual(mine, kernel, engine);
      const verdicts = vm.map('verdicts') as VmValueMap;
      const mineVerdicts = [0, 1, 2, 3, 4].map((k) =>
        Buffer.from(verdicts.get(Uint8Array.of(k, 0, 0, 0))!).readBigUInt64LE(),
      );
      assert.deepEqual(mineVerdicts.map(String), kernelVerdicts.map(String), `${engine}: verdicts`);
    }
  } finally {
    obj.close();
  }
});
