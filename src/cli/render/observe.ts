// What an observe-only run (`kbpf run --engine userspace`) saw: packets, each program's verdicts
// and faults, its maps.
import type { ObserveReport } from '../../embed/observe.js';
import { renderMaps } from './maps.js';
import { data, type TextFormat, table } from './output.js';
import { cell } from './values.js';

export function renderObserveReport(format: TextFormat, r: ObserveReport): string {
  if (format !== 'text') return data(format, r);
  const rows = r.programs.map((p) => [
    p.name,
    p.type,
    Object.entries(p.verdicts)
      .map(([v, n]) => `${v}: ${n}`)
      .join(', ') || '-',
    String(p.faults),
  ]);
  const faults = r.programs
    .filter((p) => p.lastFault)
    .map((p) => `${cell(p.name)}: last fault: ${cell(p.lastFault)}\n`);
  const maps = renderMaps(
    'table',
    r.maps.map((m) => ({ name: m.name, type: 'map', entries: m.entries.map(([k, v]) => [cell(k), cell(v)]) })) as never,
  );
  return `observed ${r.packets} packet(s) on ${cell(r.iface)} (observe-only: no verdict was enforced)\n${table(['PROGRAM', 'TYPE', 'VERDICTS', 'FAULTS'], rows)}${faults.join('')}${maps}`;
}
