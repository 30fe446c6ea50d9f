// An instance's maps with their entries, decoded from BTF (kbpf maps).
import type { MapDump } from '../../agent/api-client.js';
import { data, isData, type ListFormat, table } from './output.js';
import { cell } from './values.js';

/** One block per map: "name (type, N entries)", then its entries as an indented KEY VALUE table. */
export function renderMaps(format: ListFormat, maps: readonly MapDump[]): string {
  if (isData(format)) return data(format, maps);
  const parts = maps.map((m) => {
    const n = m.entries.length;
    const head = `${cell(m.name)} (${cell(m.type)}, ${n} entr${n === 1 ? 'y' : 'ies'})\n`;
    if (n === 0) return head;
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
