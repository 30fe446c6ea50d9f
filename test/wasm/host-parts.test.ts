// The parts of the Wasm host that need no kernel: the memory limit written into a module, the
// objects found in a guest's data, the capability manifest's checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapabilityCheck, declaredCapabilities, embeddedObjects, limitMemory } from '../../src/wasm/index.js';

// (module (memory 2) (data (i32.const 16) "\7fELF..."))
function moduleWithMemory(min: number, max?: number, data: number[] = []): Uint8Array {
  const limits = max === undefined ? [0, min] : [1, min, max];
  const mem = [5, limits.length + 1, 1, ...limits];
  const seg = data.length ? [11, 0, 1, 0, 0x41, 16, 0x0b] : [];
  const body = data.length ? [...seg.slice(2), data.length, ...data] : [];
  const dataSec = data.length ? [11, body.length, ...body] : [];
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...mem, ...dataSec]);
}

test('the memory limit becomes the maximum of the guest memory, never above its own', () => {
  const m = limitMemory(moduleWithMemory(2), 10);
  const mem = new WebAssembly.Memory({ initial: 1 });
  void mem;
  const inst = new WebAssembly.Module(m.module as Uint8Array<ArrayBuffer>);
  assert.equal(m.initialPages, 2);
  assert.ok(inst);
  assert.deepEqual([...m.module.slice(8)], [5, 4, 1, 1, 2, 10]);
  assert.deepEqual([...limitMemory(moduleWithMemory(2, 5), 10).module.slice(8)], [5, 4, 1, 1, 2, 5]);
  assert.throws(() => limitMemory(moduleWithMemory(20), 10), /needs 1.25 MiB of memory at start/);
  assert.throws(() => limitMemory(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 10), /not a WebAssembly module/);
});

test('embedded objects are found in the memory the data segments lay out', () => {
  const elf = new Uint8Array(64 + 64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  new DataView(elf.buffer).setUint16(18, 247, true);
  new DataView(elf.buffer).setBigUint64(0x28, 64n, true);
  new DataView(elf.buffer).setUint16(0x3a, 64, true);
  new DataView(elf.buffer).setUint16(0x3c, 1, true);
  const found = embeddedObjects(moduleWithMemory(1, undefined, [...elf]));
  assert.equal(found.length, 1);
  assert.equal(found[0]!.length, 128);
  assert.deepEqual(embeddedObjects(moduleWithMemory(1, undefined, [1, 2, 3])), []);
});

test('the capability manifest allows what the objects declare, and nothing more', () => {
  const caps = declaredCapabilities([
    { programs: [{ name: 'p', type: 'tracepoint', section: 'tp/sched/sched_process_exec' }], maps: ['rb'] },
  ]);
  const check = new CapabilityCheck(caps);
  assert.equal(check.programType('tracepoint', 'p'), undefined);
  assert.match(check.programType('xdp', 'x')!, /type xdp, which the capability manifest does not list/);
  assert.equal(check.attach('p', 'tp/sched/sched_process_exec', ''), undefined);
  assert.match(check.attach('p', 'tp/sched/sched_process_exec', 'sched/sched_process_fork')!, /not in the capability/);
  assert.equal(check.map('rb'), undefined);
  assert.match(check.map('other')!, /map other is not in the capability manifest/);
  const wide = new CapabilityCheck({ ...caps, attachTargets: ['xdp:*'] });
  assert.equal(wide.attach('x', 'xdp', 'eth0'), undefined);
});
