// What a record queue reads from: one walker per kind of event buffer (a ring buffer's single
// ring, a perf buffer's per-CPU rings), each knowing its buffer's layout and nothing about
// iterators, waiting or back-pressure — that is the queue's (queue.ts).

/** What a queue counts of the records its source walked (the readers' `stats`). */
export class RecordCounts {
  /** Records delivered (decoded). */
  records = 0;
  /** Payload bytes of those records. */
  bytes = 0;
  /** Records read but not delivered because the codec threw on them. */
  drops = 0;
  /** Records the kernel reported lost in the stream itself (a perf buffer's PERF_RECORD_LOST). */
  lost = 0;
  /** Those lost records per CPU. */
  readonly lostPerCpu: Record<number, number> = {};

  /** Adds `count` records lost on `cpu`. */
  addLost(cpu: number, count: number): void {
    this.lost += count;
    this.lostPerCpu[cpu] = (this.lostPerCpu[cpu] ?? 0) + count;
  }
}

/** An event buffer, walked record by record on the JS thread. */
export interface RecordSource<T> {
  /** Names the buffer in messages: "ring buffer events". */
  readonly description: string;
  /** An fd that the shared poller watches: readable when the producer has written. */
  readonly fd: number;
  /**
   * Walks at most `max` records now, passing each decoded record to `deliver`; returns how many
   * it delivered. Counts what it walks into `counts`. If `deliver` throws, the walk stops, the
   * record it threw on counts as read, and the error propagates. If `deliver` closes the source,
   * the walk stops at once.
   */
  read(deliver: (record: T) => void, max: number, counts: RecordCounts): number;
  /** Whether the buffer holds something to walk now (from its mapped positions: no syscall). */
  ready(): boolean;
  /** Records lost that the source counts outside the stream (e.g. a ring's lost counter map). */
  lostOutside?(): number;
  /** Unmaps the buffer and closes its fds. Called once, by the queue's close(). */
  close(): void;
}
