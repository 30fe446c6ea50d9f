/**
 * An inter-process lock file: created with O_CREAT|O_EXCL, holding the
 * owner's pid, host, pid namespace, a random nonce and the time.
 *
 * A lock is stale when its owner is provably dead (same host and pid
 * namespace, and `kill(pid, 0)` says ESRCH) or when it is older than
 * `staleMs` (holders keep it for milliseconds). A stale lock is broken by
 * renaming it aside first: only one breaker wins the rename, and the winner
 * checks that what it moved is the stale lock it inspected (by nonce); if a
 * live lock was moved by mistake it is linked back. The owner checks that
 * the lock is still its own before it commits (`assertHeld`).
 */

import { randomBytes } from 'node:crypto';
import { link, open, readFile, readlink, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { PackageError } from './errors.js';

export interface LockOptions {
  /** Give up after this long. Default 15 s. */
  timeoutMs?: number;
  /** A lock older than this is stale whatever its owner. Default 30 s. */
  staleMs?: number;
}

interface LockInfo {
  pid: number;
  host: string;
  pidns: string;
  nonce: string;
  created: number;
}

let pidNamespace: string | undefined;
async function ownPidNamespace(): Promise<string> {
  if (pidNamespace === undefined) {
    pidNamespace = await readlink('/proc/self/ns/pid').catch(() => '');
  }
  return pidNamespace;
}

function parseLock(raw: string): LockInfo | undefined {
  try {
    const v = JSON.parse(raw) as LockInfo;
    if (typeof v.pid === 'number' && typeof v.nonce === 'string' && typeof v.created === 'number') return v;
  } catch {
    // empty (the owner is between create and write) or garbage
  }
  return undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class FileLock {
  private constructor(
    readonly path: string,
    private readonly nonce: string,
  ) {}

  static async acquire(path: string, options: LockOptions = {}): Promise<FileLock> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const staleMs = options.staleMs ?? 30_000;
    const me: LockInfo = {
      pid: process.pid,
      host: hostname(),
      pidns: await ownPidNamespace(),
      nonce: randomBytes(12).toString('hex'),
      created: 0,
    };
    const start = Date.now();
    let delay = 2;
    for (;;) {
      me.created = Date.now();
      try {
        const fh = await open(path, 'wx', 0o644);
        try {
          await fh.writeFile(JSON.stringify(me));
        } finally {
          await fh.close();
        }
        return new FileLock(path, me.nonce);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new PackageError('LOCK_TIMEOUT', `cannot create lock file ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
      const raw = await readFile(path, 'utf8').catch(() => undefined);
      if (raw === undefined) continue; // released meanwhile
      const owner = parseLock(raw);
      const sameProcessSpace = owner !== undefined && owner.host === me.host && owner.pidns === me.pidns;
      const age = owner ? Date.now() - owner.created : undefined;
      const dead = sameProcessSpace && owner.pid !== process.pid && !processAlive(owner.pid);
      if (dead || (age !== undefined && age > staleMs) || (owner === undefined && (await ageOfFile(path)) > staleMs)) {
        await breakStale(path, raw, me.nonce);
        continue;
      }
      if (Date.now() - start > timeoutMs) {
        const who = owner
          ? `pid ${owner.pid} on ${owner.host} since ${new Date(owner.created).toISOString()}`
          : 'an unknown process';
        throw new PackageError(
          'LOCK_TIMEOUT',
          `timed out after ${timeoutMs} ms waiting for lock ${path}, held by ${who}; if no kbpf process is running, delete the file`,
        );
      }
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Throws if the lock file is no longer this owner's (it was broken as stale). */
  async assertHeld(): Promise<void> {
    const raw = await readFile(this.path, 'utf8').catch(() => '');
    if (parseLock(raw)?.nonce !== this.nonce) {
      throw new PackageError(
        'LOCK_TIMEOUT',
        `lock ${this.path} was taken over by another process (this one stalled longer than the stale limit); nothing was committed`,
      );
    }
  }

  async release(): Promise<void> {
    const raw = await readFile(this.path, 'utf8').catch(() => '');
    if (parseLock(raw)?.nonce === this.nonce) await unlink(this.path).catch(() => undefined);
  }
}

async function ageOfFile(path: string): Promise<number> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

async function breakStale(path: string, observed: string, nonce: string): Promise<void> {
  const aside = `${path}.stale-${nonce}`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else broke or released it
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== observed) {
    // We moved a lock taken after our inspection: put it back unless a newer one exists.
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

export async function withFileLock<T>(
  path: string,
  fn: (lock: FileLock) => Promise<T>,
  options?: LockOptions,
): Promise<T> {
  const lock = await FileLock.acquire(path, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
