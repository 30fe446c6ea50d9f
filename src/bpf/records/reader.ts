// What every event buffer reader offers its users, written once over the record queue: the
// ring buffer and perf buffer readers differ only in the walker they hand it (and a few
// kind-specific extras), so they extend this.
import { RecordQueue, type RecordQueueOptions } from './queue.js';
import type { RecordSource } from './source.js';

/** A queue over the source; the source is closed when the queue cannot be made. */
export function queueOver<T>(source: RecordSource<T>, opts: RecordQueueOptions): RecordQueue<T> {
  try {
    return new RecordQueue(source, opts);
  } catch (e) {
    source.close();
    throw e;
  }
}

export abstract class RecordReader<T> implements AsyncIterable<T> {
  readonly highWaterMark: number;
  readonly #decodeName: string;

  protected constructor(
    protected readonly queue: RecordQueue<T>,
    decodeName: string,
  ) {
    this.highWaterMark = queue.highWaterMark;
    this.#decodeName = decodeName;
  }

  /** What records decode with: 'raw', 'codec', or 'btf:<type name>'. */
  get decoding(): string {
    return this.#decodeName;
  }

  get closed(): boolean {
    return this.queue.closed;
  }

  /** Makes a waiting iterator keep the process alive (the default). */
  ref(): this {
    this.queue.ref();
    return this;
  }

  /** Lets the process exit while an iterator waits for records. */
  unref(): this {
    this.queue.unref();
    return this;
  }

  /**
   * Calls fn with each record there is now (at most max): records the queue already holds first,
   * then the buffer's; returns how many. If fn throws, the error propagates and the records after
   * it stay for the next call.
   */
  consume(fn: (record: T) => void, max = Infinity): number {
    return this.queue.consume(fn, max);
  }

  /** Everything available now (at most max records; the rest stays for the next call). */
  drain(max = Infinity): T[] {
    return this.queue.drain(max);
  }

  /**
   * Next record; waits (on the shared poller) when the buffer is empty; done after close().
   * The buffer is read synchronously at most once per turn of the event loop (up to
   * highWaterMark records), so a busy producer cannot starve timers and I/O of the process.
   */
  next(): Promise<IteratorResult<T>> {
    return this.queue.next();
  }

  /**
   * Resolves when there are records to read (drain / consume), or the reader is closed. It lets
   * the event loop turn once when records are there already, so a `readable()` + `consume()`
   * loop does not starve it.
   */
  readable(): Promise<void> {
    return this.queue.readable();
  }

  /** Iterates the records. Leaving the loop early (break, throw) closes the reader, as a stream does. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** Iterates batches (arrays of up to highWaterMark records): less overhead per record. */
  batches(): AsyncGenerator<T[]> {
    return this.queue.batches();
  }

  /** Stops reading, releases the buffer's mapping and ends pending iterations. */
  close(): void {
    this.queue.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
