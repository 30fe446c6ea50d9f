// kubectl bpf packages (images), show, clear (rmi): the packages stored in the cluster
// (BpfPackage objects) with the deployments that run them, as the prototype listed them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { outputOption } from '../../../cli/options.js';
import { LIST_FORMATS, type ListFormat, TEXT_FORMATS, type TextFormat } from '../../../cli/render/output.js';
import { cell } from '../../../cli/render/values.js';
import { ANNOTATION_TITLE, KBPF_SOURCE } from '../../../package/media-types.js';
import { type BpfDeployment, type BpfNodeInstance, type BpfPackage, PLURAL } from '../../api.js';
import { parseClusterRef } from '../../cluster-packages.js';
import type { KbpfApi } from '../../kube.js';
import { type PackageDetails, type PackageRow, renderPackageDetails, renderPackages } from '../render/packages.js';
import { api, examples } from '../resources.js';

/** Does a deployment (its image) name this package object? By digest, or by name (and version) when unpinned. */
function uses(image: string, p: BpfPackage, newest: (name: string, version?: string) => string | undefined): boolean {
  const ref = parseClusterRef(image);
  if (!ref || ref.name !== p.spec.name) return false;
  if (ref.digest) return ref.digest === p.spec.digest;
  return newest(ref.name, ref.version) === p.spec.digest;
}

interface ClusterView {
  packages: BpfPackage[];
  deployments: BpfDeployment[];
  instances: BpfNodeInstance[];
}

async function clusterView(a: KbpfApi, selector?: string): Promise<ClusterView> {
  const [packages, deployments, instances] = await Promise.all([
    a.list(PLURAL.packages, selector ? { labelSelector: selector } : {}),
    a.list(PLURAL.deployments),
    a.list(PLURAL.nodeInstances),
  ]);
  return { packages: packages.items, deployments: deployments.items, instances: instances.items };
}

function rowsOf(v: ClusterView): PackageRow[] {
  const newest = (name: string, version?: string) =>
    v.packages
      .filter((p) => p.spec.name === name && (version === undefined || p.spec.version === version))
      .sort((x, y) => String(x.metadata.creationTimestamp).localeCompare(String(y.metadata.creationTimestamp)))
      .at(-1)?.spec.digest;
  return v.packages
    .map((pkg) => {
      const deployments = v.deployments
        .filter((d) => uses(d.spec.package.image, pkg, newest))
        .map((d) => d.metadata.name);
      const instances = v.instances.filter(
        (n) => parseClusterRef(n.spec.image)?.name === pkg.spec.name && n.spec.digest === pkg.spec.digest,
      ).length;
      return { pkg, deployments, instances };
    })
    .sort(
      (x, y) =>
        x.pkg.spec.name.localeCompare(y.pkg.spec.name) ||
        String(x.pkg.metadata.creationTimestamp).localeCompare(String(y.pkg.metadata.creationTimestamp)),
    );
}

/** The packages a name picks: NAME (every digest), NAME:VERSION, NAME@sha256:… or an object name. */
function pick(rows: PackageRow[], name: string): PackageRow[] {
  const m = /^([^:@]+)(?::([^@]+))?(?:@(sha256:[a-f0-9]{64}))?$/.exec(name);
  const [, n, version, digest] = m ?? [];
  return rows.filter(
    (r) =>
      r.pkg.metadata.name === name ||
      (r.pkg.spec.name === n &&
        (version === undefined || r.pkg.spec.version === version) &&
        (digest === undefined || r.pkg.spec.digest === digest)),
  );
}

/** The source files a package carries (its source.tar.gz layer), by path. */
export function sourceFiles(p: BpfPackage): Record<string, string> {
  const layer = p.spec.blobs.find((b) => b.mediaType === KBPF_SOURCE);
  if (!layer) return {};
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-source-'));
  try {
    writeFileSync(join(dir, 'source.tar.gz'), Buffer.from(layer.data, 'base64'));
    const out = join(dir, 'src');
    mkdirSync(out);
    execFileSync('tar', ['-xzf', join(dir, 'source.tar.gz'), '-C', out, '--no-same-owner', '--no-same-permissions']);
    const files: Record<string, string> = {};
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const full = join(d, e.name);
        if (e.isDirectory()) walk(full);
        else if (e.isFile()) files[relative(out, full)] = readFileSync(full, 'utf8');
      }
    };
    walk(out);
    return files;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function details(row: PackageRow): PackageDetails {
  const config = row.pkg.spec.blobs[0]
    ? (JSON.parse(Buffer.from(row.pkg.spec.blobs[0].data, 'base64').toString('utf8')) as Record<string, unknown>)
    : {};
  const manifest = JSON.parse(Buffer.from(row.pkg.spec.manifest, 'base64').toString('utf8')) as {
    layers?: { mediaType: string; size: number; digest: string; annotations?: Record<string, string> }[];
  };
  return {
    row,
    config,
    layers: (manifest.layers ?? []).map((l) => ({
      title: l.annotations?.[ANNOTATION_TITLE] ?? '',
      mediaType: l.mediaType,
      size: l.size,
      digest: l.digest,
    })),
    source: sourceFiles(row.pkg),
  };
}

