/** Errors of the package store and registry client. Each carries a stable `code`. */

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

export class PackageError extends Error {
  readonly code: PackageErrorCode;
  constructor(code: PackageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PackageError';
    this.code = code;
  }
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
  constructor(message: string, expected: string, actual: string) {
    super('DIGEST_MISMATCH', message);
    this.name = 'DigestMismatchError';
    this.expected = expected;
    this.actual = actual;
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
    super('REGISTRY', message);
    this.name = 'RegistryError';
    this.status = status;
    this.registryCodes = registryCodes;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
