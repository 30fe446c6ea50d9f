// One error model for all of kbpf. An error says *what happened* through its kind — not found,
// conflict, invalid input, unsupported by this kernel, refused by the kernel, corrupted or
// untrusted data, unavailable for now — and keeps what caused it on its `cause` chain.
// `isKind(err, NotFound)` walks that chain the way Go's errors.Is does, so a wrapper that adds
// context ("run opensnoop:1.0.0: …") never hides the kind underneath. Transport codes (HTTP
// statuses, exit codes) are chosen from kinds at the edges, in one place each; nothing in the
// domain knows them.

/** What happened, independent of where. Compared by identity, like a Go sentinel error. */
export class ErrorKind {
  constructor(
    readonly name: string,
    /** a few words, used where an error has to be summarised */
    readonly summary: string,
  ) {}
  toString(): string {
    return this.name;
  }
}

/** No such instance, package, map, pin, symbol, tracepoint, key… */
export const NotFound = new ErrorKind('NotFound', 'not found');
/** Conflicts with the current state: already exists, in use, still running, no earlier revision. */
export const Conflict = new ErrorKind('Conflict', 'conflicts with the current state');
/** The request or its input is malformed: a bad name, reference, config value or file. */
export const Invalid = new ErrorKind('Invalid', 'invalid input');
/** This kernel (or this node) lacks a feature; the error names the feature. */
export const Unsupported = new ErrorKind('Unsupported', 'not supported here');
/** The kernel said no, with an errno (the verifier, a permission, a limit). */
export const Refused = new ErrorKind('Refused', 'refused by the kernel');
/** Bytes that fail a check: a digest mismatch, a malformed manifest, ELF or BTF, a bad signature. */
export const Corrupted = new ErrorKind('Corrupted', 'corrupted or untrusted data');
/** Could not be done now, may work later: a lock held too long, a registry or network down. */
export const Unavailable = new ErrorKind('Unavailable', 'unavailable');

export const ERROR_KINDS: readonly ErrorKind[] = [
  NotFound,
  Conflict,
  Invalid,
  Unsupported,
  Refused,
  Corrupted,
  Unavailable,
];

export interface KbpfErrorOptions {
  cause?: unknown;
  /** what to do about it; appended to the message after "; " */
  hint?: string;
  /** more to say than fits a message (e.g. a verifier log); sent along by the API */
  details?: unknown;
}

/** An error with a kind. Subclasses say where it comes from (runtime, package store, agent). */
export class KbpfError extends Error {
  override name = 'KbpfError';
  readonly hint?: string;
  readonly details?: unknown;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    opts: KbpfErrorOptions = {},
  ) {
    super(
      opts.hint ? `${message}; ${opts.hint}` : message,
      opts.cause !== undefined ? { cause: opts.cause } : undefined,
    );
    this.hint = opts.hint;
    this.details = opts.details;
  }

  /** Kinds this error also matches besides its own (e.g. ENOENT from the kernel is also NotFound). */
  matches(kind: ErrorKind): boolean {
    return kind === this.kind;
  }
}

export class NotFoundError extends KbpfError {
  override name = 'NotFoundError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(NotFound, message, opts);
  }
}

export class ConflictError extends KbpfError {
  override name = 'ConflictError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(Conflict, message, opts);
  }
}

export class InvalidError extends KbpfError {
  override name = 'InvalidError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(Invalid, message, opts);
  }
}

export class CorruptedError extends KbpfError {
  override name = 'CorruptedError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(Corrupted, message, opts);
  }
}

export class UnavailableError extends KbpfError {
  override name = 'UnavailableError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(Unavailable, message, opts);
  }
}

/** Every error on the chain, outermost first: `cause` links and the members of an AggregateError. */
export function* errorChain(err: unknown): Generator<unknown> {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length) {
    const e = queue.shift();
    if (e === undefined || e === null || seen.has(e)) continue;
    seen.add(e);
    yield e;
    if (e instanceof AggregateError) queue.push(...e.errors);
    if (e instanceof Error && 'cause' in e) queue.push(e.cause);
  }
}

/** Like Go's errors.Is: true when any error on the chain is of (or matches) the kind. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  for (const e of errorChain(err)) if (e instanceof KbpfError && e.matches(kind)) return true;
  return false;
}

/** The kind of the outermost error that has one (wrappers of unknown kind are looked through). */
export function kindOf(err: unknown): ErrorKind | undefined {
  for (const e of errorChain(err)) if (e instanceof KbpfError && e.kind !== Unknown) return e.kind;
  return undefined;
}

/** Like Go's errors.As: the outermost error on the chain that is an instance of the class. */
export function findError<T extends Error>(err: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (const e of errorChain(err)) if (e instanceof type) return e;
  return undefined;
}

/**
 * Adds context in front of an error's message, keeping the error as `cause` and its kind:
 * `wrap(e, 'upgrade snoop')` → "upgrade snoop: <e's message>".
 */
export function wrap(err: unknown, context: string): KbpfError {
  const kind = kindOf(err);
  const w = new KbpfError(kind ?? Unknown, `${context}: ${errorMessage(err)}`, { cause: err });
  const inner = findError(err, KbpfError);
  if (inner?.details !== undefined) (w as { details?: unknown }).details = inner.details;
  return w;
}

/** The kind of an error nothing more is known of (a bug, or a failure no kind describes). */
export const Unknown = new ErrorKind('Unknown', 'failed');

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
