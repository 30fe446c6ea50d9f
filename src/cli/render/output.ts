// The output formats of the CLIs (kbpf and kubectl bpf) and the two shapes everything is printed
// in: tables of rows (table, wide) and data (json, yaml). Each result type has its own module
// next to this one saying which columns it has; this one knows how to lay them out.
import { createRequire } from 'node:module';
import { escapeControl } from './escape.js';

/** -o of verbs that print a list */
export const LIST_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
/** -o of verbs that print one result as text */
export const TEXT_FORMATS = ['text', 'json', 'yaml'] as const;
export type ListFormat = (typeof LIST_FORMATS)[number];
export type TextFormat = (typeof TEXT_FORMATS)[number];
export type DataFormat = 'json' | 'yaml';
export type OutputFormat = ListFormat | TextFormat;

export function isData(format: string): format is DataFormat {
  return format === 'json' || format === 'yaml';
}

/** One column of a table. */
export interface Column<T> {
  header: string;
  value(row: T): string;
  /** shown only with -o wide */
  wide?: boolean;
}

/**
 * Left-aligned columns separated by three spaces (like docker ps); the last column is not padded.
 * Every cell is escaped for the terminal (escaping is idempotent: cells may come escaped already).
 */
export function table(header: string[], rows: string[][]): string {
  const safe = rows.map((r) => r.map(escapeControl));
  const head = header.map(escapeControl);
  const widths = head.map((h, i) => Math.max(h.length, ...safe.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return `${[line(head), ...safe.map(line)].join('\n')}\n`;
}

/** Rows laid out by their columns; the wide ones only when asked for. */
export function columnsTable<T>(rows: readonly T[], columns: readonly Column<T>[], wide = false): string {
  const shown = columns.filter((c) => wide || !c.wide);
  return table(
    shown.map((c) => c.header),
    rows.map((r) => shown.map((c) => c.value(r))),
  );
}

const bigintAsString = (_k: string, x: unknown): unknown => (typeof x === 'bigint' ? x.toString() : x);

export function json(v: unknown): string {
  return `${JSON.stringify(v, bigintAsString, 2)}\n`;
}

const require = createRequire(import.meta.url);

/** YAML of the same data the JSON output has (loaded on first use: most runs never need it). */
export function yaml(v: unknown): string {
  const YAML = require('yaml') as typeof import('yaml');
  const plain: unknown = v === undefined ? null : JSON.parse(JSON.stringify(v, bigintAsString));
  return YAML.stringify(plain, { lineWidth: 0 });
}

export function data(format: DataFormat, v: unknown): string {
  return format === 'yaml' ? yaml(v) : json(v);
}

/** A list in any list format: a table (wide or not) of `rows`, or `value` as data (default: the rows). */
export function list<T>(
  format: ListFormat,
  rows: readonly T[],
  columns: readonly Column<T>[],
  value: unknown = rows,
): string {
  return isData(format) ? data(format, value) : columnsTable(rows, columns, format === 'wide');
}
