// An instance's maps with their entries, and its global variables, decoded from BTF (kbpf maps);
// stacks as their frames.
import type { MapDump, VariableDump } from '../../agent/api-client.js';
import { histogramSlots, renderHistogram } from './histogram.js';
import { data, isData, type ListFormat, table } from './output.js';
import { cell } from './values.js';

/** A map whose values are log2 histograms: one histogram per key that counted something. */
function renderHistograms(m: MapDump, hists: (number[] | undefined)[]): string {
  const used = m.entries.map((e, i) => [e[0], hists[i]!] as const).filter(([, h]) => h.some((n) => n > 0));
  if (used.length === 0) return '  (no values)\n';
  const single = m.entries.length === 1;
  return used
    .map(([k, h]) => `${single ? '' : `  key ${cell(k)}\n`}${renderHistogram(h, m.linear).replace(/^(?=.)/gm, '  ')}`)
    .join('\n');
}

const indent = (text: string, by = '  '): string => text.replace(/^(?=.)/gm, by);

/** A number as the BTF decoding gives it: a number, or a decimal string (64-bit values past 2^53). */
const isCount = (v: unknown): boolean => typeof v === 'number' || (typeof v === 'string' && /^-?\d+$/.test(v));

/**
 * One global variable: a log2 histogram drawn (or one per index of an array of them, "hists[3]"),
 * an array of numbers as an INDEX VALUE table of those that are not 0, anything else as
 * "name (type) = value".
 */
function renderVariable(v: VariableDump, linear = false): string {
  const head = `${cell(v.name)} (${cell(v.type)})`;
  const one = histogramSlots(v.value);
  if (one) return `${head}\n${indent(renderHistogram(one, linear))}`;
  if (Array.isArray(v.value) && v.value.length > 0) {
    const hists = v.value.map(histogramSlots);
    if (hists.every((h) => h)) {
      const used = hists.map((h, i) => [i, h!] as const).filter(([, h]) => h.some((n) => n > 0));
      if (used.length === 0) return `${head}: (no values)\n`;
      return `${head}\n${used.map(([i, h]) => indent(`${cell(v.name)}[${i}]\n${indent(renderHistogram(h, linear))}`)).join('')}`;
    }
    if (v.value.every(isCount)) {
      const rows = v.value.map((x, i) => [String(i), cell(x)]).filter(([, x]) => x !== '0');
      if (rows.length === 0) return `${head}: all ${v.value.length} are 0\n`;
      const zeros = v.value.length - rows.length;
      return `${head}\n${indent(table(['INDEX', 'VALUE'], rows) + (zeros ? `(${zeros} more ${zeros === 1 ? 'is' : 'are'} 0)\n` : ''))}`;
    }
  }
  return `${head} = ${cell(v.value)}\n`;
}

/** A data section of global variables: .bss and .data as they are now, .rodata as the config the programs run with. */
function renderSection(m: MapDump): string {
  const what = m.section!.startsWith('.rodata') ? 'config' : 'global variables';
  const of = m.object ? ` of ${cell(m.object)}` : '';
  return `${cell(m.section)}${of} (${what})\n${indent((m.variables ?? []).map((v) => renderVariable(v, m.linear)).join(''))}`;
}

/** A stack trace map: each stack's id, then its frames one a line, innermost first. */
function renderStacks(m: MapDump): string {
  return m.entries
    .map(([k, v]) => `  stack ${cell(k)}\n${(v as unknown[]).map((f) => `    ${cell(f)}\n`).join('')}`)
    .join('');
}

const isFrames = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The fields of a key or value, nested structs' as PARENT.FIELD: its stacks' frames apart from the rest. */
function split(v: unknown, at = ''): { scalars: string[]; stacks: [string, string[]][] } {
  const out = { scalars: [] as string[], stacks: [] as [string, string[]][] };
  if (!isRecord(v)) {
    if (v !== undefined) out.scalars.push(cell(v));
    return out;
  }
  for (const [k, x] of Object.entries(v)) {
    if (isFrames(x)) out.stacks.push([at + k, x]);
    else if (isRecord(x)) {
      const sub = split(x, `${at}${k}.`);
      out.scalars.push(...sub.scalars);
      out.stacks.push(...sub.stacks);
    } else out.scalars.push(`${cell(at + k)}=${cell(x)}`);
  }
  return out;
}

function hasStacks(v: unknown): boolean {
  return isRecord(v) && Object.values(v).some((x) => isFrames(x) || hasStacks(x));
}

/**
 * Entries whose keys or values hold stacks (ids the agent turned into frames, as bcc's profile
 * counts by stack): the other fields on a line, then each stack's frames one a line; the
 * largest numeric values first, as the tools print them.
 */
function renderStackEntries(m: MapDump): string {
  const entries = [...m.entries];
  if (entries.every(([, v]) => typeof v === 'number')) entries.sort((a, b) => (b[1] as number) - (a[1] as number));
  return entries
    .map(([k, v]) => {
      const key = split(k);
      const value = split(v);
      const head = `  ${[...key.scalars, ...(value.scalars.length ? ['→', ...value.scalars] : [])].join(' ')}\n`;
      const stacks = [...key.stacks, ...value.stacks]
        .map(([name, frames]) => `    ${cell(name)}:\n${frames.map((f) => `      ${cell(f)}\n`).join('')}`)
        .join('');
      return head + stacks;
    })
    .join('');
}

/**
 * One block per map: "name (type, N entries)", then its entries as an indented KEY VALUE table,
 * or, for a map of log2 histograms (values with a `slots` array), histograms like the tools draw;
 * then one block per data section of global variables (.bss, .data, .rodata), by variable.
 */
export function renderMaps(format: ListFormat, maps: readonly MapDump[]): string {
  if (isData(format)) return data(format, maps);
  const parts = maps.map((m) => {
    if (m.variables) return renderSection(m);
    const n = m.entries.length;
    const head = `${cell(m.name)} (${cell(m.type)}, ${n} entr${n === 1 ? 'y' : 'ies'})\n`;
    if (n === 0) return head;
    if (m.type === 'stack_trace' && m.entries.every(([, v]) => Array.isArray(v))) return head + renderStacks(m);
    if (m.entries.some(([k, v]) => hasStacks(k) || hasStacks(v))) return head + renderStackEntries(m);
    const hists = m.entries.map(([, v]) => histogramSlots(v));
    if (hists.every((h) => h)) return head + renderHistograms(m, hists);
    return (
      head +
      table(
        ['KEY', 'VALUE'],
        m.entries.map(([k, v]) => [cell(k), cell(v)]),
      ).replace(/^/gm, '  ')
    );
  });
  return parts.join('\n');
}
