// One agent per state directory: the agent holds flock(2) on STATE_DIR/agent.pid while it runs
// (and writes its pid there, for people). The kernel drops the lock when the agent's process
// dies, however it dies, so there is no stale lock to judge, and a holder in another PID
// namespace (an agent in a pod, a second one on the host) is seen as what it is: a holder.
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tryLockExclusive } from 'kbpf/bpf';
import { ConflictError } from '../errors.js';

export class PidLock {
  #fd?: number;
  constructor(readonly path: string) {}

  acquire(): void {
    if (this.#fd !== undefined) return;
    const fd = openSync(this.path, 'a+', 0o600);
    let locked = false;
    try {
      locked = tryLockExclusive(fd);
    } finally {
      if (!locked) closeSync(fd);
    }
    if (!locked) {
      let pid = '';
      try {
        pid = readFileSync(this.path, 'utf8').trim();
      } catch {
        /* unreadable: say so without a pid */
      }
      throw new ConflictError(
        `another kbpf agent${/^\d+$/.test(pid) ? ` (pid ${pid})` : ''} owns this state directory (${this.path})`,
      );
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`);
    this.#fd = fd;
  }

  /** Drops the lock (the file stays: removing it would let a second agent lock another file of that name). */
  release(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    closeSync(fd);
  }
}
