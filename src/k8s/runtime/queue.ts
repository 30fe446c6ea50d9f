// A work queue of object keys, and the workers that reconcile them.
//
// - A key queued twice is reconciled once (events for one object coalesce).
// - One key is never reconciled twice at a time: a key added while its reconcile runs is run
//   again once after it (with the newest state), not alongside it.
// - A reconcile answers when to look again (`requeueAfterMs`); a failed one is retried after a
//   per-key backoff that doubles with each failure in a row and resets on success. A new event
//   for the key does not wait for the backoff (the state it failed on has changed).
// - At most `concurrency` different keys are reconciled at once.

export interface Action {
  /** reconcile this key again after this long, even if nothing changes */
  requeueAfterMs?: number;
}

/** Time, for the queue's delays (tests give a fake one). */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface WorkQueueOptions<K> {
  reconcile: (key: K) => Promise<Action | undefined>;
  /** a reconcile failed (`failures` in a row for this key); it is retried after the backoff */
  onError?: (key: K, err: unknown, failures: number) => void;
  /** keys reconciled at once (default 1) */
  concurrency?: number;
  /** retry delay after failures: initialMs, doubling up to maxMs (default 200 ms .. 30 s) */
  backoff?: { initialMs?: number; maxMs?: number };
  clock?: Clock;
}

export class WorkQueue<K> {
  /** keys waiting for a worker, in order (a Set: each once) */
  readonly #ready = new Set<K>();
  readonly #active = new Map<K, Promise<void>>();
  /** keys added while being reconciled: run again after */
  readonly #dirty = new Set<K>();
  readonly #scheduled = new Map<K, { at: number; handle: unknown }>();
  readonly #failures = new Map<K, number>();
  readonly #idle = new Set<() => void>();
  readonly #clock: Clock;
  readonly #concurrency: number;
  #running = false;
  #stopped = false;

  constructor(readonly opts: WorkQueueOptions<K>) {
    this.#clock = opts.clock ?? systemClock;
    this.#concurrency = Math.max(1, opts.concurrency ?? 1);
  }

  /** Reconciles `key` as soon as a worker is free (once, however often it is added). */
  add(key: K): void {
    if (this.#stopped) return;
    this.cancelScheduled(key);
    if (this.#active.has(key)) this.#dirty.add(key);
    else this.#ready.add(key);
    this.pump();
  }

  /** Reconciles `key` after `ms` (a sooner reconcile already planned stays planned). */
  addAfter(key: K, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    if (this.#ready.has(key) || this.#dirty.has(key)) return;
    const at = this.#clock.now() + ms;
    const cur = this.#scheduled.get(key);
    if (cur && cur.at <= at) return;
    this.cancelScheduled(key);
    const handle = this.#clock.setTimeout(() => {
      this.#scheduled.delete(key);
      this.add(key);
    }, ms);
    this.#scheduled.set(key, { at, handle });
  }

  /** Starts the workers (keys added before are kept for them). */
  start(): void {
    if (this.#stopped) return;
    this.#running = true;
    this.pump();
  }

  /** Drops what is queued and planned; resolves once the reconciles under way have ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready.clear();
    this.#dirty.clear();
    for (const key of [...this.#scheduled.keys()]) this.cancelScheduled(key);
    await Promise.all(this.#active.values());
  }

  /** Keys queued, being reconciled or planned for later. */
  get size(): { ready: number; active: number; scheduled: number } {
    return { ready: this.#ready.size, active: this.#active.size, scheduled: this.#scheduled.size };
  }

  /** Failures in a row of a key (0: its last reconcile succeeded). */
  failures(key: K): number {
    return this.#failures.get(key) ?? 0;
  }

  /** When `key` is planned to be reconciled again (clock time), if it is. */
  scheduledAt(key: K): number | undefined {
    return this.#scheduled.get(key)?.at;
  }

  /** Resolves when nothing is queued or running (planned keys may remain). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.#idle.add(r));
  }

  private isIdle(): boolean {
    return this.#active.size === 0 && (this.#ready.size === 0 || !this.#running);
  }

  private cancelScheduled(key: K): void {
    const cur = this.#scheduled.get(key);
    if (!cur) return;
    this.#clock.clearTimeout(cur.handle);
    this.#scheduled.delete(key);
  }

  private pump(): void {
    while (this.#running && !this.#stopped && this.#active.size < this.#concurrency && this.#ready.size > 0) {
      const key = this.#ready.values().next().value as K;
      this.#ready.delete(key);
      this.#active.set(key, this.run(key));
    }
    if (this.isIdle()) {
      const waiting = [...this.#idle];
      this.#idle.clear();
      for (const r of waiting) r();
    }
  }

  private async run(key: K): Promise<void> {
    // let add() return (and set #active) before the reconcile starts
    await Promise.resolve();
    let retryAfter: number | undefined;
    try {
      const action = await this.opts.reconcile(key);
      this.#failures.delete(key);
      retryAfter = action?.requeueAfterMs;
    } catch (e) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const initial = this.opts.backoff?.initialMs ?? 200;
      const max = this.opts.backoff?.maxMs ?? 30_000;
      retryAfter = Math.min(initial * 2 ** (failures - 1), max);
      try {
        this.opts.onError?.(key, e, failures);
      } catch {
        /* a reporter's failure is not the reconcile's */
      }
    }
    this.#active.delete(key);
    if (this.#stopped) {
      this.pump();
      return;
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (retryAfter !== undefined) this.addAfter(key, retryAfter);
    this.pump();
  }
}
