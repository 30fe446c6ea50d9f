// One epoll instance shared by every event reader of the process (ring buffers, perf buffers).
//
// Readers register an fd and a callback and *arm* it when they want to be told that the fd is
// readable. Registrations are one-shot (EPOLLONESHOT): after the callback has run, the fd stays
// disarmed until its reader arms it again, so a reader that is not consuming (back-pressure,
// paused iterator) never makes the poller spin on a level-triggered fd that stays readable.
//
// Waiting: one `epoll_wait` at a time runs on libuv's threadpool (koffi's async call) with a
// bounded timeout (WAIT_TIMEOUT_MS), whatever the number of readers — one waiter for N readers,
// never one thread per reader. When it returns, the ready registrations' callbacks run on the JS
// thread, and the wait is issued again while anything is still armed.
//
// Process lifetime (unref semantics): a pending threadpool call keeps Node's event loop alive, so
// the threadpool wait only runs while at least one armed registration is *ref'd* (a reader whose
// consumer is awaiting records). Armed registrations that are all unref'd are checked by a
// non-blocking `epoll_wait(…, 0)` from an unref'd timer every UNREF_POLL_MS, which does not keep
// the process alive. With nothing armed, nothing waits at all: a process with no other work exits
// (at most WAIT_TIMEOUT_MS after the last reader stopped waiting).
import { constants } from 'node:os';
import { BpfError } from './errors.js';
import { lastErrno } from './ffi/koffi.js';
import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN, libc } from './ffi/libc.js';

const EPOLL_CTL_MOD = 3;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLLONESHOT = 1 << 30;
/** struct epoll_event is packed on x86_64: u32 events; u64 data. */
const EVENT_SIZE = 12;
const MAX_EVENTS = 64;

/** Bound of one threadpool wait: how long a stopped poller can keep the process alive. */
export const WAIT_TIMEOUT_MS = 200;
/**
 * Interval of the non-blocking check when only unref'd registrations are armed (an agent's event
 * buffers): how late the first record after a quiet spell can be seen. Each turn of a busy node's
 * event loop costs its process ~0.3-0.5 ms of CPU (Node's timer machinery, cold caches), so the
 * 50 checks a second of a 20 ms interval were ~25 ms of CPU a second for nothing.
 */
export const UNREF_POLL_MS = 200;

export interface WatchOptions {
  /** Whether an armed watch keeps the process alive (default true). */
  ref?: boolean;
  /** Used in error messages. */
  description?: string;
}

/** A registration of one fd with the shared poller. */
export class Watch {
  /** @internal */ armed = false;
  /** @internal */ inKernel = false;
  /** @internal */ closed = false;
  #ref: boolean;

  /** @internal */
  constructor(
    readonly poller: Poller,
    readonly fd: number,
    /** @internal */ readonly token: number,
    /** @internal */ readonly onReadable: (events: number) => void,
    ref: boolean,
    readonly description: string,
  ) {
    this.#ref = ref;
  }

  get isRef(): boolean {
    return this.#ref;
  }

  get isArmed(): boolean {
    return this.armed;
  }

  /** Calls onReadable once, the next time the fd is readable (at once if it is readable now). */
  arm(): void {
    if (this.closed || this.armed) return;
    this.poller.arm(this);
  }

  /** Stops waiting for this fd (a later arm() resumes). */
  disarm(): void {
    if (this.closed || !this.armed) return;
    this.poller.disarm(this);
  }

  ref(): this {
    if (!this.#ref) {
      this.#ref = true;
      this.poller.refChanged(this);
    }
    return this;
  }

  unref(): this {
    if (this.#ref) {
      this.#ref = false;
      this.poller.refChanged(this);
    }
    return this;
  }

  /** Removes the fd from the poller. Call it before closing the fd. */
  close(): void {
    if (this.closed) return;
    this.poller.remove(this);
  }
}

export class Poller {
  #epfd = -1;
  #nextToken = 1;
  readonly #watches = new Map<number, Watch>();
  #armed = 0;
  #armedRef = 0;
  #waiting = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #ctlEvent = new Uint8Array(EVENT_SIZE);
  readonly #ctlView = new DataView(this.#ctlEvent.buffer);
  /** Number of threadpool waits issued (for tests and diagnostics). */
  waits = 0;

  /** Number of registered fds. */
  get size(): number {
    return this.#watches.size;
  }

  /** Whether a threadpool wait is in flight. */
  get waiting(): boolean {
    return this.#waiting;
  }

  /** Whether the unref'd timer is polling. */
  get polling(): boolean {
    return this.#timer !== null;
  }

