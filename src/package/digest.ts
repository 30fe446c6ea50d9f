/** sha256 content digests in the OCI form `sha256:<64 lowercase hex>`. */
import { createHash, type Hash } from 'node:crypto';
import { DigestMismatchError, PackageError } from './errors.js';

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** The digest of `bytes` (a string is hashed as UTF-8). */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Throws unless `digest` is a sha256 digest; returns its hex part. */
export function digestHex(digest: string, what = 'digest'): string {
  if (!DIGEST_RE.test(digest)) {
    const hint = /^sha256:/i.test(digest)
      ? 'expected "sha256:" and 64 lowercase hex characters'
      : /^[a-z0-9]+:/.test(digest)
        ? `algorithm "${digest.split(':')[0]}" is not supported (only sha256)`
        : 'expected "sha256:<64 hex characters>"';
    throw new PackageError('INVALID_DIGEST', `invalid ${what} "${digest}": ${hint}`);
  }
  return digest.slice('sha256:'.length);
}

/** Throws a DigestMismatchError naming `where` unless `bytes` hash to `expected` (and have `size`, if given). */
export function verifyBytes(bytes: Uint8Array, expected: string, where: string, size?: number): void {
  if (size !== undefined && bytes.byteLength !== size) {
    throw new DigestMismatchError(
      `${where}: size is ${bytes.byteLength} bytes, the descriptor says ${size} (content truncated or corrupted)`,
      expected,
      sha256Digest(bytes),
    );
  }
  const actual = sha256Digest(bytes);
  if (actual !== expected) {
    throw new DigestMismatchError(
      `${where}: content hashes to ${actual}, expected ${expected} (corrupted or tampered)`,
      expected,
      actual,
    );
  }
}

/** Incremental hashing for streamed content. */
export class DigestStream {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.byteLength;
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
