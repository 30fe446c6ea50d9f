// Waiting for an fd to become readable on the calling thread, blocking it: for callers that
// must answer synchronously (a Wasm guest's poll call runs inside the guest's own call stack).
// Everything else waits on the shared poller (poller.ts), which never blocks the event loop.
import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLLIN, libc } from './ffi/libc.js';

const EVENT_SIZE = 12;

/** Blocks until `fd` is readable or `timeoutMs` passed (0: just look). True when readable. */
export function waitReadableSync(fd: number, timeoutMs: number): boolean {
  const ep = libc.epollCreate1(EPOLL_CLOEXEC);
  if (ep < 0) return false;
  try {
    const ev = new Uint8Array(EVENT_SIZE);
    new DataView(ev.buffer).setUint32(0, EPOLLIN, true);
    if (libc.epollCtl(ep, EPOLL_CTL_ADD, fd, ev) < 0) return false;
    return libc.epollWait(ep, new Uint8Array(EVENT_SIZE), 1, Math.max(0, Math.floor(timeoutMs))) > 0;
  } finally {
    libc.close(ep);
  }
}
