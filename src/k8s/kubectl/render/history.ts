// Revisions of a deployment in a cluster (kubectl bpf rollout history), on the shared renderers.
import { type Column, type ListFormat, list } from '../../../cli/render/output.js';
import { cell } from '../../../cli/render/values.js';
import type { BpfRevision } from '../../api.js';

interface DeploymentRevisionRow {
  r: BpfRevision;
  current: boolean;
}

const DEPLOYMENT_REVISION_COLUMNS: readonly Column<DeploymentRevisionRow>[] = [
  { header: 'REVISION', value: (x) => String(x.r.revision) },
  { header: 'DIGEST', value: (x) => cell(x.r.digest.slice(0, 19)) },
  { header: 'IMAGE', value: (x) => cell(x.r.template.package.image) },
  { header: 'CONFIG', value: (x) => cell(JSON.stringify(x.r.template.config ?? {})) },
  { header: 'ATTACH', value: (x) => cell(JSON.stringify(x.r.template.attach ?? {})), wide: true },
  { header: '', value: (x) => (x.current ? '(current)' : '') },
];

/** kubectl bpf rollout history: the deployment's revisions, `(current)` marking its template's */
export function renderDeploymentHistory(
  format: ListFormat,
  revisions: readonly BpfRevision[],
  currentTemplateHash: string,
): string {
  return list(
    format,
    revisions.map((r) => ({ r, current: r.templateHash === currentTemplateHash })),
    DEPLOYMENT_REVISION_COLUMNS,
    revisions,
  );
}
