// The queue between an event buffer (a RecordSource: ring buffer or perf buffer walker) and its
// consumer: the async iterator, batches, waiting on the shared poller, back-pressure, the counts
// behind `stats`, and close. Both readers (RingBufferReader, PerfBufferReader) are a walker and
// one of these.
//
// Back-pressure: records are pulled from the buffer only when the consumer asks for them, at
// most `highWaterMark` at a time and only into an empty queue, so a slow consumer leaves them in
// the kernel's buffer — which fills, and the producer's writes fail (counted as lost) — instead
// of an unbounded queue in JavaScript.
//
// Fairness: the iterator pulls from the buffer synchronously at most once per turn of the event
// loop; past that, the next pull waits for setImmediate, so a busy producer cannot starve timers
// and I/O of the rest of the process.
//
// Waiting: a consumer that finds nothing waits on the process-wide poller (one-shot: the fd is
// armed only while someone waits). When the buffer holds records already (read up to the limit
// of this turn), the wait is a setImmediate instead. With `pollMs`, a wait also looks at the
// buffer every pollMs: for a producer that submits without waking its reader
// (BPF_RB_NO_WAKEUP) and wakes it only now and then, which saves it a wake-up per record.
//
// Failure: if reading the buffer fails, or arming the poller does, every pending next() and
// readable() is rejected with that error; the queue stays open (a later call may succeed).
import { InvalidError } from '../../errors.js';
import { poller as sharedPoller, type Watch, type WatchOptions } from '../poller.js';
import { RecordCounts, type RecordSource } from './source.js';

/** What the queue needs of the poller (the shared one by default; a fake in unit tests). */
export interface RecordWatcher {
  watch(fd: number, onReadable: () => void, opts: WatchOptions): Pick<Watch, 'arm' | 'close' | 'ref' | 'unref'>;
}

export interface RecordQueueOptions {
  /** Most records pulled from the buffer at a time, and the size of `batches()` (default 1024). */
  highWaterMark?: number;
  /** Whether a pending wait keeps the process alive (default true). */
  ref?: boolean;
  /**
   * While someone waits, look at the buffer every pollMs too (default: only when the fd says so).
   * For producers that submit without a wake-up (BPF_RB_NO_WAKEUP) most of the time.
   */
  pollMs?: number;
  /** @internal the poller to wait on (default: the process-wide one) */
  poller?: RecordWatcher;
}

interface Waiter<R> {
  resolve(r: R): void;
  reject(e: unknown): void;
}

const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true }) as IteratorResult<never>;

export class RecordQueue<T> implements AsyncIterable<T> {
  readonly source: RecordSource<T>;
  readonly highWaterMark: number;
  /** What the source walked: records, bytes, drops, in-stream lost records. */
  readonly counts = new RecordCounts();
  #items: T[] = [];
  #head = 0;
  #waiters: Waiter<IteratorResult<T>>[] = [];
  #readableWaiters: Waiter<void>[] = [];
  #pulledThisTurn = false;
  #immediate: NodeJS.Immediate | null = null;
  #watch: Pick<Watch, 'arm' | 'close' | 'ref' | 'unref'> | null;
  readonly #pollMs: number;
  #ref: boolean;
  #pollTimer: NodeJS.Timeout | null = null;
  #closed = false;

  /** Watches the source's fd; throws (leaving the source open) if the poller refuses it. */
  constructor(source: RecordSource<T>, opts: RecordQueueOptions = {}) {
    this.source = source;
    this.highWaterMark = Math.max(1, Math.floor(opts.highWaterMark ?? 1024));
    this.#pollMs = opts.pollMs !== undefined && opts.pollMs > 0 ? opts.pollMs : 0;
    this.#ref = opts.ref ?? true;
    this.#watch = (opts.poller ?? sharedPoller()).watch(source.fd, () => this.onReadable(), {
      ref: this.#ref,
      description: source.description,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Records pulled from the buffer and waiting in JavaScript for the consumer. */
  get buffered(): number {
    return this.#items.length - this.#head;
  }

  /** Records lost since the source was opened: reported in the stream, or counted outside it. */
  get lost(): number {
    return this.counts.lost + (this.source.lostOutside?.() ?? 0);
  }

  ref(): void {
    this.#ref = true;
    this.#watch?.ref();
    this.#pollTimer?.ref();
  }

  unref(): void {
    this.#ref = false;
    this.#watch?.unref();
    this.#pollTimer?.unref();
  }

  /** Throws the error of a closed reader when the queue is closed. */
  assertOpen(op: string): void {
    if (this.#closed) throw new InvalidError(`${op} ${this.source.description}: the reader is closed`);
  }

  /**
   * Calls fn with each record there is now (at most max), queued ones first, then the buffer's;
   * returns how many. If fn throws, the error propagates and the records after it stay (queued,
   * or in the buffer) for the next call.
   */
  consume(fn: (record: T) => void, max = Infinity): number {
    this.assertOpen('read');
    let n = 0;
    while (n < max && this.#head < this.#items.length) {
      n++;
      fn(this.shift());
    }
    if (n >= max || this.#closed) return n;
    return n + this.source.read(fn, max - n, this.counts);
  }

  /** The records there are now (at most max), synchronously. */
  drain(max = Infinity): T[] {
    const out: T[] = [];
    this.consume((r) => out.push(r), max);
    return out;
  }

  /** Next record; waits when there is none. Done after close(). */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#items.length) return Promise.resolve({ value: this.shift(), done: false });
    if (this.#closed) return Promise.resolve(DONE);
    if (this.#waiters.length === 0 && !this.#pulledThisTurn) {
      let n: number;
      try {
        n = this.fill();
      } catch (e) {
        return Promise.reject(e);
      }
      if (n > 0) return Promise.resolve({ value: this.shift(), done: false });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.wait();
    });
  }

  /**
   * Resolves when there are records to read (drain / consume), or the queue is closed. It always
   * lets the event loop turn once when records are there already, so
   * `for (;;) { await q.readable(); q.drain(n); }` does not starve it.
   */
  readable(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#readableWaiters.push({ resolve, reject });
      this.wait();
    });
  }

