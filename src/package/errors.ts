/**
 * Errors of the package store and registry client. Each carries a stable `code` (what went wrong
 * in package terms) and, from it, one of kbpf's error kinds (src/errors.ts).
 */
import {
  Conflict,
  Corrupted,
  type ErrorKind,
  Invalid,
  KbpfError,
  NotFound,
  Refused,
  Unavailable,
  Unknown,
} from '../errors.js';

export type PackageErrorCode =
  | 'INVALID_REFERENCE'
  | 'INVALID_DIGEST'
  | 'INVALID_PACKAGE'
  | 'NOT_FOUND'
  | 'DIGEST_MISMATCH'
  | 'LOCK_TIMEOUT'
  | 'REGISTRY'
  | 'NETWORK'
  | 'AUTH_CONFIG';

const KIND_OF_CODE: Record<PackageErrorCode, ErrorKind> = {
  INVALID_REFERENCE: Invalid,
  INVALID_DIGEST: Invalid,
  INVALID_PACKAGE: Invalid,
  NOT_FOUND: NotFound,
  DIGEST_MISMATCH: Corrupted,
  LOCK_TIMEOUT: Unavailable,
  REGISTRY: Unknown,
  NETWORK: Unavailable,
  AUTH_CONFIG: Invalid,
};

export class PackageError extends KbpfError {
  readonly code: PackageErrorCode;
  constructor(code: PackageErrorCode, message: string, options?: { cause?: unknown; kind?: ErrorKind }) {
    super(options?.kind ?? KIND_OF_CODE[code], message, { cause: options?.cause });
    this.name = 'PackageError';
    this.code = code;
  }
}

/** What a registry's HTTP answer means, in kbpf's kinds. */
function kindOfRegistryStatus(status: number): ErrorKind {
  if (status === 404) return NotFound;
  if (status === 401 || status === 403) return Refused;
  if (status === 409) return Conflict;
  if (status === 400 || status === 413 || status === 422) return Invalid;
  if (status === 429 || status >= 500) return Unavailable;
  return Unknown;
}

/** A reference string that is not `[host[:port]/]name[:tag][@sha256:hex]`. */
export class InvalidReferenceError extends PackageError {
  constructor(message: string) {
    super('INVALID_REFERENCE', message);
    this.name = 'InvalidReferenceError';
  }
}

/** Content whose sha256 (or size) is not the one its descriptor announced. */
export class DigestMismatchError extends PackageError {
  readonly expected: string;
  readonly actual: string;
  /** the content ended before its declared size (nothing wrong was read: less was) */
  readonly truncated: boolean;
  constructor(message: string, expected: string, actual: string, opts: { truncated?: boolean } = {}) {
    super('DIGEST_MISMATCH', message);
    this.name = 'DigestMismatchError';
    this.expected = expected;
    this.actual = actual;
    this.truncated = opts.truncated ?? false;
  }
}

/** A tag, digest or blob that the store or the registry does not have. */
export class NotFoundError extends PackageError {
  constructor(message: string) {
    super('NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

/** An HTTP answer from a registry that was not the one expected. */
export class RegistryError extends PackageError {
  readonly status: number;
  /** OCI distribution error codes from the body, e.g. `MANIFEST_UNKNOWN`. */
  readonly registryCodes: string[];
  constructor(message: string, status: number, registryCodes: string[] = []) {
    super('REGISTRY', message, { kind: kindOfRegistryStatus(status) });
    this.name = 'RegistryError';
    this.status = status;
    this.registryCodes = registryCodes;
  }
}

export { errorMessage } from '../errors.js';
