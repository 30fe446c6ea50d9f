// Ring buffer reader against the real kernel: XDP programs run with BPF_PROG_TEST_RUN emit
// numbered events; the reader must deliver them in order, decoded from BTF, and account for the
// ones a small ring could not take.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfError } from '../../src/bpf/errors.js';
import { BpfObject } from '../../src/bpf/object.js';
import { RingBufferReader } from '../../src/bpf/ringbuf/index.js';
import { closer, testPacket, testRun, testRunAsync } from './ringbuf-util.js';

const OBJ = fileURLToPath(new URL('./ringbuf.bpf.o', import.meta.url));
const COMM = 'kbpf-ringbuf';
const PACKET = testPacket(`${COMM}\0`);
const KINDS = ['RB_OPEN', 'RB_CLOSE', 'RB_EXEC'];

interface Event {
  seq: bigint;
  pid: number;
  comm: string;
  kind: string;
  neg: number;
  pkt_len: number;
  flags: number;
}

function open(globals?: Record<string, unknown>): BpfObject {
  const obj = BpfObject.open(OBJ);
  try {
    if (globals) obj.setGlobals(globals);
    return obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
}

function assertEvent(e: Event, seq: number): void {
  assert.equal(e.seq, BigInt(seq));
  assert.equal(e.pid, process.pid);
  assert.equal(e.comm, COMM);
  assert.equal(e.kind, KINDS[seq % 3]);
  assert.equal(e.neg, seq === 0 ? 0 : -seq);
  assert.equal(e.pkt_len, 64);
  assert.equal(e.flags, seq & 0xff);
}

async function take<T>(it: AsyncIterator<T>, n: number, timeoutMs = 10_000): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  const timer = setTimeout(() => {}, timeoutMs); // keeps the test alive; the reader's wait is ref'd too
  try {
    while (out.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${out.length} of ${n} events`);
      let t: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        it.next(),
        new Promise<never>((_, rej) => {
          t = setTimeout(() => rej(new Error(`timed out after ${out.length} of ${n} events`)), left);
        }),
      ]);
      clearTimeout(t);
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

test('a ring buffer delivers N events in order with their fields decoded from BTF', async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(
    new RingBufferReader<Event>(obj.map('events'), { typeName: 'event', lostCounter: obj.map('events_lost') }),
  );
  assert.equal(reader.decoding, 'btf:event');

  const N = 1000;
  testRun(obj.program('emit_event'), PACKET, N);
  assert.equal(reader.stats.pendingBytes, N * 48, 'each 40-byte event takes 48 bytes of ring with its header');

  const events = await take(reader[Symbol.asyncIterator](), N);
  assert.equal(events.length, N);
  events.forEach((e, i) => {
    assertEvent(e, i);
  });
  const s = reader.stats;
  assert.equal(s.records, N);
  assert.equal(s.bytes, N * 40);
  assert.equal(s.lost, 0);
  assert.equal(s.drops, 0);
  assert.equal(s.pendingBytes, 0);
  assert.equal(s.capacity, 1 << 20);
  assert.deepEqual(reader.drain(), [], 'nothing left');
});

test('events produced while the reader waits arrive in order (producer on another thread)', async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(
    new RingBufferReader<Event>(obj.map('events'), { typeName: 'event', lostCounter: obj.map('events_lost') }),
  );

  const it = reader[Symbol.asyncIterator]();
  const first = it.next(); // waits on the shared poller before anything is produced
  const N = 50_000;
  const run = testRunAsync(obj.program('emit_event'), PACKET, N);
  const got: Event[] = [(await first).value as Event];
  await run;
  // everything the producer wrote is either in the ring or counted lost
  const rest = reader.drain();
  got.push(...rest);
  const s = reader.stats;
  assert.equal(s.records + s.lost, N, `records ${s.records} + lost ${s.lost} = ${N}`);
  assert.equal(got.length, s.records);
  let prev = -1n;
  for (const e of got) {
    assert.ok(e.seq > prev, `seq ${e.seq} after ${prev}`);
    prev = e.seq;
  }
  assertEvent(got[0]!, 0);
  assertEvent(got.at(-1)!, Number(got.at(-1)!.seq));
});

test('a slow reader of a small ring: the producer counts its failed reservations as lost', {
  timeout: 60_000,
}, async (t) => {
  const use = closer(t);
  const obj = use(open());
  const HWM = 16;
  const reader = use(
    new RingBufferReader<Event>(obj.map('small'), {
      typeName: 'event',
      lostCounter: obj.map('small_lost'),
      highWaterMark: HWM,
    }),
  );

  const N = 20_000;
  const it = reader[Symbol.asyncIterator]();
  const got: Event[] = [];
  let maxPending = 0;
  let maxBuffered = 0;
  const run = testRunAsync(obj.program('emit_small'), PACKET, N);
  // A consumer slower than the producer (1 ms per event). Every event is either read or counted
  // lost, so once the producer is done the two add up to N.
  while (got.length + reader.stats.lost < N) {
    const r = await it.next();
    if (r.done) break;
    got.push(r.value);
    const s = reader.stats;
    maxPending = Math.max(maxPending, s.pendingBytes);
    maxBuffered = Math.max(maxBuffered, s.buffered);
    await new Promise((r) => setTimeout(r, 1));
  }
  await run;
  const s = reader.stats;
  assert.ok(s.lost > 0, 'lost records are reported');
  assert.equal(s.records + s.lost, N, `records ${s.records} + lost ${s.lost} = ${N}`);
  assert.equal(got.length, s.records);
  assert.ok(got.length < N);
  assert.ok(maxBuffered <= HWM, `at most highWaterMark (${HWM}) events wait in JS, saw ${maxBuffered}`);
  assert.ok(maxPending > 0, 'back-pressure is visible as pending bytes');
  assert.ok(maxPending <= s.capacity);
  let prev = -1n;
  for (const e of got) {
    assert.ok(e.seq > prev, `seq ${e.seq} after ${prev}`);
    prev = e.seq;
  }
  assertEvent(got[0]!, 0);
});

test('a burst larger than the ring: what fits is delivered, the rest is lost', (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(
    new RingBufferReader<Event>(obj.map('small'), { typeName: 'event', lostCounter: obj.map('small_lost') }),
  );
  const N = 1000;
  testRun(obj.program('emit_small'), PACKET, N);
  const fits = Math.floor(4096 / 48);
  assert.equal(reader.stats.pendingBytes, fits * 48);
  const events = reader.drain();
  assert.equal(events.length, fits);
  events.forEach((e, i) => {
    assertEvent(e, i);
  });
  assert.equal(reader.stats.lost, N - fits);
  // the ring has room again
  testRun(obj.program('emit_small'), PACKET, 1);
  const [next] = reader.drain();
  assertEvent(next!, N);
});

test('discarded records are skipped and counted', (t) => {
  const use = closer(t);
  const obj = use(open({ discard_every: 4 }));
  const reader = use(new RingBufferReader<Event>(obj.map('events'), { typeName: 'event' }));
  const N = 100;
  testRun(obj.program('emit_event'), PACKET, N);
  const seqs = reader.drain().map((e) => Number(e.seq));
  assert.deepEqual(
    seqs,
    Array.from({ length: N }, (_, i) => i).filter((i) => i % 4 !== 0),
  );
  assert.equal(reader.stats.discarded, N / 4);
  assert.equal(reader.stats.records, N - N / 4);
});

test('drain(max), raw records, consumeRaw and batches', async (t) => {
  const use = closer(t);
  const obj = use(open());
  const raw = use(new RingBufferReader<Buffer>(obj.map('events'), { decode: 'raw' }));
  assert.equal(raw.decoding, 'raw');
  testRun(obj.program('emit_event'), PACKET, 10);
  const firstThree = raw.drain(3);
  assert.equal(firstThree.length, 3);
  for (const [i, b] of firstThree.entries()) {
    assert.ok(Buffer.isBuffer(b));
    assert.equal(b.length, 40);
    assert.equal(b.readBigUInt64LE(0), BigInt(i));
    assert.equal(b.subarray(12, 12 + COMM.length).toString('latin1'), COMM);
  }
  const seqs: bigint[] = [];
  assert.equal(
    raw.consumeRaw((view, off, len) => {
      assert.equal(len, 40);
      seqs.push(view.getBigUint64(off, true));
    }, 4),
    4,
  );
  assert.deepEqual(seqs, [3n, 4n, 5n, 6n]);
  const batches: Buffer[][] = [];
  for await (const batch of raw.batches()) {
    batches.push(batch);
    break;
  }
  assert.deepEqual(
    batches.map((b) => b.map((r) => Number(r.readBigUInt64LE(0)))),
    [[7, 8, 9]],
  );
  assert.ok(raw.closed, 'leaving the loop closes the reader');
  assert.throws(() => raw.drain(), /closed/);
});

test('explicit codecs, and clear errors for wrong maps and unknown types', (t) => {
  const use = closer(t);
  const obj = use(open());
  assert.throws(
    () => new RingBufferReader(obj.map('events_lost')),
    (e: unknown) => e instanceof BpfError && /not a ringbuf/.test(e.message),
  );
  assert.throws(
    () => new RingBufferReader(obj.map('events'), { typeName: 'no_such_struct' }),
    /no type "no_such_struct"/,
  );
  assert.throws(() => new RingBufferReader(obj.map('events'), { decode: 'btf' }), /record type is unknown/);
  const seqOnly = {
    size: 8,
    decode: (b: Uint8Array, o = 0) => new DataView(b.buffer, b.byteOffset).getBigUint64(o, true),
    encode: () => new Uint8Array(8),
  };
  const reader = use(new RingBufferReader<bigint>(obj.map('events'), { decode: seqOnly }));
  testRun(obj.program('emit_event'), PACKET, 3);
  assert.deepEqual(reader.drain(), [0n, 1n, 2n]);
  // a record the codec throws on is dropped and counted, the others still arrive
  const picky = use(
    new RingBufferReader<bigint>(obj.map('small'), {
      decode: {
        ...seqOnly,
        decode: (b: Uint8Array, o = 0) => {
          const seq = seqOnly.decode(b, o);
          if (seq % 2n === 1n) throw new Error('odd');
          return seq;
        },
      },
    }),
  );
  testRun(obj.program('emit_small'), PACKET, 5);
  assert.deepEqual(picky.drain(), [0n, 2n, 4n]);
  assert.equal(picky.stats.drops, 2);
  assert.equal(picky.stats.records, 3);
});

test('close() ends a pending iteration', async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(new RingBufferReader<Event>(obj.map('events'), { typeName: 'event' }));
  const pending = reader.next();
  setTimeout(() => reader.close(), 20);
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.deepEqual(await reader.next(), { value: undefined, done: true });
});

test('closing the readers and the object leaves nothing of the test in the kernel', async (t) => {
  const base = mapFdsAndMappings();
  const use = closer(t);
  const obj = use(open());
  const ids = {
    maps: [obj.map('events').id, obj.map('small').id, obj.map('events_lost').id],
    prog: obj.program('emit_event').id,
  };
  const before = mapFdsAndMappings();
  const a = use(
    new RingBufferReader<Event>(obj.map('events'), { typeName: 'event', lostCounter: obj.map('events_lost') }),
  );
  const b = use(new RingBufferReader<Event>(obj.map('small'), { typeName: 'event' }));
  const waiting = a.next();
  testRun(obj.program('emit_event'), PACKET, 5);
  assertEvent((await waiting).value!, 0);
  // the object first: the readers hold the ring mapped (and their own fd) until they close
  obj.close();
  assert.equal(a.drain().length, 4, 'a reader keeps working on its mapping after its object closed');
  assert.ok(mapFdsAndMappings().mappings > before.mappings);
  a.close();
  b.close();
  const after = mapFdsAndMappings();
  assert.deepEqual(after, base, 'the readers unmapped their rings and closed their fds (and the object its own)');
  const exists = (kind: string, id: number) => spawnSync('bpftool', [kind, 'show', 'id', String(id)]).status === 0;
  const deadline = Date.now() + 5000;
  while ((ids.maps.some((id) => exists('map', id)) || exists('prog', ids.prog)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const id of ids.maps) assert.ok(!exists('map', id), `map ${id} is gone`);
  assert.ok(!exists('prog', ids.prog), `program ${ids.prog} is gone`);
});

/** This process's fds and memory mappings of BPF maps (ring buffers are mmapped). */
function mapFdsAndMappings(): { fds: number; mappings: number } {
  let fds = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:bpf-map') fds++;
    } catch {
      // closed meanwhile (the fd readdir itself used)
    }
  }
  const mappings = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('anon_inode:bpf-map')).length;
  return { fds, mappings };
}
