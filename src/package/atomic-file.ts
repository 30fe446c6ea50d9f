/** Crash-safe file writes: write a temporary file, fsync it, rename it into place, fsync the directory. */

import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function tempName(prefix: string): string {
  return `${prefix}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** fsync a directory so a rename inside it survives a power loss. Best effort where unsupported. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Writes `bytes` to a new temporary file (O_EXCL) and fsyncs it; returns its path. */
export async function writeTempFile(tmpDir: string, prefix: string, bytes: Uint8Array, mode = 0o644): Promise<string> {
  const path = join(tmpDir, tempName(prefix));
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
  await fh.close();
  return path;
}

/** Replaces `path` atomically with `bytes`: readers see the old file or the new one, never a mix. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string, mode = 0o644): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const dir = dirname(path);
  const tmp = await writeTempFile(dir, `.${basename(path)}`, data, mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}
