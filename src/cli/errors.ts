// How the CLI reports failures: `kbpf: message` on stderr (details indented below, the stack only
// with KBPF_DEBUG=1), exit 1; and verbs over several names that go on after one fails.
import { ApiError } from '../agent/api-client.js';
import type { CliIo } from './io.js';
import { escapeLines } from './render/escape.js';

/** An error the CLI reports as `kbpf: <message>` (exit 1). */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function printDetails(io: CliIo, details: unknown): void {
  if (details === undefined || details === null) return;
  const text =
    typeof details === 'string'
      ? details
      : Array.isArray(details) && details.every((d) => typeof d === 'string')
        ? details.join('\n')
        : JSON.stringify(details, null, 2);
  io.stderr(`${escapeLines(text).replace(/^/gm, '  ').trimEnd()}\n`);
}

/** Prints an error the way the CLI does: `kbpf: message` (stack only with KBPF_DEBUG=1). */
export function reportError(io: CliIo, err: unknown): void {
  const e = err as { message?: string; stack?: string; details?: unknown };
  io.stderr(`kbpf: ${escapeLines(e?.message ?? String(err))}\n`);
  if (err instanceof ApiError) printDetails(io, err.details);
  if (io.env.KBPF_DEBUG === '1' && e?.stack) io.stderr(`${escapeLines(e.stack)}\n`);
}

/** Runs `fn` for every name; reports each failure and fails at the end if any did (like docker rm a b c). */
export async function eachName(io: CliIo, names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let failed = 0;
  for (const n of names) {
    try {
      await fn(n);
    } catch (e) {
      // the agent is not there: no use trying the others
      if (e instanceof ApiError && e.status === 0) throw e;
      if (names.length === 1) throw e;
      reportError(io, e);
      failed++;
    }
  }
  if (failed) throw new CliError(`${failed} of ${names.length} failed`, 1);
}
