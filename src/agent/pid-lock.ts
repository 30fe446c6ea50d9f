// One agent per state directory: a pid file that a second agent checks before touching anything.
// A pid file whose process is gone (crash, kill -9) is stale and taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { ConflictError } from '../errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** lock files held by agents of this process */
const heldHere = new Set<string>();

export class PidLock {
  #held = false;
  constructor(readonly path: string) {}

  acquire(): void {
    if (heldHere.has(this.path))
      throw new ConflictError(`another kbpf agent (pid ${process.pid}) owns this state directory (${this.path})`);
    this.take();
    heldHere.add(this.path);
  }

  private take(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.path, 'wx', 0o600);
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        this.#held = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number(readFileSync(this.path, 'utf8').trim());
      if (pid && pid !== process.pid && alive(pid)) {
        throw new ConflictError(`another kbpf agent (pid ${pid}) owns this state directory (${this.path})`);
      }
      unlinkSync(this.path); // stale: its agent is gone
    }
    writeFileSync(this.path, `${process.pid}\n`, { mode: 0o600 });
    this.#held = true;
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    heldHere.delete(this.path);
    try {
      if (Number(readFileSync(this.path, 'utf8').trim()) === process.pid) unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
