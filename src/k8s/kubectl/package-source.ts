// What `kubectl bpf run` and `upgrade` deploy, as the reference a BpfDeployment names: sources
// are built here (src/compile, as `kbpf build` does) and the package is stored in the cluster as
// a BpfPackage — or, with --registry, pushed to that registry — with its signatures either way;
// `-p PACKAGE` starts from a package already in the cluster, in the local store, or in a registry.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveAgentPaths } from '../../agent/paths.js';
import { runTarget } from '../../cli/verbs/run-source.js';
import { LayoutStore } from '../../package/layout-store.js';
import { formatReference, parseReference, type Reference, referenceName } from '../../package/reference.js';
import { RegistryClient } from '../../package/registry-client.js';
import { LABEL_PACKAGE, PLURAL } from '../api.js';
import { clusterPackageName, clusterRef, isClusterRef, packageObject, parseClusterRef } from '../cluster-packages.js';
import { type KbpfApi, statusCode } from '../kube.js';

export interface PackageSourceOptions {
  /** -p: a package in the cluster (NAME[:VERSION][@sha256:…]), the local store, or a registry */
  package?: string;
  /** push to this registry repository (HOST/REPOSITORY[:TAG]) instead of storing it in the cluster */
  registry?: string;
  /** the local package store (-p of a local package; where sources are built: default a temporary one) */
  store?: string;
  /** where vmlinux.h is cached for builds */
  cacheDir?: string;
}

export interface Deployable {
  /** what the BpfDeployment's spec.package.image says */
  image: string;
  /** the package's name (the default deployment name) */
  name: string;
}

/** progress lines go to stderr, results to stdout (so `-o json` stays parseable) */
type Say = (line: string) => void;

function defaultCacheDir(): string {
  return process.env.KBPF_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kbpf');
}

/** The last path component of a reference's repository: a deployment's default name. */
function shortName(ref: Reference): string {
  return clusterPackageName(ref.repository);
}

/** `[NAME] IMAGE`, or sources (a directory, FILE.bpf.c [FILE.h…]), or nothing with -p. */
export function splitRunArgs(args: string[], o: PackageSourceOptions): { name?: string; rest: string[] } {
  if (o.package) {
    if (args.length > 1)
      throw new Error(`with -p ${o.package}, give at most a deployment name (got ${args.join(' ')})`);
    return { ...(args[0] ? { name: args[0] } : {}), rest: [] };
  }
  if (args.length === 0) throw new Error('nothing to run: give source files, a directory, an image, or -p PACKAGE');
  if (args.length === 2 && !isSource(args[0]!) && !isSource(args[1]!)) return { name: args[0]!, rest: [args[1]!] };
  return { rest: args };
}

function isSource(a: string): boolean {
  try {
    return runTarget(a, []).kind === 'source' || a.endsWith('.c');
  } catch {
    return a.endsWith('.c') || a.endsWith('.h');
  }
}

