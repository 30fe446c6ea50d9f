// Packages stored in the cluster (kubectl bpf packages, show), on the shared renderers.

import { escapeLines } from '../../../cli/render/escape.js';
import { type Column, data, isData, type ListFormat, list, table } from '../../../cli/render/output.js';
import { ago, cell, shortDigest, size } from '../../../cli/render/values.js';
import type { BpfPackage } from '../../api.js';

/** A package with the deployments that run it and their instances. */
export interface PackageRow {
  pkg: BpfPackage;
  deployments: string[];
  instances: number;
}

const PACKAGE_COLUMNS: readonly Column<PackageRow>[] = [
  { header: 'PACKAGE', value: (r) => cell(r.pkg.spec.name) },
  { header: 'VERSION', value: (r) => cell(r.pkg.spec.version) },
  { header: 'DIGEST', value: (r) => shortDigest(r.pkg.spec.digest) },
  { header: 'SIZE', value: (r) => size(r.pkg.spec.size) },
  { header: 'INSTANCES', value: (r) => String(r.instances) },
  { header: 'DEPLOYMENTS', value: (r) => cell(r.deployments.join(',')) },
  { header: 'SIGNATURES', value: (r) => String(r.pkg.spec.signatures?.length ?? 0), wide: true },
  { header: 'OBJECT', value: (r) => cell(r.pkg.metadata.name), wide: true },
  { header: 'CREATED', value: (r) => ago(r.pkg.metadata.creationTimestamp) },
];

/** kubectl bpf packages: one row per package digest; as data, the rows without the blobs. */
export function renderPackages(format: ListFormat, rows: readonly PackageRow[]): string {
  return list(
    format,
    rows,
    PACKAGE_COLUMNS,
    rows.map((r) => ({ ...summary(r.pkg), deployments: r.deployments, instances: r.instances })),
  );
}

function summary(p: BpfPackage): Record<string, unknown> {
  return {
    object: p.metadata.name,
    name: p.spec.name,
    version: p.spec.version,
    digest: p.spec.digest,
    size: p.spec.size,
    signatures: p.spec.signatures?.length ?? 0,
    created: p.metadata.creationTimestamp,
  };
}

export interface PackageDetails {
  row: PackageRow;
  /** the package manifest (the config blob): programs, maps, config variables */
  config: Record<string, unknown>;
  layers: { title: string; mediaType: string; size: number; digest: string }[];
  /** the source files, by path (when the package carries its source) */
  source: Record<string, string>;
}

/** kubectl bpf show: a package's details and its source. */
export function renderPackageDetails(format: 'text' | 'json' | 'yaml', d: PackageDetails): string {
  if (isData(format))
    return data(format, {
      ...summary(d.row.pkg),
      deployments: d.row.deployments,
      instances: d.row.instances,
      manifest: d.config,
      layers: d.layers,
      source: d.source,
    });
  const c = d.config as {
    description?: string;
    programs?: { name: string; type?: string; attach?: unknown }[];
    maps?: { name: string; type?: string }[];
    config?: { name: string; type?: string; default?: unknown }[];
  };
  const p = d.row.pkg;
  const out = [
    `Package:      ${cell(p.spec.name)}:${cell(p.spec.version)}\n`,
    `Reference:    bpfpackage://${cell(p.spec.name)}@${p.spec.digest}\n`,
    `Object:       bpfpackage.kbpf.io/${cell(p.metadata.name)}\n`,
    ...(c.description ? [`Description:  ${cell(c.description)}\n`] : []),
    `Size:         ${size(p.spec.size)}\n`,
    `Signatures:   ${p.spec.signatures?.length ?? 0}\n`,
    `Created:      ${cell(p.metadata.creationTimestamp)}\n`,
    `Deployments:  ${cell(d.row.deployments.join(', ') || '<none>')} (${d.row.instances} instance(s))\n`,
    '\nPrograms:\n',
    table(
      ['NAME', 'TYPE', 'ATTACH'],
      (c.programs ?? []).map((x) => [cell(x.name), cell(x.type), cell(x.attach ?? '')]),
    ),
    '\nMaps:\n',
    table(
      ['NAME', 'TYPE'],
      (c.maps ?? []).map((m) => [cell(m.name), cell(m.type)]),
    ),
  ];
  if (c.config?.length)
    out.push(
      '\nConfig:\n',
      table(
        ['NAME', 'TYPE', 'DEFAULT'],
        c.config.map((v) => [cell(v.name), cell(v.type), cell(v.default ?? '')]),
      ),
    );
  out.push(
    '\nLayers:\n',
    table(
      ['TITLE', 'MEDIA TYPE', 'SIZE'],
      d.layers.map((l) => [cell(l.title), cell(l.mediaType), size(l.size)]),
    ),
  );
  const files = Object.keys(d.source).sort();
  if (!files.length) out.push('\nSource: not in the package\n');
  for (const f of files) out.push(`\nSource ${cell(f)}:\n${escapeLines(d.source[f]!).replace(/\n?$/, '\n')}`);
  return out.join('');
}