  /** Registers fd; onReadable runs on the JS thread after arm() once the fd is readable. */
  watch(fd: number, onReadable: (events: number) => void, opts: WatchOptions = {}): Watch {
    this.ensureEpoll();
    const w = new Watch(this, fd, this.#nextToken++, onReadable, opts.ref ?? true, opts.description ?? `fd ${fd}`);
    if (this.#nextToken > 0xffffffff) this.#nextToken = 1;
    this.#watches.set(w.token, w);
    return w;
  }

  /** @internal */
  arm(w: Watch): void {
    this.ctl(w.inKernel ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w, EPOLLIN | EPOLLONESHOT);
    w.inKernel = true;
    w.armed = true;
    this.#armed++;
    if (w.isRef) this.#armedRef++;
    this.schedule();
  }

  /** @internal */
  disarm(w: Watch): void {
    // A one-shot registration with no events is disarmed in the kernel too.
    this.ctl(EPOLL_CTL_MOD, w, EPOLLONESHOT);
    this.markDisarmed(w);
    this.schedule();
  }

  /** @internal */
  refChanged(w: Watch): void {
    if (!w.armed) return;
    this.#armedRef += w.isRef ? 1 : -1;
    this.schedule();
  }

  /** @internal */
  remove(w: Watch): void {
    if (w.armed) this.markDisarmed(w);
    if (w.inKernel) {
      // The fd may already be closed (then the kernel dropped it from the set itself).
      libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, w.fd, this.#ctlEvent);
      w.inKernel = false;
    }
    w.closed = true;
    this.#watches.delete(w.token);
    this.schedule();
  }

  private markDisarmed(w: Watch): void {
    w.armed = false;
    this.#armed--;
    if (w.isRef) this.#armedRef--;
  }

  private ensureEpoll(): void {
    if (this.#epfd >= 0) return;
    const fd = libc.epollCreate1(EPOLL_CLOEXEC);
    if (fd < 0) throw new BpfError('create', 'the event poller (epoll)', lastErrno());
    this.#epfd = fd;
  }

  private ctl(op: number, w: Watch, events: number): void {
    this.#ctlView.setUint32(0, events >>> 0, true);
    this.#ctlView.setUint32(4, w.token, true);
    this.#ctlView.setUint32(8, 0, true);
    if (libc.epollCtl(this.#epfd, op, w.fd, this.#ctlEvent) < 0) {
      throw new BpfError('watch', `${w.description} with the event poller`, lastErrno() || constants.errno.EBADF);
    }
  }

  /** Starts or stops the threadpool wait / the unref'd timer to match what is armed. */
  private schedule(): void {
    if (this.#armedRef > 0) {
      this.stopTimer();
      if (!this.#waiting) this.startWait();
    } else if (this.#armed > 0) {
      // Only unref'd watches: a bounded non-blocking poll from an unref'd timer. If a threadpool
      // wait is still in flight it finishes within WAIT_TIMEOUT_MS and is not re-issued.
      if (!this.#timer && !this.#waiting) {
        this.#timer = setInterval(() => this.pollNow(), UNREF_POLL_MS);
        this.#timer.unref();
      }
    } else {
      this.stopTimer();
    }
  }

  private stopTimer(): void {
    if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  private startWait(): void {
    this.#waiting = true;
    this.waits++;
    libc.epollWait.async(this.#epfd, this.#events, MAX_EVENTS, WAIT_TIMEOUT_MS, (err, n) => {
      this.#waiting = false;
      if (err) {
        process.emitWarning(`kbpf: event poller: epoll_wait failed: ${String(err)}`);
      } else if (n > 0) {
        this.dispatch(n);
      }
      this.schedule();
    });
  }

  /** Non-blocking check (unref'd timer, or a reader that wants to look now). */
  pollNow(): void {
    if (this.#epfd < 0 || this.#armed === 0) return;
    const n = libc.epollWait(this.#epfd, this.#events, MAX_EVENTS, 0);
    if (n > 0) this.dispatch(n);
    this.schedule();
  }

  private dispatch(n: number): void {
    const ready: [Watch, number][] = [];
    for (let i = 0; i < n; i++) {
      const events = this.#eventsView.getUint32(i * EVENT_SIZE, true);
      const token = this.#eventsView.getUint32(i * EVENT_SIZE + 4, true);
      const w = this.#watches.get(token);
      // A watch closed or disarmed while the wait was in flight: ignore the stale event.
      if (!w?.armed) continue;
      this.markDisarmed(w); // one-shot: the kernel disarmed it
      ready.push([w, events]);
    }
    for (const [w, events] of ready) {
      if (w.closed) continue;
      try {
        w.onReadable(events & (EPOLLIN | EPOLLERR | EPOLLHUP));
      } catch (e) {
        // A reader's callback must not break the other readers: report it asynchronously.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

let shared: Poller | null = null;

/** The process-wide poller. */
export function poller(): Poller {
  if (!shared) shared = new Poller();
  return shared;
}
