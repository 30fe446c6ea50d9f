// Revisions of an instance on a node (kbpf history).
import type { Revision } from '../../agent/types.js';
import { type Column, type ListFormat, list } from './output.js';
import { ago, cell, keyValues, shortDigest, shortRef } from './values.js';

interface InstanceRevisionRow {
  r: Revision;
  current: boolean;
}

const INSTANCE_REVISION_COLUMNS: readonly Column<InstanceRevisionRow>[] = [
  { header: 'REVISION', value: (x) => `${x.r.revision}${x.current ? ' *' : ''}` },
  { header: 'IMAGE', value: (x) => shortRef(x.r.image) },
  { header: 'DIGEST', value: (x) => shortDigest(x.r.digest) },
  { header: 'CAUSE', value: (x) => cell(x.r.cause) },
  { header: 'CREATED', value: (x) => ago(x.r.createdAt) },
  { header: 'CONFIG', value: (x) => keyValues(x.r.config) },
  { header: 'ATTACH', value: (x) => (Object.keys(x.r.attach ?? {}).length ? cell(x.r.attach) : ''), wide: true },
];

/** kbpf history: the instance's revisions, `*` marking the current one */
export function renderInstanceHistory(format: ListFormat, revisions: readonly Revision[], current: number): string {
  return list(
    format,
    revisions.map((r) => ({ r, current: r.revision === current })),
    INSTANCE_REVISION_COLUMNS,
    revisions,
  );
}
