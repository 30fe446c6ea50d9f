// Output helpers of the CLI: aligned tables (like docker ps), relative times, sizes, log rows.
import type { LogRecord } from '../agent/log-store.js';

/** Left-aligned columns separated by three spaces; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** "3 seconds ago", "5 minutes ago", "2 days ago". */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
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
  return m ? `sha256:${m[2]}` : d;
}

/** name@sha256:<64 hex> → name@sha256:<12 hex>, for tables. */
export function shortRef(ref: string): string {
  return ref.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@sha256:$1');
}

/** A value as a table cell: strings as they are, others as compact JSON. */
export function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v.replace(/[\r\n\t]/g, ' ');
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

export function json(v: unknown): string {
  return `${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2)}\n`;
}

// ---- logs ----

const RESERVED = new Set(['ts', 'seq', 'source', 'event']);

/** The fields of a log record shown as columns: the decoded event's fields, then other fields. */
export function recordFields(r: LogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const ev = r.event;
  if (ev && typeof ev === 'object' && !Array.isArray(ev)) Object.assign(out, ev);
  else if (ev !== undefined) out.event = ev;
  for (const [k, v] of Object.entries(r)) if (!RESERVED.has(k) && !(k in out)) out[k] = v;
  return out;
}

export function logTime(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Lays out log records as a table whose columns are fixed by the first records seen. */
export class LogTable {
  columns: string[] = [];
  widths: number[] = [];
  showSource = false;
  private headerDone = false;

  constructor(readonly write: (s: string) => void) {}

  private row(r: LogRecord): string[] {
    const f = recordFields(r);
    const cells = [logTime(r.ts)];
    if (this.showSource) cells.push(cell(r.source));
    for (const c of this.columns) cells.push(cell(f[c]));
    const extra = Object.keys(f).filter((k) => !this.columns.includes(k));
    if (extra.length) cells[cells.length - 1] += `  ${extra.map((k) => `${k}=${cell(f[k])}`).join(' ')}`;
    return cells;
  }

  private headerCells(): string[] {
    return ['TIME', ...(this.showSource ? ['SOURCE'] : []), ...this.columns.map((c) => c.toUpperCase())];
  }

  /** Writes records; the first call fixes the columns and their widths from what it is given. */
  add(records: LogRecord[]): void {
    if (records.length === 0) return;
    if (!this.headerDone) {
      const cols: string[] = [];
      const sources = new Set<unknown>();
      for (const r of records) {
        sources.add(r.source);
        for (const k of Object.keys(recordFields(r))) if (!cols.includes(k)) cols.push(k);
      }
      this.columns = cols;
      this.showSource = sources.size > 1;
      const head = this.headerCells();
      const rows = records.map((r) => this.row(r));
      this.widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
      this.headerDone = true;
      this.write(this.line(head));
      for (const r of rows) this.write(this.line(r));
      return;
    }
    for (const r of records) this.write(this.line(this.row(r)));
  }

  private line(cells: string[]): string {
    return `${cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(this.widths[i] ?? c.length)))
      .join('   ')
      .trimEnd()}\n`;
  }
}
