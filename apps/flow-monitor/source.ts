// FlowSource over the agent's API: follows the logs of the instances that produce flows
// (flow-monitor's reports, and any other input that turns its events into flows — netpol's drops)
// and keeps the most recent flows in memory. `kbpf flows`, the metrics exporter and the web view
// all read flows through it. MergedFlowSource joins several (one per node in a cluster).
import type { LogRecord } from '../../src/agent/log-store.js';
import type { Collector, FlowReport } from './collector.js';
import type { Flow, FlowSource } from './flow.js';

/** What reads an instance's log: the agent's ApiClient, or the agent itself in its own process. */
export interface LogReader {
  logs(name: string, query: { follow?: boolean; tail?: number }, signal?: AbortSignal): AsyncIterable<LogRecord>;
  /** the same in batches (used when there: a busy stream costs less per record) */
  logBatches?(
    name: string,
    query: { follow?: boolean; tail?: number },
    signal?: AbortSignal,
  ): AsyncIterable<LogRecord[]>;
}

/** An instance whose log records become flows. */
export interface FlowInput {
  instance: string;
  /** a log record -> its flow (null: a record that is no flow, e.g. a printk line) */
  convert(record: LogRecord): Flow | null;
}

/** flow-monitor's reports, through the collector. */
export function flowMonitorInput(instance: string, collector: Collector): FlowInput {
  return {
    instance,
    convert: (rec) => {
      if (rec.source !== 'flow_events') return null;
      return collector.flowOf(rec.event as FlowReport, rec.ts);
    },
  };
}

/** A bounded queue from a producer to one async consumer; what does not fit is counted as lost. */
class FlowQueue {
  items: Flow[] = [];
  head = 0;
  lost = 0;
  wake: (() => void) | null = null;
  constructor(readonly limit: number) {}
  push(f: Flow): void {
    if (this.items.length - this.head >= this.limit) {
      this.lost++;
      return;
    }
    this.items.push(f);
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  pushAll(flows: readonly Flow[]): void {
    const room = Math.max(0, this.limit - (this.items.length - this.head));
    const n = Math.min(room, flows.length);
    for (let i = 0; i < n; i++) this.items.push(flows[i]!);
    this.lost += flows.length - n;
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  /** Everything queued, as one array per wake-up (a busy follower pays no promise per flow). */
  async *drainBatches(signal: AbortSignal): AsyncGenerator<Flow[], void, undefined> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (this.head < this.items.length) {
          const batch = this.head === 0 ? this.items : this.items.slice(this.head);
          this.items = [];
          this.head = 0;
          yield batch;
          continue;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
  async *drain(signal: AbortSignal): AsyncGenerator<Flow, void, undefined> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (this.head < this.items.length) {
          const f = this.items[this.head++]!;
          if (this.head > 4096 && this.head * 2 > this.items.length) {
            this.items.splice(0, this.head);
            this.head = 0;
          }
          yield f;
          continue;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

export interface AgentFlowSourceOptions {
  /** flows kept for recent() (default 10,000) */
  capacity?: number;
  /** flows a follower may fall behind before they are counted lost (default 1,000,000) */
  followLimit?: number;
  /** history read when it starts (default: capacity) */
  history?: number;
}

export class AgentFlowSource implements FlowSource {
  readonly #ring: Flow[] = [];
  #ringHead = 0;
  readonly #capacity: number;
  readonly #followers = new Set<FlowQueue>();
  readonly #ac = new AbortController();
  readonly #done: Promise<void>[] = [];
  /** flows seen, and flows followers lost because they fell too far behind */
  received = 0;
  lost = 0;
  /** the last error of an input's stream, if one ended with an error */
  error: Error | null = null;

  constructor(
    readonly reader: LogReader,
    readonly inputs: FlowInput[],
    readonly opts: AgentFlowSourceOptions = {},
  ) {
    this.#capacity = Math.max(1, opts.capacity ?? 10_000);
  }

  /** Starts following every input (their last `history` records first). */
  start(): this {
    for (const input of this.inputs) this.#done.push(this.pump(input));
    return this;
  }

  private async pump(input: FlowInput): Promise<void> {
    try {
      const tail = this.opts.history ?? this.#capacity;
      const query = { follow: true, tail };
      if (this.reader.logBatches) {
        for await (const batch of this.reader.logBatches(input.instance, query, this.#ac.signal)) {
          const flows: Flow[] = [];
          for (const rec of batch) {
            const f = input.convert(rec);
            if (f) flows.push(f);
          }
          this.addAll(flows);
        }
      } else {
        for await (const rec of this.reader.logs(input.instance, query, this.#ac.signal)) {
          const f = input.convert(rec);
          if (f) this.add(f);
        }
      }
    } catch (e) {
      if (!this.#ac.signal.aborted) this.error = e as Error;
    }
  }

  /** Adds a flow made elsewhere (a test's, or an input in this process). */
  add(f: Flow): void {
    this.keep(f);
    for (const q of this.#followers) q.push(f);
  }

  /** Adds flows, waking each follower once. */
  addAll(flows: readonly Flow[]): void {
    if (flows.length === 0) return;
    for (const f of flows) this.keep(f);
    for (const q of this.#followers) q.pushAll(flows);
  }

  private keep(f: Flow): void {
    this.received++;
    if (this.#ring.length < this.#capacity) this.#ring.push(f);
    else {
      this.#ring[this.#ringHead] = f;
      this.#ringHead = (this.#ringHead + 1) % this.#capacity;
    }
  }

  recent(last: number): Flow[] {
    const all =
      this.#ring.length < this.#capacity
        ? this.#ring
        : [...this.#ring.slice(this.#ringHead), ...this.#ring.slice(0, this.#ringHead)];
    return last >= all.length ? [...all] : all.slice(all.length - Math.max(0, last));
  }

  follow(signal: AbortSignal): AsyncIterable<Flow> {
    const q = this.follower();
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* q.queue.drain(signal);
        } finally {
          q.remove();
        }
      },
    };
  }

  /** follow(), the flows that arrived together as one array (cheaper per flow for a busy stream). */
  followBatches(signal: AbortSignal): AsyncIterable<Flow[]> {
    const q = this.follower();
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* q.queue.drainBatches(signal);
        } finally {
          q.remove();
        }
      },
    };
  }

  private follower(): { queue: FlowQueue; remove: () => void } {
    const queue = new FlowQueue(this.opts.followLimit ?? 1_000_000);
    this.#followers.add(queue);
    return {
      queue,
      remove: () => {
        this.lost += queue.lost;
        this.#followers.delete(queue);
      },
    };
  }

  /** Resolves when every input's stream has ended (instances removed, agent gone, or close()). */
  async ended(): Promise<void> {
    await Promise.all(this.#done);
  }

  async close(): Promise<void> {
    this.#ac.abort();
    await Promise.all(this.#done);
  }
}

/** Several sources as one (a cluster's nodes): recent() merged by time, follow() interleaved. */
export class MergedFlowSource implements FlowSource {
  constructor(readonly sources: FlowSource[]) {}

  recent(last: number): Flow[] {
    const all = this.sources.flatMap((s) => s.recent(last));
    all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    return all.slice(Math.max(0, all.length - last));
  }

  follow(signal: AbortSignal): AsyncIterable<Flow> {
    const sources = this.sources;
    return {
      async *[Symbol.asyncIterator]() {
        const q = new FlowQueue(1_000_000);
        const pumps = sources.map(async (s) => {
          for await (const f of s.follow(signal)) q.push(f);
        });
        try {
          yield* q.drain(signal);
        } finally {
          await Promise.allSettled(pumps);
        }
      },
    };
  }
}
