// Packages stored in the cluster itself, without a registry: a cluster-scoped BpfPackage object
// holds one package's OCI artifact — the exact manifest bytes, every blob it names and its
// signatures, base64 — one object per digest (named NAME.<12 hex of the digest>, labelled
// kbpf.io/package=NAME). A deployment names it `bpfpackage://NAME[:VERSION][@sha256:…]`; each
// node agent reads the object through the API server with its own credentials, checks every
// digest, and imports it into its store as `bpfpackage.kbpf.io/NAME@sha256:…`: the name its
// trust policy rules match (never a local build's name), with the signatures beside it.
// An object is limited (etcd keeps objects of at most 1.5 MiB): a bigger package goes to a
// registry. See docs/kubernetes.md ("Packages without a registry") and docs/package-format.md.
import { InvalidError, KbpfError, NotFoundError, Refused } from '../errors.js';
import { digestHex, sha256Digest } from '../package/digest.js';
import type { BlobWithBytes, LayoutStore, StoredPackage } from '../package/layout-store.js';
import type { Descriptor } from '../package/manifest.js';
import { type FoundSignature, type SignatureSource, storeSignatures } from '../package/trust/signing.js';
import { signatureTag } from '../package/trust/simple-signing.js';
import { API_VERSION, type BpfPackage, LABEL_PACKAGE, type PackageBlob } from './api.js';

export const PACKAGE_SCHEME = 'bpfpackage://';
/** the most a BpfPackage holds: manifest, blobs and signatures, in bytes before base64 (≈1.4 MB as JSON) */
export const MAX_PACKAGE_BYTES = 1024 * 1024;
/** the registry-like host of cluster packages in a node's store and in trust policy rules */
export const CLUSTER_PACKAGE_HOST = 'bpfpackage.kbpf.io';

const NAME = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const REF_RE = new RegExp(
  `^bpfpackage://(${NAME})(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$`,
);

export interface ClusterPackageRef {
  name: string;
  version?: string;
  digest?: string;
}

export function isClusterRef(image: string): boolean {
  return image.startsWith(PACKAGE_SCHEME);
}

/** `bpfpackage://NAME[:VERSION][@sha256:…]`, or undefined for any other (a registry's) reference. */
export function parseClusterRef(image: string): ClusterPackageRef | undefined {
  if (!isClusterRef(image)) return undefined;
  const m = REF_RE.exec(image);
  if (!m)
    throw new InvalidError(
      `${image}: a package in the cluster is named bpfpackage://NAME[:VERSION][@sha256:…] (NAME: lowercase letters, digits, '-')`,
    );
  return { name: m[1]!, ...(m[3] ? { version: m[3] } : {}), ...(m[4] ? { digest: m[4] } : {}) };
}

export function clusterRef(name: string, digest: string): string {
  return `${PACKAGE_SCHEME}${name}@${digest}`;
}

/** The BpfPackage object holding package `name` at `digest`. */
export function packageObjectName(name: string, digest: string): string {
  return `${name}.${digestHex(digest).slice(0, 12)}`;
}

/** The name a cluster package has in a node's store, and that trust policy rules match. */
export function clusterStoreName(name: string): string {
  return `${CLUSTER_PACKAGE_HOST}/${name}`;
}

/** A package name fit for the cluster (a DNS label): a built package's last path component, lowercased. */
export function clusterPackageName(packageName: string): string {
  const last = packageName.split('/').at(-1)!.toLowerCase();
  const name = last.replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (!name) throw new InvalidError(`package name ${packageName} has nothing a cluster package name can use`);
  return name.slice(0, 63).replace(/-+$/, '');
}

function sizeText(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

function blobOf(d: Descriptor, bytes: Uint8Array): PackageBlob {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations ? { annotations: d.annotations } : {}),
    data: Buffer.from(bytes).toString('base64'),
  };
}

function bytesOf(b: PackageBlob): Uint8Array {
  return new Uint8Array(Buffer.from(b.data, 'base64'));
}

