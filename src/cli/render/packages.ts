// Packages in the local store (kbpf images, rmi).
import type { PackageSummary } from '../../package/layout-store.js';
import type { PullResult, PushResult } from '../../package/registry-client.js';
import { type Column, type ListFormat, list } from './output.js';
import { ago, cell, shortDigest, size } from './values.js';

/** One row per tag (a package without tags is one <none> row). */
interface PackageRow {
  p: PackageSummary;
  tag: string;
}

export const PACKAGE_COLUMNS: readonly Column<PackageRow>[] = [
  { header: 'NAME', value: (r) => cell(r.p.name) },
  { header: 'TAG', value: (r) => cell(r.tag) },
  { header: 'DIGEST', value: (r) => shortDigest(r.p.digest) },
  { header: 'VERSION', value: (r) => cell(r.p.version) },
  { header: 'SIZE', value: (r) => size(r.p.size) },
  { header: 'CREATED', value: (r) => ago(r.p.created) },
  { header: 'ARTIFACT TYPE', value: (r) => cell(r.p.artifactType), wide: true },
];

/** kbpf images */
export function renderPackages(format: ListFormat, packages: readonly PackageSummary[]): string {
  const rows = packages.flatMap((p) => (p.tags.length ? p.tags : ['<none>']).map((tag) => ({ p, tag })));
  return list(format, rows, PACKAGE_COLUMNS, packages);
}

/** kbpf images -q: references, name:tag (or name@digest for a package without tags) */
export function renderPackageReferences(packages: readonly PackageSummary[]): string {
  return packages
    .flatMap((p) => (p.tags.length ? p.tags.map((t) => `${p.name}:${t}`) : [`${p.name}@${p.digest}`]))
    .map((r) => `${cell(r)}\n`)
    .join('');
}

/** kbpf rmi: what went */
export function renderRemoved(r: {
  removed: string[];
  instancesRemoved: string[];
  blobsRemoved?: number;
  freedBytes?: number;
}): string {
  return [
    ...r.instancesRemoved.map((i) => `removed instance ${cell(i)}\n`),
    ...r.removed.map((x) => `removed ${cell(x)}\n`),
    ...(r.blobsRemoved
      ? [`freed ${r.freedBytes ?? 0} bytes (${r.blobsRemoved} blob(s) no package or revision uses)\n`]
      : []),
  ].join('');
}

/** kbpf push: where it went, and the signatures that went with it */
export function renderPushed(r: PushResult): string {
  const sigs = r.signatures ? `signatures: ${r.signatures}\n` : '';
  return `pushed ${cell(r.reference)}\ndigest: ${r.digest}\n${sigs}`;
}

/** kbpf pull: the local reference, and the signatures that came with it */
export function renderPulled(r: PullResult): string {
  const sigs = r.signatures ? `signatures: ${r.signatures}\n` : '';
  return `pulled ${cell(r.localReference)}\ndigest: ${r.digest}\n${sigs}`;
}
