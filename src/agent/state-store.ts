// Crash-safe desired state: one JSON file per instance, replaced atomically (write to a temp
// file, fsync, rename, fsync the directory). A kill -9 at any point leaves either the old or the
// new record, never a torn one.
//
// A record can also be *staged*: written and synced to its temp file in the background (on
// libuv's threadpool, while the agent's thread loads programs), then committed by the rename
// alone. The rename decides which record is current; the directory is synced after it, in the
// background too (until then, only a power cut, which also takes every program with it, could
// lose the new name).
import {
  close,
  closeSync,
  fsync,
  fsyncSync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { InstanceRecord } from './types.js';

export const NAME_RE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

/** A record written to its temp file, not yet current. */
export interface StagedRecord {
  /** makes it the current record (waits for the write to be synced) */
  commit(): Promise<void>;
  /** drops it (the current record stays as it was) */
  discard(): void;
}

export class StateStore {
  #staged = 0;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  list(): InstanceRecord[] {
    const out: InstanceRecord[] = [];
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith('.tmp')) unlinkSync(join(this.dir, f)); // staged by an agent that stopped before its commit
      if (!f.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as InstanceRecord);
      } catch (e) {
        process.stderr.write(`kbpf agent: ignoring unreadable state file ${f}: ${(e as Error).message}\n`);
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  get(name: string): InstanceRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.path(name), 'utf8')) as InstanceRecord;
    } catch {
      return undefined;
    }
  }

  save(record: InstanceRecord): void {
    const final = this.path(record.name);
    const tmp = `${final}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(record, null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, final);
    this.syncDir();
  }

  stage(record: InstanceRecord): StagedRecord {
    const final = this.path(record.name);
    const tmp = `${final}.${process.pid}.${++this.#staged}.tmp`;
    // written at once (page cache); only the fsync, one threadpool job, runs in the background
    const fd = openSync(tmp, 'w', 0o600);
    let synced: Promise<void>;
    try {
      writeSync(fd, JSON.stringify(record, null, 2));
      synced = new Promise((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
    } catch (e) {
      closeSync(fd);
      unlinkSync(tmp);
      throw e;
    }
    synced.catch(() => {}); // seen by commit(); a discarded record's failure does not matter
    let done = false;
    return {
      commit: async () => {
        try {
          await synced;
        } finally {
          done = true;
          closeSync(fd);
        }
        renameSync(tmp, final);
        this.syncDirSoon();
      },
      discard: () => {
        if (done) return;
        done = true;
        void synced
          .catch(() => {})
          .finally(() => {
            closeSync(fd);
            rmSync(tmp, { force: true });
          });
      },
    };
  }

  delete(name: string): void {
    try {
      unlinkSync(this.path(name));
      this.syncDir();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Syncs the directory (a rename into it) from the threadpool; a failure is only reported. */
  private syncDirSoon(): void {
    const report = (e: Error | null) => {
      if (e) process.stderr.write(`kbpf agent: could not sync ${this.dir}: ${e.message}\n`);
    };
    open(this.dir, 'r', (err, fd) => {
      if (err) return report(err);
      fsync(fd, (e) => {
        report(e);
        close(fd, () => {});
      });
    });
  }

  private syncDir(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
