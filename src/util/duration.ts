// Durations and `since` times, as users type them: one grammar for the CLI (`kbpf logs --since`,
// `kubectl bpf logs --since`), the agent's API and the node's log endpoint.
//
//   duration   one or more NUMBER UNIT, units ms s m h d:  500ms  30s  5m  1h30m  2h45m10s  1.5h  2d
//   since      a duration back from now, an RFC 3339 time (2024-05-01T10:00:00Z, with an offset,
//              fractional seconds, or no zone: local time), a date (2024-05-01, UTC midnight),
//              or Unix seconds (1714557600)

import { InvalidError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const UNIX_SECONDS_RE = /^\d+(?:\.\d+)?$/;
const TIME_RE = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?$/;

export const DURATION_EXAMPLES = '30s, 5m, 1h30m';
export const TIME_EXAMPLE = '2024-05-01T10:00:00Z';

/** A duration (10s, 5m, 1h30m, 250ms, 2d) in milliseconds; undefined when `s` is not one. */
export function parseDuration(s: string): number | undefined {
  if (!DURATION_RE.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(PART_RE)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

/** A point in time: a duration back from `now`, an RFC 3339 time, a date or Unix seconds. */
export function parseSince(s: string, now = Date.now()): Date {
  const d = parseDuration(s);
  if (d !== undefined) return new Date(now - d);
  if (UNIX_SECONDS_RE.test(s)) return new Date(Number(s) * 1000);
  if (TIME_RE.test(s)) {
    const t = Date.parse(s.toUpperCase().replace(' ', 'T'));
    if (!Number.isNaN(t)) return new Date(t);
  }
  throw new InvalidError(
    `since: "${s}" is neither a duration (${DURATION_EXAMPLES}) nor a time (${TIME_EXAMPLE}, or Unix seconds)`,
  );
}
