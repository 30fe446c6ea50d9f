// Crash-safe desired state: one JSON file per instance, replaced atomically (write to a temp
// file, fsync, rename, fsync the directory). A kill -9 at any point leaves either the old or the
// new record, never a torn one.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { InstanceRecord } from './types.js';

export const NAME_RE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

export class StateStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  list(): InstanceRecord[] {
    const out: InstanceRecord[] = [];
    for (const f of readdirSync(this.dir)) {
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

  delete(name: string): void {
    try {
      unlinkSync(this.path(name));
      this.syncDir();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
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