  /** Iterates the records. Leaving the loop early (break, throw) closes the queue, as a stream does. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const it: AsyncIterableIterator<T> = {
      next: () => this.next(),
      return: (value?: unknown) => {
        this.close();
        return Promise.resolve({ value: value as T, done: true });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Iterates batches (arrays of up to highWaterMark records): less overhead per record. Closes when left. */
  async *batches(): AsyncGenerator<T[]> {
    try {
      while (!this.#closed) {
        if (this.#head < this.#items.length) {
          yield this.take(this.highWaterMark);
          continue;
        }
        const r = await this.next();
        if (r.done) return;
        const batch = [r.value];
        if (this.#head < this.#items.length) {
          const rest = this.take(this.highWaterMark - 1);
          for (let i = 0; i < rest.length; i++) batch.push(rest[i]!);
        } else if (this.highWaterMark > 1) {
          this.source.read((v) => batch.push(v), this.highWaterMark - 1, this.counts);
        }
        yield batch;
      }
    } finally {
      this.close();
    }
  }

  /** Stops reading, closes the source (unmaps it) and ends pending iterations. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#items = [];
    this.#head = 0;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = null;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    const waiters = this.#waiters;
    const readable = this.#readableWaiters;
    this.#waiters = [];
    this.#readableWaiters = [];
    try {
      this.#watch?.close();
      this.#watch = null;
      this.source.close();
    } finally {
      for (const w of waiters) w.resolve(DONE);
      for (const w of readable) w.resolve();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Gets onReadable called: on the next turn when records are there, else by the poller. */
  private wait(): void {
    if (this.#head < this.#items.length || this.source.ready()) {
      if (!this.#immediate) this.#immediate = setImmediate(this.#onImmediate);
      return;
    }
    this.armWait();
  }

  /** Waits on the poller (and the poll timer, with pollMs) for the records to come. */
  private armWait(): void {
    try {
      this.#watch!.arm();
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.#pollMs && !this.#pollTimer) {
      this.#pollTimer = setTimeout(this.#onPoll, this.#pollMs);
      if (!this.#ref) this.#pollTimer.unref();
    }
  }

  readonly #onPoll = (): void => {
    this.#pollTimer = null;
    this.onReadable();
  };

  readonly #onImmediate = (): void => {
    this.#immediate = null;
    this.onReadable();
  };

  /** The fd was readable (polled) or a turn passed: serve the waiters, wait again for the rest. */
  private onReadable(): void {
    if (this.#closed) return;
    if (this.#readableWaiters.length > 0 && (this.#head < this.#items.length || this.source.ready())) {
      const ready = this.#readableWaiters;
      this.#readableWaiters = [];
      for (const w of ready) w.resolve();
    }
    try {
      while (this.#waiters.length > 0) {
        if (this.#head >= this.#items.length && this.fill() === 0) break;
        this.#waiters.shift()!.resolve({ value: this.shift(), done: false });
      }
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.#waiters.length > 0 || this.#readableWaiters.length > 0) this.armWait();
  }

  /** Rejects every pending next() and readable() with e. */
  private fail(e: unknown): void {
    const waiters = this.#waiters;
    const readable = this.#readableWaiters;
    this.#waiters = [];
    this.#readableWaiters = [];
    for (const w of waiters) w.reject(e);
    for (const w of readable) w.reject(e);
  }

  /** Pulls up to highWaterMark records into the (empty) queue. */
  private fill(): number {
    if (!this.#pulledThisTurn) {
      this.#pulledThisTurn = true;
      setImmediate(this.#endTurn);
    }
    this.#items.length = 0;
    this.#head = 0;
    return this.source.read(this.#push, this.highWaterMark, this.counts);
  }

  readonly #push = (r: T): void => {
    this.#items.push(r);
  };

  readonly #endTurn = (): void => {
    this.#pulledThisTurn = false;
  };

  /** Up to max queued records, in one array (the queue's own when it hands over all of them). */
  private take(max: number): T[] {
    const items = this.#items;
    const end = Math.min(items.length, this.#head + max);
    if (this.#head === 0 && end === items.length) {
      this.#items = [];
      return items;
    }
    const batch = items.slice(this.#head, end);
    if (end === items.length) {
      items.length = 0;
      this.#head = 0;
    } else {
      for (let i = this.#head; i < end; i++) items[i] = undefined as T;
      this.#head = end;
    }
    return batch;
  }

  private shift(): T {
    const v = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as T;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    }
    return v;
  }
}
