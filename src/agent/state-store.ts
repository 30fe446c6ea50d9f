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
import { CorruptedError } from '../errors.js';
import { checkInstanceName, isInstanceName, NAME_RE, pathUnder } from './instance-name.js';
import type { InstanceRecord } from './types.js';

export { NAME_RE };

/** A state file that could not be used, and why. */
export interface SkippedRecord {
  file: string;
  reason: string;
}

/** Why `v` (read from `file`) is not an instance record, or undefined when it is one. */
export function recordProblem(v: unknown, name: string): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const r = v as Partial<Record<keyof InstanceRecord, unknown>>;
  if (r.name !== name) return `it names instance ${JSON.stringify(r.name)}, not ${JSON.stringify(name)}`;
  if (r.desired !== 'running' && r.desired !== 'stopped') return 'desired is neither running nor stopped';
  if (typeof r.createdAt !== 'string') return 'no createdAt';
  if (!Number.isInteger(r.current)) return 'current is not a revision number';
  if (!Array.isArray(r.revisions) || r.revisions.length === 0) return 'no revisions';
  for (const rev of r.revisions as unknown[]) {
    const x = rev as Record<string, unknown> | null;
    if (!x || typeof x !== 'object' || !Number.isInteger(x.revision)) return 'a revision without a number';
    if (typeof x.image !== 'string' || typeof x.digest !== 'string')
      return `revision ${x.revision}: no image or digest`;
    if (x.config === null || typeof x.config !== 'object' || x.attach === null || typeof x.attach !== 'object')
      return `revision ${x.revision}: config or attach is not an object`;
  }
  if (!(r.revisions as { revision: number }[]).some((x) => x.revision === r.current))
    return `revision ${r.current} missing from its history`;
  return undefined;
}

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

  /** The record file of instance `name`: only a valid name, and only inside the directory. */
  private path(name: string): string {
    checkInstanceName(name);
    return pathUnder(this.dir, `${name}.json`);
  }

  /** State files the last list() skipped (unreadable, or not a record), with the reason. */
  skipped: SkippedRecord[] = [];

  /**
   * Every valid record. A file that is unreadable, is not a record, or holds a record of another
   * name is skipped and kept in `skipped` (one bad file does not hide the others).
   */
  list(): InstanceRecord[] {
    const out: InstanceRecord[] = [];
    this.skipped = [];
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith('.tmp')) unlinkSync(join(this.dir, f)); // staged by an agent that stopped before its commit
      if (!f.endsWith('.json')) continue;
      const name = f.slice(0, -'.json'.length);
      let reason: string | undefined;
      if (!isInstanceName(name)) reason = 'its name is not an instance name';
      else {
        try {
          const v: unknown = JSON.parse(readFileSync(join(this.dir, f), 'utf8'));
          reason = recordProblem(v, name);
          if (!reason) out.push(v as InstanceRecord);
        } catch (e) {
          reason = `unreadable: ${(e as Error).message}`;
        }
      }
      if (reason) this.skipped.push({ file: join(this.dir, f), reason });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The record of `name` (undefined when there is none); Corrupted when the file is not a valid record of that name. */
  get(name: string): InstanceRecord | undefined {
    const path = this.path(name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new CorruptedError(`state file ${path}: not JSON (${(e as Error).message})`);
    }
    const problem = recordProblem(v, name);
    if (problem) throw new CorruptedError(`state file ${path}: ${problem}`);
    return v as InstanceRecord;
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