export function addPackageVerbs(root: Command): void {
  examples(
    root
      .command('packages')
      .alias('images')
      .description('the packages stored in the cluster (BpfPackages), with the deployments and instances that run them')
      .argument('[package]', 'only this package (NAME, NAME:VERSION or NAME@sha256:…)')
      .option('-l, --selector <labels>', 'only packages with these labels')
      .addOption(outputOption(LIST_FORMATS)),
    ['kubectl bpf packages', 'kubectl bpf images opensnoop -o wide', 'kubectl bpf packages -o json'],
  ).action(async (name: string | undefined, o: { selector?: string; output: ListFormat }, cmd: Command) => {
    const rows = rowsOf(await clusterView(api(cmd), o.selector));
    const shown = name ? pick(rows, name) : rows;
    if (name && !shown.length) throw new Error(`no package ${name} in the cluster (see: kubectl bpf packages)`);
    process.stdout.write(renderPackages(o.output, shown));
  });

  examples(
    root
      .command('show')
      .description("a package's details: programs, maps, config variables, layers, who runs it, and its source")
      .argument('<package>', 'NAME (the newest), NAME:VERSION, NAME@sha256:… or the object name')
      .addOption(outputOption(TEXT_FORMATS)),
    ['kubectl bpf show opensnoop', 'kubectl bpf show opensnoop:1.0 -o yaml'],
  ).action(async (name: string, o: { output: TextFormat }, cmd: Command) => {
    const found = pick(rowsOf(await clusterView(api(cmd))), name);
    const row = found.at(-1);
    if (!row) throw new Error(`no package ${name} in the cluster (see: kubectl bpf packages)`);
    process.stdout.write(renderPackageDetails(o.output, details(row)));
  });

  examples(
    root
      .command('clear')
      .alias('rmi')
      .description(
        'remove packages from the cluster; refused for a package that deployments still run, unless -f, which removes those deployments (and their instances) too',
      )
      .argument('[package...]', 'NAME (every version), NAME:VERSION, NAME@sha256:… or the object name')
      .option('-a, --all', 'every package')
      .option('-f, --force', 'also remove the deployments (and their instances) that run it'),
    ['kubectl bpf clear opensnoop', 'kubectl bpf rmi -f opensnoop:1.0', 'kubectl bpf clear -a -f'],
  ).action(async (names: string[], o: { all?: boolean; force?: boolean }, cmd: Command) => {
    if (!names.length && !o.all) throw new Error('clear: name packages, or say -a/--all');
    if (names.length && o.all) throw new Error('clear: give package names or -a/--all, not both');
    const a = api(cmd);
    const rows = rowsOf(await clusterView(a));
    const chosen = new Map<string, PackageRow>();
    for (const n of o.all ? [] : names) {
      const got = pick(rows, n);
      if (!got.length) throw new Error(`no package ${n} in the cluster (see: kubectl bpf packages)`);
      for (const r of got) chosen.set(r.pkg.metadata.name, r);
    }
    if (o.all) for (const r of rows) chosen.set(r.pkg.metadata.name, r);
    const busy = [...chosen.values()].filter((r) => r.deployments.length);
    if (busy.length && !o.force)
      throw new Error(
        `${busy
          .map(
            (r) =>
              `package ${r.pkg.spec.name}:${r.pkg.spec.version} (${r.pkg.metadata.name}) is run by ${r.deployments.join(', ')} (${r.instances} instance(s))`,
          )
          .join('; ')}: not removed (-f removes those deployments and their instances too)`,
      );
    const gone = new Set<string>();
    for (const r of busy)
      for (const d of r.deployments) {
        if (gone.has(d)) continue;
        gone.add(d);
        await a.delete(PLURAL.deployments, d);
        process.stdout.write(`bpfdeployment.kbpf.io/${cell(d)} deleted\n`);
      }
    for (const r of chosen.values()) {
      await a.delete(PLURAL.packages, r.pkg.metadata.name);
      process.stdout.write(`bpfpackage.kbpf.io/${cell(r.pkg.metadata.name)} deleted\n`);
    }
  });
}