/** Resolves run's/upgrade's arguments to what the deployment names, building and storing as needed. */
export async function deployable(a: KbpfApi, rest: string[], o: PackageSourceOptions, say: Say): Promise<Deployable> {
  if (o.package) return fromPackage(a, o.package, o, say);
  const target = runTarget(rest[0]!, rest.slice(1));
  if (target.kind === 'image') {
    if (isClusterRef(target.image)) return { image: target.image, name: parseClusterRef(target.image)!.name };
    return { image: target.image, name: shortName(parseReference(target.image)) };
  }
  const tmp = o.store ? undefined : mkdtempSync(join(tmpdir(), 'kbpf-build-'));
  // the same sources build the same package (one BpfPackage): its creation time is theirs
  const epoch = process.env.SOURCE_DATE_EPOCH;
  process.env.SOURCE_DATE_EPOCH ??= String(sourceEpoch(target.dir));
  try {
    const store = new LayoutStore(o.store ?? tmp!);
    const { buildPackage } = await import('../../compile/builder.js');
    const built = await buildPackage(target.dir, {
      store,
      cacheDir: o.cacheDir ?? defaultCacheDir(),
      ...(target.files ? { files: target.files } : {}),
      includeDirs: target.includeDirs,
      progress: say,
    });
    say(`built ${built.stored.reference} (${built.stored.digest})`);
    return await publish(a, store, built.stored.reference, o, say);
  } finally {
    if (epoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** The newest modification time (seconds) of the files of a source directory. */
function sourceEpoch(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isFile()) newest = Math.max(newest, statSync(join(dir, e.name)).mtimeMs);
  return Math.floor(newest / 1000);
}

/**
 * -p PACKAGE: a registry reference as it is; a package in the cluster (NAME, NAME:VERSION,
 * NAME@sha256:…, the newest when several match); else one in the local store, stored now.
 */
async function fromPackage(a: KbpfApi, p: string, o: PackageSourceOptions, say: Say): Promise<Deployable> {
  if (isClusterRef(p)) return { image: p, name: parseClusterRef(p)!.name };
  const ref = parseReference(p, { defaultTag: null });
  if (ref.registry) return { image: p, name: shortName(ref) };
  const inCluster = await findClusterPackage(a, p);
  if (inCluster) return inCluster;
  const store = new LayoutStore(o.store ?? resolveAgentPaths().storeDir);
  try {
    await store.resolve(formatReference(ref.tag || ref.digest ? ref : { ...ref, tag: 'latest' }));
  } catch {
    throw new Error(
      `no package ${p} in the cluster (see: kubectl bpf packages) nor in the local store ${store.root} (--store DIR)`,
    );
  }
  return publish(a, store, formatReference(ref.tag || ref.digest ? ref : { ...ref, tag: 'latest' }), o, say);
}

/** A cluster package by NAME, NAME:VERSION or NAME@sha256:… (the newest when several match). */
export async function findClusterPackage(a: KbpfApi, p: string): Promise<Deployable | undefined> {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(?::([A-Za-z0-9_][A-Za-z0-9._-]*))?(?:@(sha256:[a-f0-9]{64}))?$/.exec(p);
  if (!m) return undefined;
  const [, name, , version, digest] = m;
  const all = (await a.list(PLURAL.packages, { labelSelector: `${LABEL_PACKAGE}=${name}` })).items;
  const hit = all
    .filter(
      (x) =>
        (version === undefined || x.spec.version === version) && (digest === undefined || x.spec.digest === digest),
    )
    .sort((x, y) => String(x.metadata.creationTimestamp).localeCompare(String(y.metadata.creationTimestamp)))
    .at(-1);
  return hit ? { image: clusterRef(hit.spec.name, hit.spec.digest), name: hit.spec.name } : undefined;
}

/** Stores a local package in the cluster (a BpfPackage), or pushes it to --registry; signatures go along. */
async function publish(
  a: KbpfApi,
  store: LayoutStore,
  reference: string,
  o: PackageSourceOptions,
  say: Say,
): Promise<Deployable> {
  const pkg = await store.resolve(reference);
  const name = clusterPackageName(pkg.name);
  if (o.registry) {
    const dst = parseReference(o.registry, { defaultTag: null });
    if (!dst.registry) throw new Error(`--registry ${o.registry}: name a registry, HOST[:PORT]/REPOSITORY[:TAG]`);
    const pushed = await new RegistryClient().push(store, reference, o.registry);
    say(
      `pushed ${pushed.reference} (${pushed.digest})${pushed.signatures ? ` with ${pushed.signatures} signature(s)` : ''}`,
    );
    return { image: `${referenceName(dst)}@${pushed.digest}`, name };
  }
  const obj = await packageObject(store, reference, name);
  try {
    await a.create(PLURAL.packages, obj);
    process.stdout.write(`bpfpackage.kbpf.io/${obj.metadata.name} created\n`);
  } catch (e) {
    if (statusCode(e) !== 409) throw e;
    const had = await a.get(PLURAL.packages, obj.metadata.name);
    if (had?.spec.digest !== obj.spec.digest) throw e;
    process.stdout.write(`bpfpackage.kbpf.io/${obj.metadata.name} unchanged\n`);
  }
  return { image: clusterRef(name, pkg.digest), name };
}
