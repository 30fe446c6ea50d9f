// Errors of the runtime. Every error says what was attempted (op), on what (subject: an object,
// program, map or link by name), and why: the errno in words and its code, plus libbpf's own
// messages for the operation and, for a rejected program, the verifier's log.
import { constants } from 'node:os';
import { Conflict, type ErrorKind, KbpfError, NotFound, Refused, Unsupported } from '../errors.js';
import { libc } from './ffi/libc.js';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
// errnos the kernel uses that Node does not list
const KERNEL_ERRNOS: Record<number, string> = { 524: 'ENOTSUPP', 512: 'ERESTARTSYS', 526: 'EBADTYPE' };

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? KERNEL_ERRNOS[errno] ?? `errno ${errno}`;
}

export function errnoText(errno: number): string {
  if (errno === 524) return 'operation not supported by this kernel';
  const s = libc.strerror(errno);
  return s ? s.charAt(0).toLowerCase() + s.slice(1) : `error ${errno}`;
}

export interface BpfErrorDetails {
  /** libbpf's warnings emitted during the operation */
  libbpfLog?: string[];
  /** a hint on what to do */
  hint?: string;
  cause?: unknown;
}

/** What the kernel's answer means, for errnos that say more than "refused". */
export function kindOfErrno(errno: number): ErrorKind {
  switch (errno) {
    case constants.errno.ENOENT:
    case constants.errno.ESRCH:
      return NotFound;
    case constants.errno.EEXIST:
      return Conflict;
    case constants.errno.EOPNOTSUPP:
    case constants.errno.ENOSYS:
    case 524 /* ENOTSUPP */:
      return Unsupported;
    default:
      return Refused;
  }
}

/**
 * An operation of the runtime failed. Said as "OP SUBJECT: WHY; HINT" plus libbpf's lines.
 * Given an errno, the kernel (or libbpf, or the C library) refused: `errno` and `code` (its name)
 * say which, and the kind follows from it (ENOENT is also NotFound, EEXIST also Conflict…).
 * Given a kind instead, the runtime itself refused before asking the kernel (a program name not
 * in the object, a value of the wrong size, a closed object); `errno` is 0 and `code` the kind's
 * name.
 */
export class BpfError extends KbpfError {
  override name = 'BpfError';
  readonly errno: number;
  readonly code: string;
  readonly libbpfLog: string[];

  constructor(
    readonly op: string,
    readonly subject: string,
    errnoOrKind: number | ErrorKind,
    details: BpfErrorDetails = {},
  ) {
    const errno = typeof errnoOrKind === 'number' ? errnoOrKind : 0;
    const kind = typeof errnoOrKind === 'number' ? kindOfErrno(errnoOrKind) : errnoOrKind;
    const why = errno
      ? `${errnoText(errno)} (${errnoName(errno)})`
      : typeof errnoOrKind === 'number'
        ? 'failed'
        : kind.summary;
    super(kind, subject ? `${op} ${subject}: ${why}` : `${op}: ${why}`, { hint: details.hint, cause: details.cause });
    const relevant = (details.libbpfLog ?? []).filter((l) => !l.startsWith('libbpf: -- ') && l.trim() !== '');
    if (relevant.length)
      this.message += `\n  libbpf: ${relevant
        .slice(-6)
        .map((l) => l.replace(/^libbpf:\s*/, ''))
        .join('\n  libbpf: ')}`;
    this.errno = errno;
    this.code = errno ? errnoName(errno) : kind.name;
    this.libbpfLog = details.libbpfLog ?? [];
  }

  /** Every errno the kernel returned is also a refusal. */
  override matches(kind: ErrorKind): boolean {
    return kind === this.kind || (this.errno !== 0 && kind === Refused);
  }
}

/** The kernel's verifier refused a program. `log` holds the verifier's lines. */
export class VerifierError extends BpfError {
  override name = 'VerifierError';
  constructor(
    readonly objectName: string,
    readonly programName: string,
    errno: number,
    readonly log: string[],
    libbpfLog: string[] = [],
  ) {
    super('load program', `"${programName}" of object "${objectName}"`, errno, { libbpfLog: [] });
    const helper = VerifierError.refusedHelper(log);
    if (helper) this.message += `: ${helper}`;
    const tail = VerifierError.excerpt(log);
    this.message += `\n  verifier: ${tail.join('\n  verifier: ')}`;
    (this as { libbpfLog: string[] }).libbpfLog = libbpfLog;
  }

  /**
   * The helper the kernel withholds from the program's type, in words ("this kernel does not let
   * this program type call bpf_probe_write_user …"), when that is why the verifier stopped.
   */
  static refusedHelper(log: string[]): string | undefined {
    for (const l of log) {
      const m = /program of this type cannot use helper (\w+)#\d+/.exec(l);
      if (!m) continue;
      const name = m[1]!.startsWith('bpf_') ? m[1]! : `bpf_${m[1]}`;
      // the kernel gives tracing programs bpf_probe_write_user only outside lockdown
      const why = name === 'bpf_probe_write_user' ? ' (a kernel in lockdown withholds it from every program)' : '';
      return `this kernel does not let this program type call the helper ${name}${why}`;
    }
    return undefined;
  }

  /** The last lines of the log, which say why the verifier stopped. */
  static excerpt(log: string[], lines = 8): string[] {
    const body = log.filter((l) => l.trim() !== '');
    return body.slice(-lines);
  }
}

/** A feature this kernel does not have (kprobes, fentry, a map type, ...); `feature` names it. */
export class UnsupportedError extends BpfError {
  override name = 'UnsupportedError';
  readonly feature: string;
  constructor(op: string, subject: string, hint: string, feature: string = subject) {
    super(op, subject, Unsupported, { hint });
    this.feature = feature;
  }
}

/** Turns a libbpf return value into an exception. libbpf returns -errno. */
export function check(ret: number, op: string, subject: string, details?: BpfErrorDetails): number {
  if (ret < 0) throw new BpfError(op, subject, -ret, details);
  return ret;
}
