// Maps on the real kernel with BTF-typed keys and values: CRUD and iteration, update flags,
// per-CPU values, batch operations, created + pinned maps, maps shared between objects through
// reuseMap, and a queue.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { BPFFS, BpfError, BpfMap, BpfObject, ensureBpffs, numPossibleCpus, testRun } from '../../src/bpf/index.js';
import { Invalid, isKind } from '../../src/errors.js';
import { kernelIds, objectPath, uniqueName } from '../../testbed/kernel.js';
import { leftOfOurs, merge, NOTHING, oursOf } from './leak-check.js';

const OBJ = objectPath(import.meta.url, 'maps.bpf.o');
const PACKET = new Uint8Array(64); // a socket filter test run needs at least an Ethernet header

interface Point {
  x: number;
  y: number;
}
interface ItemKey {
  id: number;
  shape: string;
}
interface Item {
  pos: Point;
  corners: Point[];
  tags: number[];
  shape: string;
  label: string;
  total: bigint;
  delta: number;
}

/** What the kernel calls possible CPUs (e.g. "0-1" or "0-3,5"), counted. */
function possibleCpusFromSysfs(): number {
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  return text.split(',').reduce((n, r) => {
    const [a, b] = r.split('-').map(Number);
    return n + (b === undefined ? 1 : b - a! + 1);
  }, 0);
}

