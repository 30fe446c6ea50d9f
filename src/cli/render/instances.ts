// Instances on a node (kbpf ps, run, upgrade, rollback, stop, start).
import type { InstanceStatus } from '../../agent/types.js';
import { escapeControl } from './escape.js';
import { type Column, data, isData, type ListFormat, list, type TextFormat, table } from './output.js';
import { ago, cell, keyValues, shortDigest, shortRef } from './values.js';

/** running, stopped, or "pending (want running)" while the phase is not yet what is wanted. */
export function statusText(s: InstanceStatus): string {
  if (s.phase === 'running' && s.desired === 'running') return 'running';
  if (s.phase === 'stopped' && s.desired === 'stopped') return 'stopped';
  return s.desired === s.phase ? s.phase : `${s.phase} (want ${s.desired})`;
}

export const INSTANCE_COLUMNS: readonly Column<InstanceStatus>[] = [
  { header: 'NAME', value: (s) => cell(s.name) },
  { header: 'IMAGE', value: (s) => shortRef(s.image) },
  { header: 'REV', value: (s) => String(s.revision) },
  { header: 'STATUS', value: statusText },
  { header: 'PROGRAMS', value: (s) => String(s.programs.length) },
  { header: 'EVENTS', value: (s) => `${s.events.received}${s.events.lost ? ` (${s.events.lost} lost)` : ''}` },
  { header: 'CREATED', value: (s) => ago(s.createdAt) },
  { header: 'DIGEST', value: (s) => shortDigest(s.digest), wide: true },
  {
    header: 'PROG IDS',
    value: (s) =>
      s.programs
        .filter((p) => !p.state || p.state === 'running')
        .map((p) => `${cell(p.name)}#${p.progId ?? '?'}`)
        .join(','),
    wide: true,
  },
  {
    header: 'VARIANTS',
    value: (s) =>
      s.programs
        .filter((p) => p.state && p.state !== 'running')
        .map((p) => `${cell(p.name)}:${p.state}`)
        .join(','),
    wide: true,
  },
  {
    header: 'MESSAGE',
    value: (s) => cell([s.message, ...(s.warnings ?? []), ...objectNotes(s)].filter(Boolean).join('; ')),
    wide: true,
  },
];

/** "object x.bpf.o: built for cpu v3 (the default object was refused by the verifier: …)", one per such object. */
export function objectNotes(s: InstanceStatus): string[] {
  return (s.objects ?? []).map(
    (o) =>
      `object ${o.object}: built for cpu ${o.cpu}${o.reason ? ` (the default object was refused by the verifier: ${o.reason})` : ''}`,
  );
}

/** kbpf ps */
export function renderInstances(format: ListFormat, instances: readonly InstanceStatus[]): string {
  return list(format, instances, INSTANCE_COLUMNS);
}

/** kbpf ps -q */
export function renderInstanceNames(instances: readonly InstanceStatus[]): string {
  return instances.map((s) => `${cell(s.name)}\n`).join('');
}

/** "name: stopped", after stop and start */
export function renderInstanceState(s: InstanceStatus): string {
  return `${cell(s.name)}: ${statusText(s)}\n`;
}

/** One instance: a headline, its message, its programs and its config. */
export function describeInstance(s: InstanceStatus): string {
  const lines = [
    `${cell(s.name)}: ${statusText(s)}, ${cell(s.image)} (${shortDigest(s.digest)}), revision ${s.revision}`,
  ];
  if (s.message) lines.push(`  ${escapeControl(s.message)}`);
  for (const w of s.warnings ?? []) lines.push(`  warning: ${escapeControl(w)}`);
  for (const n of objectNotes(s)) lines.push(`  ${escapeControl(n)}`);
  const states = s.programs.some((p) => p.state);
  const rows = s.programs.map((p) => [
    `  ${cell(p.name)}`,
    cell(p.type),
    cell(p.attach),
    ...(states ? [cell(p.state ?? '')] : []),
    p.progId !== undefined ? String(p.progId) : '',
    p.linkId !== undefined ? String(p.linkId) : '',
  ]);
  if (rows.length)
    lines.push(
      table(['  PROGRAM', 'TYPE', 'ATTACH', ...(states ? ['STATE'] : []), 'PROG ID', 'LINK ID'], rows).trimEnd(),
    );
  for (const p of s.programs.filter((x) => x.reason)) lines.push(`  ${cell(p.name)}: ${escapeControl(p.reason!)}`);
  for (const h of s.hooks ?? []) {
    lines.push(`  on ${escapeControl(h.attach)}, in run order:`);
    h.programs.forEach((p, i) => {
      const who = p.instance ? `${cell(p.instance)}/${cell(p.program ?? '?')}` : `${cell(p.name ?? '?')} (not kbpf's)`;
      lines.push(`    ${i + 1}. ${who}  prog ${p.progId}`);
    });
  }
  const cfg = keyValues(s.config);
  if (cfg) lines.push(`  config: ${cfg}`);
  return `${lines.join('\n')}\n`;
}

/** run, upgrade, rollback: the instance as text, JSON or YAML */
export function renderInstance(format: TextFormat, s: InstanceStatus): string {
  return isData(format) ? data(format, s) : describeInstance(s);
}
