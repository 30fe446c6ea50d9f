// Event log records: kbpf logs (a table whose columns are the decoded event's fields, or one
// JSON line / YAML document per record) and kubectl bpf logs (one line per record, with its node).
import type { LogRecord } from '../../agent/log-store.js';
import type { EventFormat } from '../../package/package-spec.js';
import { escapeControl } from './escape.js';
import { formatEvent } from './fields.js';
import { yaml } from './output.js';
import { cell } from './values.js';

export const LOG_FORMATS = ['table', 'json', 'yaml'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const RESERVED = new Set(['ts', 'seq', 'source', 'event']);

/** Ring buffers that carry a program's bpf_printk lines (kbpf build names them so). */
export const PRINTK_SOURCE = 'kbpf_printk';

/** The bpf_printk line a record carries, or undefined when it is an event. */
export function printkLine(r: Record<string, unknown>): string | undefined {
  if (typeof r.source !== 'string' || !r.source.startsWith(PRINTK_SOURCE)) return undefined;
  const line = (r.event as { line?: unknown } | undefined)?.line;
  return typeof line === 'string' ? line.replace(/\n$/, '') : undefined;
}

/** Whether a record passes `kbpf logs --source`: a buffer's name, or "printk" for the bpf_printk lines. */
export function sourceMatches(r: LogRecord, sources: readonly string[]): boolean {
  if (sources.length === 0) return true;
  const printk = typeof r.source === 'string' && r.source.startsWith(PRINTK_SOURCE);
  return sources.some((s) => (s === 'printk' ? printk : r.source === s));
}

/** The fields of a log record shown as columns: the decoded event's fields, then other fields. */
export function recordFields(r: LogRecord, formats?: ReadonlyMap<string, EventFormat>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const ev = formats && typeof r.source === 'string' ? formatEvent(r.event, formats.get(r.source)) : r.event;
  if (ev && typeof ev === 'object' && !Array.isArray(ev)) Object.assign(out, ev);
  else if (ev !== undefined) out.event = ev;
  for (const [k, v] of Object.entries(r)) if (!RESERVED.has(k) && !(k in out)) out[k] = v;
  return out;
}

/** 10:04:05.123 (local time) */
export function logTime(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return cell(ts);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Lays out log records as a table whose columns are fixed by the first records seen. */
export class LogTable {
  columns: string[] = [];
  widths: number[] = [];
  showSource = false;
  private headerDone = false;

  /**
   * `formats`: per event source, how fields read (from the package spec); bpf_printk lines are
   * shown as "printk: LINE" outside the columns.
   */
  constructor(
    readonly write: (s: string) => void,
    readonly formats?: ReadonlyMap<string, EventFormat>,
  ) {}

  private row(r: LogRecord): string[] {
    const line = printkLine(r);
    if (line !== undefined)
      return [logTime(r.ts), ...(this.showSource ? [cell(r.source)] : []), `printk: ${cell(line)}`];
    const f = recordFields(r, this.formats);
    const cells = [logTime(r.ts)];
    if (this.showSource) cells.push(cell(r.source));
    for (const c of this.columns) cells.push(cell(f[c]));
    const extra = Object.keys(f).filter((k) => !this.columns.includes(k));
    if (extra.length) cells[cells.length - 1] += `  ${extra.map((k) => `${cell(k)}=${cell(f[k])}`).join(' ')}`;
    return cells;
  }

  private headerCells(): string[] {
    return ['TIME', ...(this.showSource ? ['SOURCE'] : []), ...this.columns.map((c) => cell(c.toUpperCase()))];
  }

  /** Writes records; the first call fixes the columns and their widths from what it is given. */
  add(records: readonly LogRecord[]): void {
    if (records.length === 0) return;
    if (!this.headerDone) {
      const cols: string[] = [];
      const sources = new Set<unknown>();
      for (const r of records) {
        if (printkLine(r) !== undefined) continue;
        sources.add(r.source);
        for (const k of Object.keys(recordFields(r, this.formats))) if (!cols.includes(k)) cols.push(k);
      }
      this.columns = cols;
      this.showSource = sources.size > 1;
      const head = this.headerCells();
      const rows = records.map((r) => this.row(r));
      const sized = rows.filter((_, i) => printkLine(records[i]!) === undefined);
      this.widths = head.map((h, i) => Math.max(h.length, ...sized.map((r) => (r[i] ?? '').length)));
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

/** Records as data: one JSON object per line (NDJSON), or one YAML document each. */
export function renderRecords(format: 'json' | 'yaml', records: readonly object[]): string {
  if (format === 'yaml') return records.map((r) => `---\n${yaml(r)}`).join('');
  return records.map((r) => `${JSON.stringify(r)}\n`).join('');
}

export const NODE_LOG_FORMATS = ['text', 'json', 'yaml'] as const;
export type NodeLogFormat = (typeof NODE_LOG_FORMATS)[number];

/** One record of kubectl bpf logs: "NODE  TIME  SOURCE {event}" (or the record with its node as data). */
export function renderNodeRecord(format: NodeLogFormat, node: string, r: Record<string, unknown>): string {
  if (format !== 'text') return renderRecords(format, [{ node, ...r }]);
  const { ts, seq: _seq, ...rest } = r;
  const line = printkLine(rest);
  const body =
    line !== undefined
      ? `printk: ${line}`
      : rest.source !== undefined && rest.event !== undefined && Object.keys(rest).length === 2
        ? `${String(rest.source)} ${JSON.stringify(rest.event)}`
        : JSON.stringify(rest);
  return `${escapeControl(`${node}  ${String(ts)}  ${body}`)}\n`;
}

/**
 * kbpf run --rm: an iterator's output lines as they were printed; other records (events the
 * programs sent meanwhile) as the log table.
 */
export function renderRunOutput(records: readonly LogRecord[]): string {
  let out = '';
  const rest: LogRecord[] = [];
  for (const r of records) {
    const ev = r.event as { output?: unknown } | undefined;
    if (ev && typeof ev === 'object' && typeof ev.output === 'string') out += `${escapeControl(ev.output)}\n`;
    else rest.push(r);
  }
  if (rest.length) {
    const t = new LogTable((s) => {
      out += s;
    });
    t.add(rest);
  }
  return out;
}
