// The record queue on its own (no kernel): fake record sources shaped like the two kinds of
// event buffer — a ring (lost records counted outside the stream) and per-CPU perf rings (lost
// records reported in the stream) — and a fake poller whose watches the test fires by hand.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { RecordQueue, type RecordWatcher } from '../../src/bpf/records/queue.js';
import type { RecordCounts, RecordSource } from '../../src/bpf/records/source.js';
import { Invalid, isKind } from '../../src/errors.js';

type Kind = 'ring' | 'perf';

class FakeSource implements RecordSource<number> {
  readonly description: string;
  readonly fd = 1000;
  /** records the "kernel" holds */
  held: number[] = [];
  reads = 0;
  failWith: Error | null = null;
  closed = false;
  outside = 0;
  /** perf: lost records to report in the stream with the next read, on CPU 1 */
  inStream = 0;

  constructor(readonly kind: Kind) {
    this.description = `${kind} buffer fake`;
  }

  write(n: number): void {
    const start = this.held.length ? this.held[this.held.length - 1]! + 1 : 0;
    for (let i = 0; i < n; i++) this.held.push(start + i);
  }

  read(deliver: (r: number) => void, max: number, counts: RecordCounts): number {
    this.reads++;
    if (this.failWith) throw this.failWith;
    if (this.inStream) {
      counts.addLost(1, this.inStream);
      this.inStream = 0;
    }
    let n = 0;
    while (n < max && this.held.length > 0) {
      const v = this.held.shift()!;
      n++;
      counts.records++;
      counts.bytes += 8;
      deliver(v);
      if (this.closed) break;
    }
    return n;
  }

  ready(): boolean {
    return this.held.length > 0;
  }

  lostOutside(): number {
    return this.kind === 'ring' ? this.outside : 0;
  }

  close(): void {
    this.closed = true;
  }
}

class FakeWatch {
  armed = false;
  closed = false;
  arms = 0;
  failArm: Error | null = null;
  constructor(readonly onReadable: () => void) {}
  arm(): void {
    if (this.failArm) throw this.failArm;
    this.armed = true;
    this.arms++;
  }
  close(): void {
    this.closed = true;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  /** The poller saw the fd readable. */
  fire(): void {
    assert.ok(this.armed, 'fired while not armed');
    this.armed = false;
    this.onReadable();
  }
}

function setup(kind: Kind, highWaterMark = 8) {
  const source = new FakeSource(kind);
  let watch!: FakeWatch;
  const poller: RecordWatcher = {
    watch: (_fd, onReadable) => {
      watch = new FakeWatch(onReadable);
      return watch as unknown as ReturnType<RecordWatcher['watch']>;
    },
  };
  const queue = new RecordQueue(source, { highWaterMark, poller });
  return { source, queue, watch };
}

const settled = async <T>(p: Promise<T>): Promise<{ value?: T; error?: unknown } | 'pending'> => {
  const PENDING = Symbol('pending');
  const r = await Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    turn(undefined, { ref: true }).then(() => PENDING),
  ]);
  return r === PENDING ? 'pending' : (r as { value?: T; error?: unknown });
};

