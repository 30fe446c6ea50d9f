// The CPU priority of the agent's threads while it moves events from rings into logs.
//
// On a busy node the agent's reading of a high-rate ring (flow-monitor's reports: tens of
// thousands a second) competes with the workloads that make the events: each turn preempts a
// client or a server, and on a node whose CPUs they keep busy the other end waits too. So while
// rings carry records and have room, the process runs SCHED_IDLE: it uses CPU time the
// workloads leave, and any workload thread that wakes takes the CPU at once. It takes its normal
// share again (SCHED_OTHER) when a ring backs up (a quarter full: the reader is falling behind,
// records would be lost next), until the rings are nearly drained, and whenever events go quiet
// (so API requests and plans of a quiet agent never wait behind the workloads). An API request,
// once read, holds the normal share until it is answered (hold()), so a request of many turns (a
// run, an upgrade) does not wait behind the workloads at each of them; a followed log stream lets
// go once its headers are out, as it is a reader of the rings' records itself.
//
// Every thread of the process switches together (sched_setscheduler on each task in
// /proc/self/task): the work of turning records into lines is the main thread's, but V8's helper
// threads collect and compile what it leaves (its garbage, its hot code), and at the normal share
// they preempt the workloads as the main thread did. Threads started while the process is idle
// inherit the policy of the thread that starts them, and the next switch takes them all. Turned
// off with `kbpf agent --events-priority normal`; where the process may not switch back (no
// CAP_SYS_NICE), it never switches.
import { readdirSync } from 'node:fs';
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
  /** requests being answered: the normal share until they are */
  #holds = 0;
  readonly #param = new Int32Array(1);
  /** switches made (both ways), for tests */
  switches = 0;

  constructor(mode: EventsPriority = 'idle') {
    this.#mode = allowed(mode);
  }

  get mode(): EventsPriority {
    return this.#mode;
  }

  /** Whether the process's threads run SCHED_IDLE now. */
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

  /**
   * The normal share until the returned function is called (once or more: the first counts), as
   * an API request is answered; the next batch after the last release may switch to idle again.
   */
  hold(): () => void {
    if (this.#mode === 'normal') return () => {};
    this.#holds++;
    this.normal();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#holds--;
    };
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
    if (this.#idle || this.#holds > 0 || !this.set(SCHED_IDLE)) return;
    this.#idle = true;
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastBusy >= QUIET_MS) this.normal();
    }, QUIET_MS / 2);
    this.#timer.unref();
  }

  /** Whether the calling thread's policy is now `policy`; every other thread of the process is switched too. */
  private set(policy: number): boolean {
    this.switches++;
    const ok = libc.schedSetscheduler(0, policy, this.#param) === 0;
    // the others (the main thread's task id is the pid); one that just exited answers ESRCH
    if (ok) for (const tid of threads()) if (tid !== process.pid) libc.schedSetscheduler(tid, policy, this.#param);
    return ok;
  }
}

/** The process's threads (their task ids; the main thread's is the pid). */
export function threads(): number[] {
  return readdirSync('/proc/self/task').map(Number);
}

/** A thread's policy (SCHED_OTHER 0, SCHED_IDLE 5, ...), the calling thread's by default. */
export function threadPolicy(tid = 0): number {
  return libc.schedGetscheduler(tid);
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
/** The process's one EventPriority (its threads'): normal until the agent sets it (runAgent). */
export function eventPriority(): EventPriority {
  shared ??= new EventPriority('normal');
  return shared;
}