function openLoaded(name?: string): BpfObject {
  const obj = BpfObject.open(OBJ, name ? { name } : {});
  try {
    return obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
}

const item = (over: Partial<Item> = {}): Item => ({
  pos: { x: -3, y: 4 },
  corners: [
    { x: 1, y: 2 },
    { x: -2147483648, y: 2147483647 },
  ],
  tags: [1, 65535, 300],
  shape: 'SHAPE_TRIANGLE',
  label: 'hello, kbpf',
  total: 0xffff_ffff_ffffn,
  delta: -128,
  ...over,
});

test('typed hash: update, lookup, keys, entries and delete with struct keys and nested values', async () => {
  const before = kernelIds();
  const obj = openLoaded();
  try {
    const items = obj.map('items');
    assert.equal(items.type, 'hash');
    assert.equal(items.keySize, 8);
    assert.equal(items.valueSize, items.valueCodec.size);
    const k1: ItemKey = { id: 1, shape: 'SHAPE_CIRCLE' };
    const k2: ItemKey = { id: 2, shape: 'SHAPE_SQUARE' };
    assert.equal(items.lookup(k1), undefined);
    items.update(k1, item());
    items.update(k2, { pos: { x: 9 }, label: 'partial', shape: 'SHAPE_SQUARE' });
    assert.deepEqual(items.lookup(k1), item());
    // fields left out are zero
    assert.deepEqual(items.lookup(k2), {
      pos: { x: 9, y: 0 },
      corners: [
        { x: 0, y: 0 },
        { x: 0, y: 0 },
      ],
      tags: [0, 0, 0],
      shape: 'SHAPE_SQUARE',
      label: 'partial',
      total: 0n,
      delta: 0,
    });
    // the same key with another enum value is another key
    assert.equal(items.lookup({ id: 1, shape: 'SHAPE_SQUARE' }), undefined);
    const keys = ([...items.keys()] as ItemKey[]).sort((a, b) => a.id - b.id);
    assert.deepEqual(keys, [k1, k2]);
    const entries = ([...items.entries()] as [ItemKey, Item][]).sort((a, b) => a[0].id - b[0].id);
    assert.deepEqual(
      entries.map(([k, v]) => [k.id, v.label]),
      [
        [1, 'hello, kbpf'],
        [2, 'partial'],
      ],
    );
    // raw bytes agree with the codec
    const raw = items.lookupRaw(items.encodeKey(k1))!;
    assert.equal(raw.readInt32LE(0), -3);
    assert.equal(raw.readUInt32LE(items.valueSize - 8 - 8 - 4 - 12), 3); // shape = SHAPE_TRIANGLE
    // overwrite, then delete
    items.update(k1, item({ total: 1n }));
    assert.equal((items.lookup(k1) as Item).total, 1n);
    assert.equal(items.delete(k1), true);
    assert.equal(items.delete(k1), false);
    assert.equal(items.lookup(k1), undefined);
    assert.deepEqual([...items.keys()], [k2]);
    // a value that does not fit its type is refused, naming the map and the field
    assert.throws(
      () => items.update(k1, item({ tags: [70000] })),
      (e: unknown) =>
        e instanceof BpfError && isKind(e, Invalid) && /map "items"/.test(e.message) && /tags/.test(e.message),
    );
    assert.throws(
      () => items.update({ id: 3, shape: 'SHAPE_HEXAGON' }, item()),
      (e: unknown) => e instanceof BpfError && /map "items"/.test(e.message) && /SHAPE_HEXAGON/.test(e.message),
    );
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('update flags: noexist on an existing key throws EEXIST, exist on a missing key ENOENT', async () => {
  const before = kernelIds();
  const obj = openLoaded();
  try {
    const items = obj.map('items');
    const k = { id: 7, shape: 'SHAPE_CIRCLE' };
    items.update(k, item(), 'noexist');
    assert.throws(
      () => items.update(k, item({ delta: 1 }), 'noexist'),
      (e: unknown) => {
        assert.ok(e instanceof BpfError);
        assert.equal(e.code, 'EEXIST');
        assert.equal(e.errno, 17);
        assert.match(e.message, /^update map "items" of object "maps\.bpf": file exists \(EEXIST\)/);
        return true;
      },
    );
    assert.equal((items.lookup(k) as Item).delta, -128, 'the refused update changed nothing');
    items.update(k, item({ delta: 5 }), 'exist');
    assert.equal((items.lookup(k) as Item).delta, 5);
    assert.throws(
      () => items.update({ id: 8, shape: 'SHAPE_CIRCLE' }, item(), 'exist'),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /map "items"/.test(e.message),
    );
    assert.equal(items.lookup({ id: 8, shape: 'SHAPE_CIRCLE' }), undefined);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('per-CPU maps give one value per possible CPU', async () => {
  const before = kernelIds();
  const obj = openLoaded();
  try {
    const n = numPossibleCpus();
    assert.equal(n, possibleCpusFromSysfs());
    const counts = obj.map('pcpu_counts');
    assert.equal(counts.isPerCpu, true);
    assert.deepEqual(counts.lookup(0), new Array(n).fill(0n));
    const values = Array.from({ length: n }, (_, i) => BigInt(100 + i));
    counts.update(2, values);
    assert.deepEqual(counts.lookup(2), values);
    counts.update(3, 9n); // one value: every CPU gets it
    assert.deepEqual(counts.lookup(3), new Array(n).fill(9n));
    assert.throws(
      () => counts.update(1, [1n]),
      (e: unknown) =>
        e instanceof BpfError && /map "pcpu_counts"/.test(e.message) && new RegExp(`${n} elements`).test(e.message),
    );
    // the program increments the slot of the CPU it runs on: the sum over CPUs counts every run
    testRun(obj.program('bump'), { data: PACKET, repeat: 25 });
    const after = counts.lookup(0) as bigint[];
    assert.equal(after.length, n);
    assert.equal(
      after.reduce((a, b) => a + b, 0n),
      25n,
    );

    const points = obj.map('pcpu_points');
    assert.equal(points.type, 'percpu_hash');
    const pts = Array.from({ length: n }, (_, i) => ({ x: i, y: 10 - i }));
    points.update(5, pts);
    assert.deepEqual(points.lookup(5), pts);
    assert.deepEqual([...points.entries()], [[5, pts]]);
    assert.deepEqual(points.lookupBatch(), [[5, pts]]);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('lookupBatch, updateBatch and deleteBatch', async () => {
  const before = kernelIds();
  const obj = openLoaded();
  try {
    const m = obj.map('batch_map');
    const entries: [number, bigint][] = Array.from({ length: 100 }, (_, i) => [i * 3, BigInt(i) * 1_000_000_007n]);
    assert.equal(m.updateBatch(entries), 100);
    assert.equal(m.lookup(297), 99n * 1_000_000_007n);
    // small batches force several calls
    const read = (m.lookupBatch(16) as [number, bigint][]).sort((a, b) => a[0] - b[0]);
    assert.deepEqual(read, entries);
    assert.throws(
      () => m.updateBatch([[0, 1n]], 'noexist'),
      (e: unknown) => e instanceof BpfError && e.code === 'EEXIST' && /map "batch_map"/.test(e.message),
    );
    assert.equal(
      m.updateBatch(
        [
          [1000, 7n],
          [1001, 8n],
        ],
        'noexist',
      ),
      2,
    ); // with a flag: one update per entry
    assert.equal(m.deleteBatch([1000, 1001]), 2);
    const gone = entries.slice(0, 40).map(([k]) => k);
    assert.equal(m.deleteBatch(gone), 40);
    const rest = (m.lookupBatch() as [number, bigint][]).sort((a, b) => a[0] - b[0]);
    assert.deepEqual(rest, entries.slice(40));
    assert.equal(m.lookup(0), undefined);
    // typed keys and values go through batches too
    const items = obj.map('items');
    items.updateBatch([
      [{ id: 1, shape: 'SHAPE_CIRCLE' }, item()],
      [{ id: 2, shape: 'SHAPE_SQUARE' }, item({ label: 'two' })],
    ]);
    const got = (items.lookupBatch() as [ItemKey, Item][]).sort((a, b) => a[0].id - b[0].id);
    assert.deepEqual(got, [
      [{ id: 1, shape: 'SHAPE_CIRCLE' }, item()],
      [{ id: 2, shape: 'SHAPE_SQUARE' }, item({ label: 'two' })],
    ]);
    assert.equal(items.deleteBatch([{ id: 2, shape: 'SHAPE_SQUARE' }]), 1);
    assert.deepEqual([...items.keys()], [{ id: 1, shape: 'SHAPE_CIRCLE' }]);
    // an empty map
    assert.deepEqual(obj.map('shared').lookupBatch(), []);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('BpfMap.create, pin and fromPin share one kernel map', async (t) => {
  ensureBpffs();
  const before = kernelIds();
  const path = `${BPFFS}/${uniqueName('kbpf-map')}`;
  t.after(() => rmSync(path, { force: true }));
  const created = BpfMap.create({ type: 'hash', name: 'kbpf_created', keySize: 4, valueSize: 8, maxEntries: 8 });
  try {
    assert.equal(created.type, 'hash');
    assert.equal(created.name, 'kbpf_created');
    assert.equal(created.maxEntries, 8);
    assert.equal(created.btf, null); // no BTF: raw bytes
    created.update(1, 42n);
    created.pin(path);
    const reopened = BpfMap.fromPin(path);
    try {
      assert.equal(reopened.id, created.id);
      assert.equal(reopened.keySize, 4);
      const v = reopened.lookup(1) as Buffer;
      assert.ok(Buffer.isBuffer(v));
      assert.equal(v.readBigUInt64LE(0), 42n);
      reopened.update(2, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
      assert.deepEqual([...(created.lookup(2) as Buffer)], [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal([...created.keys()].length, 2);
    } finally {
      reopened.close();
    }
    rmSync(path);
  } finally {
    created.close();
  }
  assert.equal(existsSync(path), false);
  assert.throws(() => created.fd, BpfError);
  assert.deepEqual(await leftOfOurs(before, { maps: ['kbpf_created'] }), NOTHING);
});

test("reuseMap: a second object uses the first object's pinned map", async (t) => {
  ensureBpffs();
  const before = kernelIds();
  const path = `${BPFFS}/${uniqueName('kbpf-shared')}`;
  t.after(() => rmSync(path, { force: true }));
  const first = openLoaded('maps_first');
  let second: BpfObject | undefined;
  let pinned: BpfMap | undefined;
  try {
    first.map('shared').pin(path);
    first.map('shared').update(5, 55n);
    pinned = BpfMap.fromPin(path);
    second = BpfObject.open(OBJ, { name: 'maps_second' });
    second.reuseMap('shared', pinned);
    second.load();
    assert.equal(second.map('shared').id, first.map('shared').id);
    assert.notEqual(second.map('items').id, first.map('items').id, 'maps not reused stay separate');
    // written by the first object's handle, seen by the second
    assert.equal(second.map('shared').lookup(5), 55n);
    // written by the second object's program, seen by the first
    testRun(second.program('bump'), { data: PACKET, repeat: 3 });
    assert.equal(first.map('shared').lookup(1), 3n);
    testRun(first.program('bump'), { data: PACKET });
    assert.equal(second.map('shared').lookup(1), 4n);
    // the first object goes away; the map lives on in the second (and the pin)
    first.close();
    second.map('shared').update(6, 66n);
    assert.equal(pinned.lookup(6), 66n);
    assert.throws(() => second!.reuseMap('shared', pinned!), BpfError); // only before load
  } finally {
    second?.close();
    pinned?.close();
    first.close();
    rmSync(path, { force: true });
  }
  assert.deepEqual(await leftOfOurs(before, merge(oursOf(first), second ? oursOf(second) : {})), NOTHING);
});

test('queue: push and pop in FIFO order, undefined when empty, E2BIG when full', async () => {
  const before = kernelIds();
  const obj = openLoaded();
  try {
    const q = obj.map('points_queue');
    assert.equal(q.type, 'queue');
    assert.equal(q.keySize, 0);
    assert.equal(q.pop(), undefined);
    const pts = [
      { x: 1, y: 1 },
      { x: 2, y: -2 },
      { x: 3, y: 30 },
      { x: 4, y: 0 },
    ];
    for (const p of pts) q.push(p);
    assert.throws(
      () => q.push({ x: 5, y: 5 }),
      (e: unknown) => e instanceof BpfError && e.code === 'E2BIG' && /map "points_queue"/.test(e.message),
    );
    assert.deepEqual(q.lookup(), pts[0]); // peek
    assert.deepEqual([q.pop(), q.pop(), q.pop(), q.pop()], pts);
    assert.equal(q.pop(), undefined);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});