for (const kind of ['ring', 'perf'] as const) {
  test(`back-pressure (${kind}): at most highWaterMark records leave the buffer; the rest wait in it`, async () => {
    const { source, queue } = setup(kind, 8);
    source.write(100);
    const first = await queue.next();
    assert.deepEqual(first, { value: 0, done: false });
    assert.equal(queue.buffered, 7);
    assert.equal(source.held.length, 92, 'only highWaterMark records were pulled');
    // a consumer that stops asking: nothing more leaves the buffer
    await turn();
    await turn();
    assert.equal(source.held.length, 92);
    // batches are at most highWaterMark records, in order, and nothing is read twice
    const got: number[] = [first.value as number];
    for await (const batch of queue.batches()) {
      assert.ok(batch.length <= 8, `batch of ${batch.length}`);
      assert.ok(queue.buffered <= 8);
      got.push(...batch);
      if (got.length === 100) break;
    }
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.equal(queue.counts.records, 100);
    assert.ok(queue.closed, 'leaving batches() closes the queue');
    assert.ok(source.closed);
  });

  test(`the iterator reads the buffer at most once per turn (${kind})`, async () => {
    const { source, queue } = setup(kind, 4);
    source.write(12);
    const r1 = queue.next();
    assert.equal(source.reads, 1);
    for (let i = 0; i < 3; i++) await queue.next();
    const pending = queue.next(); // the queue is empty, and it was filled this turn
    assert.equal(source.reads, 1);
    assert.deepEqual(await r1, { value: 0, done: false });
    assert.deepEqual(await pending, { value: 4, done: false }); // a turn later
    assert.equal(source.reads, 2);
    queue.close();
  });

  test(`lost records (${kind}): counted in the stream and outside it`, () => {
    const { source, queue } = setup(kind);
    source.write(3);
    source.inStream = kind === 'perf' ? 5 : 0;
    source.outside = 7;
    assert.deepEqual(queue.drain(), [0, 1, 2]);
    assert.equal(queue.lost, kind === 'perf' ? 5 : 7);
    assert.deepEqual(queue.counts.lostPerCpu, kind === 'perf' ? { 1: 5 } : {});
    assert.equal(queue.counts.records, 3);
    queue.close();
  });

  test(`close ends a pending iteration and a pending readable() (${kind})`, async () => {
    const { source, queue, watch } = setup(kind);
    const it = queue[Symbol.asyncIterator]();
    const pending = it.next();
    const readable = queue.readable();
    assert.ok(watch.armed, 'an empty buffer is waited for on the poller');
    assert.equal(await settled(pending), 'pending');
    queue.close();
    assert.deepEqual(await pending, { value: undefined, done: true });
    await readable;
    assert.ok(source.closed && watch.closed);
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    assert.throws(
      () => queue.drain(),
      (e: unknown) => isKind(e, Invalid) && /closed/.test((e as Error).message),
    );
    queue.close(); // twice is fine
  });

  test(`a failing read rejects every waiter (${kind}); the queue stays usable`, async () => {
    const { source, queue, watch } = setup(kind);
    const a = queue.next();
    const b = queue.next();
    const r = queue.readable();
    assert.ok(watch.armed);
    const boom = new Error('the buffer broke');
    source.failWith = boom;
    source.write(1);
    watch.fire();
    assert.deepEqual(await settled(a), { error: boom });
    assert.deepEqual(await settled(b), { error: boom });
    // readable() resolved first (records were there); it is not left hanging either way
    assert.notEqual(await settled(r), 'pending');
    // next() with a failing read rejects (it does not throw synchronously)
    await turn();
    let p!: Promise<IteratorResult<number>>;
    assert.doesNotThrow(() => {
      p = queue.next();
    });
    assert.deepEqual(await settled(p), { error: boom });
    source.failWith = null;
    await turn();
    assert.deepEqual(await queue.next(), { value: 0, done: false });
    queue.close();
  });

  test(`a poller that refuses to arm rejects every waiter (${kind})`, async () => {
    const { queue, watch } = setup(kind);
    const refused = new Error('epoll_ctl: bad file descriptor');
    watch.failArm = refused;
    const a = queue.next();
    const r = queue.readable();
    assert.deepEqual(await settled(a), { error: refused });
    assert.deepEqual(await settled(r), { error: refused });
    queue.close();
  });

  test(`a wake-up with nothing to read waits again (${kind})`, async () => {
    const { source, queue, watch } = setup(kind);
    const p = queue.next();
    watch.fire(); // spurious: nothing there
    assert.ok(watch.armed, 're-armed');
    assert.equal(await settled(p), 'pending');
    source.write(2);
    watch.fire();
    assert.deepEqual(await p, { value: 0, done: false });
    // readable() with records queued resolves a turn later, without the poller
    const arms = watch.arms;
    await queue.readable();
    assert.equal(queue.buffered, 1);
    assert.equal(watch.arms, arms);
    queue.close();
  });
}

test('a consumer that throws keeps the records after it for the next call', () => {
  const { source, queue } = setup('ring', 4);
  source.write(6);
  const seen: number[] = [];
  assert.throws(
    () =>
      queue.consume((v) => {
        seen.push(v);
        if (v === 1) throw new Error('consumer failed');
      }),
    /consumer failed/,
  );
  assert.deepEqual(seen, [0, 1]);
  assert.deepEqual(queue.drain(), [2, 3, 4, 5]);
  queue.close();
});

test('pollMs: a waiting consumer finds records the fd never announced at the next poll; no timer while nobody waits; close stops it', async () => {
  const source = new FakeSource('ring');
  let watch!: FakeWatch;
  const poller: RecordWatcher = {
    watch: (_fd, onReadable) => {
      watch = new FakeWatch(onReadable);
      return watch as unknown as ReturnType<RecordWatcher['watch']>;
    },
  };
  const queue = new RecordQueue(source, { poller, pollMs: 20 });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const waiting = queue.readable();
  assert.equal(watch.armed, true, 'the fd is watched too');
  source.write(3); // submitted without a wake-up: the watch never fires
  let found = false;
  await Promise.race([waiting.then(() => (found = true)), sleep(500)]);
  assert.ok(found, 'found by a poll within 500 ms');
  assert.deepEqual(queue.drain(), [0, 1, 2]);
  // nobody waits: a record written now stays in the buffer (no timer pulls it)
  source.write(1);
  await sleep(60);
  assert.equal(source.held.length, 1);
  assert.equal(queue.drain().length, 1);
  // a wait that the fd ends first still works, and close() ends a wait at once
  const second = queue.readable();
  source.write(1);
  watch.fire();
  await second;
  assert.equal(queue.drain().length, 1);
  const third = queue.readable();
  queue.close();
  await third;
  source.write(1);
  await sleep(60);
  assert.equal(source.held.length, 1, 'a closed queue does not poll');
});
