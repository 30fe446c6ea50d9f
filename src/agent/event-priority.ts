// The CPU priority of the agent's main thread while it moves events from rings into logs.
//
// On a busy node the agent's reading of a high-rate ring (flow-monitor's reports: tens of
// thousands a second) competes with the workloads that make the events: each turn preempts a
// client or a server, and on a node whose CPUs they keep busy the other end waits too. So while
// rings carry records and have room, the main thread runs SCHED_IDLE: it uses CPU time the
// workloads leave, and any workload thread that wakes takes the CPU at once. It takes its normal
// share again (SCHED_OTHER) when a ring backs up (a quarter full: the reader is falling behind,
// records would be lost next), until the rings are nearly drained, and whenever events go quiet
// (so API requests and plans of a quiet agent never wait behind the workloads).
//
// One thread's policy (sched_setscheduler on the calling thread): V8's helper threads and libuv's
// threadpool keep theirs. Turned off with `kbpf agent --events-priority normal`; where the
// process may not switch back (no CAP_SYS_NICE), it never switches.
import { libc } from '../bpf/ffi/libc.js';

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
/** a ring this full makes the thread take its normal share until it is drained */
export const BOOST_FILL = 1 / 4;
/** ... below this fill */
export const RESUME_FILL = 1 / 16;
/** events quiet this long: back to normal */
export const QUIET_MS = 1000;

export type EventsPriority = 'idle' | 'normal';

export class EventPriority {
  #mode: EventsPriority;
  #idle = false;
  /** the rings read at the normal share until drained below RESUME_FILL */
  readonly #backedUp = new Set<object>();
  #lastBusy = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #param = new Int32Array(1);
  /** switches made (both ways), for tests */
  switches = 0;

  constructor(mode: EventsPriority = 'idle') {
    this.#mode = allowed(mode);
  }

  get mode(): EventsPriority {
    return this.#mode;
  }

  /** Whether the main thread runs SCHED_IDLE now. */
  get idle(): boolean {
    return this.#idle;
  }

  set mode(mode: EventsPriority) {
    this.#mode = allowed(mode);
    if (this.#mode === 'normal') this.normal();
  }

  /** After a batch of `ring`: `read` records taken, `fill` what it still holds (0..1). */
  afterBatch(ring: object, read: number, fill: number): void {
    if (this.#mode === 'normal') return;
    if (read > 0) this.#lastBusy = Date.now();
    if (fill >= BOOST_FILL) this.#backedUp.add(ring);
    else if (fill < RESUME_FILL) this.#backedUp.delete(ring);
    if (this.#backedUp.size > 0) this.normal();
    else if (read > 0) this.toIdle();
  }

  /** `ring` is no longer read (its stream closed). */
  forget(ring: object): void {
    this.#backedUp.delete(ring);
  }

  /** Back to the normal share now (the agent stops, the events stop). */
  normal(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (!this.#idle) return;
    this.#idle = false;
    this.set(SCHED_OTHER);
  }

  private toIdle(): void {
    if (this.#idle || !this.set(SCHED_IDLE)) return;
    this.#idle = true;
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastBusy >= QUIET_MS) this.normal();
    }, QUIET_MS / 2);
    this.#timer.unref();
  }

  /** Whether the calling thread's policy is now `policy`. */
  private set(policy: number): boolean {
    this.switches++;
    return libc.schedSetscheduler(0, policy, this.#param) === 0;
  }
}

/** The calling thread's policy (SCHED_OTHER 0, SCHED_IDLE 5, ...). */
export function threadPolicy(): number {
  return libc.schedGetscheduler(0);
}

/** `mode`, or normal where this process could not switch back from idle. */
function allowed(mode: EventsPriority): EventsPriority {
  return mode === 'idle' && canSwitchBack() ? 'idle' : 'normal';
}

let checked: boolean | undefined;
/** Whether this process may go back to SCHED_OTHER after SCHED_IDLE (tried once, at once). */
function canSwitchBack(): boolean {
  if (checked !== undefined) return checked;
  const param = new Int32Array(1);
  checked = libc.schedSetscheduler(0, SCHED_IDLE, param) === 0 && libc.schedSetscheduler(0, SCHED_OTHER, param) === 0;
  return checked;
}

let shared: EventPriority | undefined;
/** The process's one EventPriority (its main thread's): normal until the agent sets it (runAgent). */
export function eventPriority(): EventPriority {
  shared ??= new EventPriority('normal');
  return shared;
}
