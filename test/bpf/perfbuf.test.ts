// Perf buffer reader against the real kernel: an XDP program run with BPF_PROG_TEST_RUN writes
// numbered events to its CPU's perf buffer; the reader delivers them decoded from BTF and
// reports the kernel's lost count when a buffer overflows.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BpfError } from '../../src/bpf/errors.js';
import { BpfObject } from '../../src/bpf/object.js';
import { PerfBufferReader } from '../../src/bpf/perf/index.js';
import { closer, testPacket, testRun, testRunAsync } from './ringbuf-util.js';

const OBJ = fileURLToPath(new URL('./perfbuf.bpf.o', import.meta.url));
const COMM = 'kbpf-perfbuf';
const PACKET = testPacket(`${COMM}\0`);

interface PbEvent {
  seq: bigint;
  pid: number;
  comm: string;
  kind: string;
  pkt_len: number;
  cpu: number;
}

function open(): BpfObject {
  const obj = BpfObject.open(OBJ);
  try {
    return obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
}

function assertEvent(e: PbEvent, seq: number): void {
  assert.equal(e.seq, BigInt(seq));
  assert.equal(e.pid, process.pid);
  assert.equal(e.comm, COMM);
  assert.equal(e.kind, seq % 2 ? 'PB_B' : 'PB_A');
  assert.equal(e.pkt_len, 64);
}

test('a perf buffer delivers events decoded from BTF, in order, through the async iterator', {
  timeout: 30_000,
}, async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(new PerfBufferReader<PbEvent>(obj.map('pb'), { typeName: 'pb_event', pagesPerCpu: 64 }));
  assert.equal(reader.decoding, 'btf:pb_event');

  const N = 500;
  const it = reader[Symbol.asyncIterator]();
  const first = it.next(); // waiting on the shared poller before anything is written
  testRun(obj.program('emit_perf'), PACKET, N);
  const got: PbEvent[] = [(await first).value as PbEvent];
  while (got.length < N) {
    const r = await it.next();
    if (r.done) break;
    got.push(r.value);
  }
  got.forEach((e, i) => {
    assertEvent(e, i);
  });
  const s = reader.stats;
  assert.equal(s.records, N);
  assert.equal(s.lost, 0);
  assert.equal(s.drops, 0);
  assert.equal(s.buffered, 0);
  assert.ok(s.bytes >= N * 40);
});

test("an overrun perf buffer reports the kernel's lost count", async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(new PerfBufferReader<PbEvent>(obj.map('pb'), { typeName: 'pb_event', pagesPerCpu: 1 }));
  const prog = obj.program('emit_perf');
  const N = 1000;
  testRun(prog, PACKET, N); // one CPU's single page holds far fewer
  const first = reader.drain();
  assert.ok(first.length > 0 && first.length < N, `${first.length} of ${N} fit`);
  first.forEach((e, i) => {
    assertEvent(e, i);
  });
  // The kernel reports the loss with the next record it writes to that CPU's buffer; this thread
  // may have moved to another CPU since (and, on a busy machine, stay there), so write single
  // records until the report comes, sleeping now and then so that the scheduler may move it back.
  let flushes = 0;
  const later: PbEvent[] = [];
  while (reader.stats.lost === 0 && flushes < 5000) {
    testRun(prog, PACKET, 1);
    flushes++;
    later.push(...reader.drain());
    if (flushes % 50 === 0) await sleep(2);
  }
  assert.equal(later.length, flushes);
  later.forEach((e, i) => {
    assertEvent(e, N + i);
  });
  const s = reader.stats;
  assert.equal(s.lost, N - first.length, 'lost = what did not fit');
  assert.equal(s.records + s.lost, N + flushes);
  assert.equal(
    Object.values(s.lostPerCpu).reduce((a, b) => a + b, 0),
    s.lost,
  );
});

test('events written while the reader waits (producer on another thread) are in order; all are read or lost', {
  timeout: 30_000,
}, async (t) => {
  const use = closer(t);
  const obj = use(open());
  const reader = use(new PerfBufferReader<PbEvent>(obj.map('pb'), { typeName: 'pb_event', pagesPerCpu: 16 }));
  const N = 20_000;
  const got: PbEvent[] = [];
  const STOP = Symbol('stop');
  const stop = testRunAsync(obj.program('emit_perf'), PACKET, N).then(() => STOP);
  let pending = reader.next();
  for (;;) {
    const r = await Promise.race([pending, stop]);
    if (typeof r === 'symbol' || r.done) break;
    got.push(r.value);
    pending = reader.next();
  }
  // The producer is done: what is left is in the kernel buffers, or in `pending` if it resolved.
  const rest = reader.drain();
  reader.close();
  const last = await pending;
  if (!last.done) got.push(last.value);
  got.push(...rest);
  const s = reader.stats;
  assert.equal(s.records, got.length);
  assert.ok(s.records + s.lost <= N);
  // each CPU has its own buffer, and a long test run may migrate between CPUs between
  // repetitions: records are ordered per CPU, and none is delivered twice
  const prev = new Map<number, bigint>();
  for (const e of got) {
    const p = prev.get(e.cpu) ?? -1n;
    assert.ok(e.seq > p, `seq ${e.seq} after ${p} on CPU ${e.cpu}`);
    prev.set(e.cpu, e.seq);
  }
  assert.equal(new Set(got.map((e) => e.seq)).size, got.length, 'no record twice');
  got.sort((a, b) => (a.seq < b.seq ? -1 : 1));
  assertEvent(got[0]!, 0);
});

test('raw records, and clear errors', (t) => {
  const use = closer(t);
  const obj = use(open());
  assert.throws(
    () => new PerfBufferReader(obj.map('.bss')),
    (e: unknown) => e instanceof BpfError && /not a perf_event_array/.test(e.message),
  );
  assert.throws(() => new PerfBufferReader(obj.map('pb'), { pagesPerCpu: 3 }), /power of two/);
  assert.throws(() => new PerfBufferReader(obj.map('pb'), { typeName: 'nope' }), /no type "nope"/);
  const reader = use(new PerfBufferReader<Buffer>(obj.map('pb')));
  assert.equal(reader.decoding, 'raw');
  testRun(obj.program('emit_perf'), PACKET, 3);
  const recs = reader.drain();
  assert.equal(recs.length, 3);
  assert.deepEqual(
    recs.map((b) => b.readBigUInt64LE(0)),
    [0n, 1n, 2n],
  );
  assert.deepEqual(reader.drain(), []);
  // a callback that throws does not unwind through libbpf: the error comes back from consume()
  // and the records after it stay for the next call
  testRun(obj.program('emit_perf'), PACKET, 4);
  const seen: bigint[] = [];
  assert.throws(
    () =>
      reader.consume((b) => {
        seen.push(b.readBigUInt64LE(0));
        if (seen.length === 2) throw new Error('consumer failed');
      }),
    /consumer failed/,
  );
  assert.deepEqual(seen, [3n, 4n]);
  assert.deepEqual(
    reader.drain().map((b) => b.readBigUInt64LE(0)),
    [5n, 6n],
  );
  reader.close();
  assert.throws(() => reader.drain(), /closed/);
});
