// flock(2), which Node does not expose: an advisory lock on an open file that the kernel drops
// when the file is closed or its process dies, whatever PID namespace the holder is in.
import { constants } from 'node:os';
import { BpfError } from './errors.js';
import { lastErrno } from './ffi/koffi.js';
import { libc } from './ffi/libc.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const { EWOULDBLOCK, EINTR } = constants.errno;

/** Takes an exclusive lock on open file `fd` without waiting: false when another open file holds it. */
export function tryLockExclusive(fd: number): boolean {
  for (;;) {
    if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = lastErrno();
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw new BpfError('lock', `file descriptor ${fd}`, errno);
  }
}

/** Drops the lock (closing the file drops it too). */
export function unlock(fd: number): void {
  libc.flock(fd, LOCK_UN);
}
