// Errors of the runtime. Every error says what was attempted (op), on what (subject: an object,
// program, map or link by name), and why: the errno in words and its code, plus libbpf's own
// messages for the operation and, for a rejected program, the verifier's log.
import { constants } from 'node:os';
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

export class BpfError extends Error {
  override name = 'BpfError';
  readonly code: string;
  readonly libbpfLog: string[];
  readonly hint?: string;

  constructor(
    readonly op: string,
    readonly subject: string,
    readonly errno: number,
    details: BpfErrorDetails = {},
  ) {
    const why = errno ? `${errnoText(errno)} (${errnoName(errno)})` : 'failed';
    let msg = subject ? `${op} ${subject}: ${why}` : `${op}: ${why}`;
    if (details.hint) msg += `; ${details.hint}`;
    const relevant = (details.libbpfLog ?? []).filter((l) => !l.startsWith('libbpf: -- ') && l.trim() !== '');
    if (relevant.length)
      msg += `\n  libbpf: ${relevant
        .slice(-6)
        .map((l) => l.replace(/^libbpf:\s*/, ''))
        .join('\n  libbpf: ')}`;
    super(msg, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.code = errnoName(errno);
    this.libbpfLog = details.libbpfLog ?? [];
    this.hint = details.hint;
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
    const tail = VerifierError.excerpt(log);
    this.message += `\n  verifier: ${tail.join('\n  verifier: ')}`;
    void libbpfLog;
    (this as { libbpfLog: string[] }).libbpfLog = libbpfLog;
  }

  /** The last lines of the log, which say why the verifier stopped. */
  static excerpt(log: string[], lines = 8): string[] {
    const body = log.filter((l) => l.trim() !== '');
    return body.slice(-lines);
  }
}

/** A feature this kernel does not have (kprobes, fentry, a map type, ...). */
export class UnsupportedError extends BpfError {
  override name = 'UnsupportedError';
  constructor(op: string, subject: string, hint: string) {
    super(op, subject, constants.errno.EOPNOTSUPP, { hint });
  }
}

/** Turns a libbpf return value into an exception. libbpf returns -errno. */
export function check(ret: number, op: string, subject: string, details?: BpfErrorDetails): number {
  if (ret < 0) throw new BpfError(op, subject, -ret, details);
  return ret;
}
