// bpf_map_lookup_elem from compiled code: array and hash maps are looked up in Wasm through the
// maps' in-memory index (src/vm/map-index.ts), which the host keeps in step with updates and
// deletes; everything else goes to the host. Both engines and the host view must agree, and
// faults must read the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble, ENGINES, type EngineName, Vm, type VmValueMap } from '../../src/vm/index.js';
import type { MapSpec } from '../../src/vm/maps.js';

/** r1 = key pointer: lookup in map 0; r0 = the value's first u64, or 0xdead when absent. */
const LOOKUP = [
  'mov %r2, %r1',
  'lddw %r1, 0',
  'call 1',
  'jeq %r0, 0, +2',
  'ldxdw %r0, [%r0+0]',
  'exit',
  'mov %r0, 0xdead',
  'exit',
];

function vmWith(engine: EngineName, spec: MapSpec, opts: { cpus?: number; cpu?: number } = {}) {
  const vm = new Vm({ engine, ...opts });
  const map = vm.addMap(spec) as VmValueMap;
  const insns = assemble(LOOKUP.join('\n'));
  insns[1]!.src = 1; // lddw of map 0
  vm.load('lookup', insns);
  const keyRegion = vm.give(spec.keySize, 'given', 'key');
  const lookup = (key: Uint8Array) => {
    vm.mem.u8.set(key, keyRegion.start);
    return vm.run('lookup', [BigInt(keyRegion.start)]);
  };
  return { vm, map, lookup, keyRegion };
}

const u64 = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
};

test('hash map: lookups after random updates and deletes agree with the host in both engines', () => {
  // 12-byte keys: three words, and 13-byte keys: words and a tail byte
  for (const keySize of [12, 13, 4]) {
    const spec: MapSpec = { name: 'h', type: 'hash', keySize, valueSize: 8, maxEntries: 48 };
    const runs = ENGINES.map((e) => vmWith(e, spec));
    let s = keySize;
    const rnd = (n: number) => {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      return s % n;
    };
    const keyOf = (n: number) => {
      const k = new Uint8Array(keySize);
      // few distinct keys, so deletes hit present keys and probe chains form
      k[0] = n;
      k[keySize - 1] = n * 7;
      return k;
    };
    const model = new Map<number, bigint>();
    for (let step = 0; step < 2000; step++) {
      const n = rnd(64);
      const op = rnd(3);
      for (const r of runs) {
        if (op === 0 && (model.has(n) || model.size < spec.maxEntries)) r.map.set(keyOf(n), u64(BigInt(n) * 1000n));
        else if (op === 1) r.map.delete(keyOf(n));
      }
      if (op === 0 && (model.has(n) || model.size < spec.maxEntries)) model.set(n, BigInt(n) * 1000n);
      else if (op === 1) model.delete(n);
      const probe = rnd(64);
      const want = model.get(probe) ?? 0xdeadn;
      for (const [i, r] of runs.entries()) assert.equal(r.lookup(keyOf(probe)), want, `${ENGINES[i]}: step ${step}`);
    }
  }
});

test('array and per-CPU array: the index gives the value of the VM CPU, out-of-range keys none', () => {
  for (const engine of ENGINES) {
    const { map, lookup } = vmWith(engine, { name: 'a', type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 });
    map.set(Uint8Array.of(2, 0, 0, 0), u64(22n));
    assert.equal(lookup(Uint8Array.of(2, 0, 0, 0)), 22n, engine);
    assert.equal(lookup(Uint8Array.of(3, 0, 0, 0)), 0n, engine);
    assert.equal(lookup(Uint8Array.of(4, 0, 0, 0)), 0xdeadn, engine);
    const pc = vmWith(
      engine,
      { name: 'p', type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 2 },
      { cpus: 3, cpu: 2 },
    );
    pc.map.set(Uint8Array.of(1, 0, 0, 0), u64(5n));
    pc.map.updateFrom(Uint8Array.of(1, 0, 0, 0), u64(7n), 2, 2);
    assert.equal(pc.lookup(Uint8Array.of(1, 0, 0, 0)), 7n, `${engine}: CPU 2's value`);
  }
});

test('LRU hash maps are looked up by the host (a lookup reorders them) with the same results', () => {
  for (const engine of ENGINES) {
    const { map, lookup } = vmWith(engine, { name: 'l', type: 'lru_hash', keySize: 4, valueSize: 8, maxEntries: 2 });
    map.set(Uint8Array.of(1, 0, 0, 0), u64(1n));
    map.set(Uint8Array.of(2, 0, 0, 0), u64(2n));
    assert.equal(lookup(Uint8Array.of(1, 0, 0, 0)), 1n); // 1 is now the most recent
    map.set(Uint8Array.of(3, 0, 0, 0), u64(3n)); // evicts 2
    assert.equal(lookup(Uint8Array.of(2, 0, 0, 0)), 0xdeadn, engine);
    assert.equal(lookup(Uint8Array.of(1, 0, 0, 0)), 1n, engine);
  }
});

test('a lookup with a key outside every region faults the same in both engines', () => {
  const messages = ENGINES.map((engine) => {
    const vm = new Vm({ engine });
    vm.addMap({ name: 'h', type: 'hash', keySize: 8, valueSize: 8, maxEntries: 4 });
    const insns = assemble(['mov %r2, %r1', 'lddw %r1, 0', 'call 1', 'exit'].join('\n'));
    insns[1]!.src = 1;
    vm.load('bad', insns);
    const key = vm.give(4); // 4 bytes: an 8-byte key does not fit
    try {
      vm.run('bad', [BigInt(key.start)]);
    } catch (e) {
      return String(e);
    }
    return 'no fault';
  });
  assert.match(messages[0]!, /insn 3.*read of 8 byte\(s\) at 0x[0-9a-f]+: outside every region/);
  assert.equal(messages[1], messages[0]);
});