/**
 * The BpfPackage of a package in a local store (its signatures there included), named for the
 * cluster as `name`. Refused, saying to use a registry, when it is over MAX_PACKAGE_BYTES.
 */
export async function packageObject(store: LayoutStore, reference: string, name: string): Promise<BpfPackage> {
  const pkg = await store.resolve(reference);
  const blobs: PackageBlob[] = [];
  for (const d of [pkg.manifest.config, ...pkg.manifest.layers])
    blobs.push(blobOf(d, await store.getBlob(d.digest, d.size)));
  const signatures = (await storeSignatures(store, pkg.name).read(pkg.digest)).map((s) =>
    blobOf(s.descriptor, s.payload),
  );
  const size = pkg.manifestBytes.byteLength + [...blobs, ...signatures].reduce((n, b) => n + b.size, 0);
  if (size > MAX_PACKAGE_BYTES)
    throw new KbpfError(
      Refused,
      `package ${pkg.reference} is ${sizeText(size)}: more than the ${sizeText(MAX_PACKAGE_BYTES)} a BpfPackage can hold in the cluster; push it to a registry instead (kubectl bpf run --registry HOST/REPOSITORY …)`,
    );
  const version = pkg.config.version;
  return {
    apiVersion: API_VERSION,
    kind: 'BpfPackage',
    metadata: {
      name: packageObjectName(name, pkg.digest),
      labels: { [LABEL_PACKAGE]: name, 'app.kubernetes.io/version': version.slice(0, 63) },
    },
    spec: {
      name,
      version,
      digest: pkg.digest,
      manifest: Buffer.from(pkg.manifestBytes).toString('base64'),
      blobs,
      ...(signatures.length ? { signatures } : {}),
      size,
    },
  };
}

/**
 * Imports a BpfPackage into a store as `bpfpackage.kbpf.io/NAME@digest`, with its signatures.
 * Every byte is checked against the digests (the manifest's against `digest`, which the
 * deployment pinned): an object that does not hash to them is refused.
 */
export async function importPackageObject(obj: BpfPackage, store: LayoutStore, digest: string): Promise<StoredPackage> {
  const where = `BpfPackage ${obj.metadata.name}`;
  if (obj.spec.digest !== digest) throw new NotFoundError(`${where} holds ${obj.spec.digest}, not ${digest}`);
  const manifestBytes = bytesOf({ data: obj.spec.manifest } as PackageBlob);
  if (sha256Digest(manifestBytes) !== digest)
    throw new InvalidError(`${where}: its manifest hashes to ${sha256Digest(manifestBytes)}, not ${digest}`);
  const blobs: BlobWithBytes[] = obj.spec.blobs.map((b) => ({
    descriptor: { mediaType: b.mediaType, digest: b.digest, size: b.size },
    bytes: bytesOf(b),
  }));
  const name = clusterStoreName(obj.spec.name);
  const stored = await store.importPackage({ manifestBytes, blobs }, `${name}@${digest}`);
  const sigs = objectSignatures(obj);
  const found = await sigs.read(digest);
  if (found.length) await store.addSignatures(name, digest, found);
  return stored;
}

/** The signatures a BpfPackage carries, as a trust policy check reads them. */
export function objectSignatures(obj: BpfPackage): SignatureSource {
  const name = clusterStoreName(obj.spec.name);
  return {
    where: `BpfPackage ${obj.metadata.name}`,
    repository: name,
    signatureReference: (digest) => `${name}:${signatureTag(digest)}`,
    read: async (digest): Promise<FoundSignature[]> =>
      digest === obj.spec.digest
        ? (obj.spec.signatures ?? []).map((s) => ({
            descriptor: {
              mediaType: s.mediaType,
              digest: s.digest,
              size: s.size,
              ...(s.annotations ? { annotations: s.annotations } : {}),
            },
            payload: bytesOf(s),
          }))
        : [],
    add: () => Promise.reject(new InvalidError('a BpfPackage is immutable: sign the package before storing it')),
  };
}
