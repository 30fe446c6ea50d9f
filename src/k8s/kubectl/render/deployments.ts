// Deployments in a cluster and their state on each node (kubectl bpf ps): one row per node instance.
import { type Column, type ListFormat, list } from '../../../cli/render/output.js';
import { ago, cell, shortDigest } from '../../../cli/render/values.js';
import type { BpfDeployment, BpfNodeInstance } from '../../api.js';

export const NODE_INSTANCE_COLUMNS: readonly Column<BpfNodeInstance>[] = [
  { header: 'DEPLOYMENT', value: (n) => cell(n.spec.deployment) },
  { header: 'NODE', value: (n) => cell(n.spec.nodeName) },
  {
    header: 'REVISION',
    value: (n) => `${n.status?.revision ?? '-'}${n.status?.revision !== n.spec.revision ? `→${n.spec.revision}` : ''}`,
  },
  { header: 'PHASE', value: (n) => cell(n.status?.phase ?? 'Pending') },
  {
    header: 'PROGRAMS',
    value: (n) => (n.status?.programs ?? []).map((p) => `${cell(p.name)}#${p.progId ?? '?'}`).join(','),
  },
  { header: 'DIGEST', value: (n) => shortDigest(n.status?.digest ?? n.spec.digest), wide: true },
  { header: 'UPDATED', value: (n) => ago(n.status?.updatedAt), wide: true },
  { header: 'IMAGE', value: (n) => cell(n.spec.image), wide: true },
  { header: 'MESSAGE', value: (n) => cell((n.status?.message ?? '').replace(/\s+/g, ' ')) },
];

/** kubectl bpf ps: the node instances by name; as data, the deployments and their instances. */
export function renderDeployments(
  format: ListFormat,
  deployments: readonly BpfDeployment[],
  instances: readonly BpfNodeInstance[],
): string {
  const rows = [...instances].sort((x, y) => x.metadata.name.localeCompare(y.metadata.name));
  return list(format, rows, NODE_INSTANCE_COLUMNS, { deployments, instances });
}
