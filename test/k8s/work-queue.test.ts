// The work queue, with a fake clock: keys coalesce, one key is never reconciled twice at a time,
// failures back off per key, and a reconcile's requeue-after plans the next look.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Action, type Clock, WorkQueue } from '../../src/k8s/runtime/queue.js';

class FakeClock implements Clock {
  t = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #next = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers = this.#timers.filter((x) => x.id !== h);
  }
  /** Moves time on, firing due timers in order (and letting the queue run after each). */
  async advance(ms: number, q: WorkQueue<string>): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const due = this.#timers[0];
      if (!due || due.at > end) break;
      this.#timers.shift();
      this.t = due.at;
      due.fn();
      await q.idle();
    }
    this.t = end;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('work queue', () => {
  it('a key added many times is reconciled once', async () => {
    const runs: string[] = [];
    const q = new WorkQueue<string>({
      reconcile: async (k) => {
        runs.push(k);
        return undefined;
      },
      concurrency: 4,
    });
    for (const k of ['a', 'b', 'a', 'a', 'b']) q.add(k);
    q.start();
    await q.idle();
    assert.deepEqual(runs, ['a', 'b']);
  });

  it('never reconciles one key twice at a time; added while running, it runs once more after', async () => {
    const gate = deferred();
    let running = 0;
    let most = 0;
    const runs: string[] = [];
    const q = new WorkQueue<string>({
      reconcile: async (k) => {
        running++;
        most = Math.max(most, running);
        runs.push(k);
        if (runs.length === 1) await gate.promise;
        running--;
        return undefined;
      },
      concurrency: 4,
    });
    q.start();
    q.add('a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(q.size, { ready: 0, active: 1, scheduled: 0 });
    q.add('a');
    q.add('a');
    q.add('b'); // another key does not wait for it
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(runs, ['a', 'b']);
    gate.resolve();
    await q.idle();
    assert.deepEqual(runs, ['a', 'b', 'a']);
    assert.equal(most, 2); // a and b at once, never a twice
  });

  it('runs at most `concurrency` keys at once', async () => {
    const gate = deferred();
    let running = 0;
    let most = 0;
    const q = new WorkQueue<string>({
      reconcile: async () => {
        running++;
        most = Math.max(most, running);
        await gate.promise;
        running--;
        return undefined;
      },
      concurrency: 2,
    });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    q.start();
    await new Promise((r) => setImmediate(r));
    assert.equal(running, 2);
    gate.resolve();
    await q.idle();
    assert.equal(most, 2);
  });

  it('a failing key backs off, doubling per failure up to the maximum, without holding back other keys', async () => {
    const clock = new FakeClock();
    const calls: Record<string, number[]> = { a: [], b: [] };
    const errors: [string, number][] = [];
    let healthy = false;
    const q = new WorkQueue<string>({
      reconcile: async (k) => {
        calls[k]!.push(clock.now());
        if (k === 'a' && !healthy) throw new Error('registry down');
        return undefined;
      },
      onError: (k, _e, failures) => errors.push([k, failures]),
      backoff: { initialMs: 100, maxMs: 500 },
      clock,
    });
    q.add('a');
    q.add('b');
    q.start();
    await q.idle();
    await clock.advance(2000, q);
    assert.deepEqual(calls.a, [0, 100, 300, 700, 1200, 1700]);
    assert.deepEqual(calls.b, [0]);
    assert.deepEqual(
      errors.slice(0, 4).map(([, f]) => f),
      [1, 2, 3, 4],
    );
    assert.equal(q.failures('a'), 6);
    // success resets the count: the next failure waits the initial delay again
    healthy = true;
    await clock.advance(500, q);
    assert.equal(q.failures('a'), 0);
    healthy = false;
    q.add('a');
    await q.idle();
    assert.equal(q.scheduledAt('a'), clock.now() + 100);
  });

  it('a change does not wait out the backoff', async () => {
    const clock = new FakeClock();
    const calls: number[] = [];
    const q = new WorkQueue<string>({
      reconcile: async () => {
        calls.push(clock.now());
        throw new Error('no');
      },
      backoff: { initialMs: 1000 },
      clock,
    });
    q.start();
    q.add('a');
    await q.idle();
    await clock.advance(10, q);
    q.add('a');
    await q.idle();
    assert.deepEqual(calls, [0, 10]);
  });

  it('requeue-after plans the next reconcile; a sooner one wins, a later one does not move it', async () => {
    const clock = new FakeClock();
    const calls: number[] = [];
    let action: Action | undefined = { requeueAfterMs: 1000 };
    const q = new WorkQueue<string>({
      reconcile: async () => {
        calls.push(clock.now());
        return action;
      },
      clock,
    });
    q.start();
    q.add('a');
    await q.idle();
    assert.equal(q.scheduledAt('a'), 1000);
    q.addAfter('a', 5000);
    assert.equal(q.scheduledAt('a'), 1000);
    q.addAfter('a', 200);
    assert.equal(q.scheduledAt('a'), 200);
    action = undefined;
    await clock.advance(5000, q);
    assert.deepEqual(calls, [0, 200]);
    assert.equal(q.scheduledAt('a'), undefined);
    // add() runs now and drops what was planned
    q.addAfter('a', 300);
    q.add('a');
    await q.idle();
    assert.deepEqual(calls, [0, 200, 5000]);
    assert.equal(q.scheduledAt('a'), undefined);
  });

  it('keeps keys added before start for the workers; stop waits for the reconciles under way and drops the rest', async () => {
    const clock = new FakeClock();
    const gate = deferred();
    const runs: string[] = [];
    let finished = false;
    const q = new WorkQueue<string>({
      reconcile: async (k) => {
        runs.push(k);
        await gate.promise;
        finished = true;
        return { requeueAfterMs: 10 };
      },
      clock,
    });
    q.add('a');
    q.add('b');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(runs, []);
    q.start();
    await new Promise((r) => setImmediate(r));
    const stopped = q.stop();
    gate.resolve();
    await stopped;
    assert.equal(finished, true);
    await clock.advance(100, q);
    q.add('c');
    assert.deepEqual(runs, ['a']);
    assert.deepEqual(q.size, { ready: 0, active: 0, scheduled: 0 });
  });
});
