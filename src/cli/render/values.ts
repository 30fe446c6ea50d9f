// How single values look in human output: table cells, relative times, sizes, short digests.
import { escapeControl } from './escape.js';

/** A value as a table cell: strings on one line (tabs and newlines as spaces, other control
 * characters escaped), other values as compact JSON. */
export function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return escapeControl(v.replace(/[\r\n\t]/g, ' '));
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}

/** "3 seconds ago", "5 minutes ago", "2 days ago". */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return cell(iso);
  const s = Math.max(0, Math.round((now - t) / 1000));
  const unit = (n: number, u: string): string => `${n} ${u}${n === 1 ? '' : 's'} ago`;
  if (s < 60) return s < 2 ? 'just now' : unit(s, 'second');
  const m = Math.round(s / 60);
  if (m < 60) return unit(m, 'minute');
  const h = Math.round(s / 3600);
  if (h < 48) return unit(h, 'hour');
  const d = Math.round(s / 86400);
  if (d < 60) return unit(d, 'day');
  return new Date(t).toISOString().slice(0, 10);
}

/** 999B, 1.2kB, 12kB, 3.4MB (powers of 1000). */
export function size(bytes: number): string {
  if (bytes < 1000) return `${bytes}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** sha256:0123456789ab (12 hex digits). */
export function shortDigest(d: string | undefined): string {
  if (!d) return '';
  const m = /^(sha256:)?([0-9a-f]{12})/.exec(d);
  return m ? `sha256:${m[2]}` : cell(d);
}

/** name@sha256:<64 hex> → name@sha256:<12 hex>, for tables. */
export function shortRef(ref: string): string {
  return cell(ref.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@sha256:$1'));
}

/** k=v k2=v2, for a config in a table or a description. */
export function keyValues(o: Record<string, unknown> | undefined): string {
  return Object.entries(o ?? {})
    .map(([k, v]) => `${cell(k)}=${cell(v)}`)
    .join(' ');
}
