/**
 * The local package store: a directory in the OCI image layout format
 * (image-spec v1.1 "image-layout"):
 *
 *   DIR/oci-layout            {"imageLayoutVersion":"1.0.0"}
 *   DIR/index.json            OCI image index; one descriptor per tag, with
 *                             org.opencontainers.image.ref.name = "name:tag"
 *   DIR/blobs/sha256/<hex>    content-addressed blobs
 *   DIR/index.json.lock       present only while a writer updates index.json
 *   DIR/.kbpf-tmp/            temporary files (renamed into blobs/ when complete)
 *
 * Writes are ordered so that a crash or an error at any point leaves no tag
 * pointing at a partial package: blobs are written to temporary files,
 * verified and renamed into place; the image manifest blob is written last;
 * then index.json is rewritten (temp file + rename) under the lock file.
 * Blobs orphaned by a failure are removed by gc().
 */

import { constants as fsConstants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, tempName, writeFileAtomic, writeTempFile } from './atomic-file.js';
import { DigestStream, digestHex, sha256Digest, verifyBytes } from './digest.js';
import { DigestMismatchError, NotFoundError, PackageError } from './errors.js';
import { type FileLock, type LockOptions, withFileLock } from './lock.js';
import {
  type Annotations,
  buildImageManifest,
  canonicalJson,
  checkPackageLimits,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  isKbpfPackage,
  type PackageManifest,
  parseImageIndex,
  parseImageManifest,
  validatePackageManifest,
} from './manifest.js';
import {
  ANNOTATION_CREATED,
  ANNOTATION_REF_NAME,
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  KBPF_BYTECODE,
  KBPF_CONFIG,
  KBPF_LAYER_TYPES,
  KBPF_WASM,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
} from './media-types.js';
import { claimsPackageSpec, validatePackageSpec } from './package-spec.js';
import { formatReference, parseReference, type Reference, referenceName } from './reference.js';
import {
  buildSignatureManifest,
  isSignatureTag,
  mergeLayers,
  parseSignatureManifest,
  signatureTag,
} from './trust/simple-signing.js';

export interface LayerInput {
  mediaType: string;
  bytes: Uint8Array;
  /** File name, stored as org.opencontainers.image.title; unique within the package. */
  title: string;
  annotations?: Annotations;
}

export interface PutPackageInput {
  /** The package manifest (config blob); needs at least `name` and `version`. */
  manifest: PackageManifest | Record<string, unknown>;
  layers: LayerInput[];
  /** org.opencontainers.image.created; default $SOURCE_DATE_EPOCH if set, else now. */
  created?: string | Date;
  annotations?: Annotations;
  bpfmanPrograms?: Record<string, string>;
  bpfmanMaps?: Record<string, string>;
}

export interface StoredPackage {
  /** `name:tag` (or `name@digest` when untagged). */
  reference: string;
  name: string;
  tag?: string;
  digest: string;
  /** Size of the image manifest blob. */
  size: number;
  manifest: ImageManifest;
}

export interface ResolvedPackage extends StoredPackage {
  manifestBytes: Uint8Array;
  configBytes: Uint8Array;
  /** The parsed config blob: the package manifest for kbpf packages. */
  config: PackageManifest;
}

export interface PackageSummary {
  name: string;
  tags: string[];
  digest: string;
  /** Manifest + config + layers, in bytes. */
  size: number;
  created?: string;
  version?: string;
  artifactType?: string;
}

export interface BlobWithBytes {
  descriptor: Descriptor;
  bytes: Uint8Array;
}

/** A verified blob in a temporary file of the store, not yet in blobs/ (see LayoutStore.stageBlob). */
export interface StagedBlob {
  digest: string;
  /** the temporary file */
  path: string;
  /** renames it into blobs/ */
  commit(): Promise<void>;
  /** removes the temporary file */
  discard(): Promise<void>;
}

export interface GcOptions {
  /** Keep unreachable blobs and temp files younger than this. Default 0. */
  gracePeriodMs?: number;
  /** Manifests (by digest) to keep with their blobs though no tag names them: e.g. the revisions instances may roll back to. */
  keep?: Iterable<string>;
}

export interface GcResult {
  removed: string[];
  freedBytes: number;
  removedTempFiles: number;
}

export interface StoreOptions {
  lock?: LockOptions;
}

/** One index.json descriptor, with the name and tag it stands for. */
interface Entry {
  descriptor: Descriptor;
  name: string;
  tag?: string;
}

const LAYOUT_VERSION = '1.0.0';

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

function toRef(ref: string | Reference): Reference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}

function createdTime(created: string | Date | undefined): string {
  if (created instanceof Date) return created.toISOString().replace(/\.000Z$/, 'Z');
  if (typeof created === 'string') return created;
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch && /^[0-9]+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString().replace(/\.000Z$/, 'Z');
  return new Date().toISOString();
}

export class LayoutStore {
  readonly root: string;
  private readonly lockOptions: LockOptions;
  private ready: Promise<void> | undefined;

  constructor(root: string, options: StoreOptions = {}) {
    this.root = root;
    this.lockOptions = options.lock ?? {};
  }

  get indexPath(): string {
    return join(this.root, 'index.json');
  }
  private get lockPath(): string {
    return join(this.root, 'index.json.lock');
  }
  private get tmpDir(): string {
    return join(this.root, '.kbpf-tmp');
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  // ---- layout ------------------------------------------------------------

  /** Creates the layout (directories, oci-layout, empty index.json) if missing. Idempotent and safe to race. */
  init(): Promise<void> {
    this.ready ??= this.doInit().catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async doInit(): Promise<void> {
    try {
      await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
    } catch (err) {
      throw new PackageError('INVALID_PACKAGE', `cannot create package store ${this.root}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const layoutFile = join(this.root, 'oci-layout');
    const existing = await readFile(layoutFile, 'utf8').catch((err) =>
      isNotFound(err) ? undefined : Promise.reject(err),
    );
    if (existing === undefined) {
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
    } else {
      let version: unknown;
      try {
        version = (JSON.parse(existing) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        version = undefined;
      }
      if (version !== LAYOUT_VERSION) {
        throw new PackageError(
          'INVALID_PACKAGE',
          `${layoutFile}: imageLayoutVersion is ${JSON.stringify(version)}, this kbpf understands ${LAYOUT_VERSION}`,
        );
      }
    }
    if (!(await exists(this.indexPath))) {
      await withFileLock(
        this.lockPath,
        async () => {
          if (!(await exists(this.indexPath))) {
            await this.writeIndex({ schemaVersion: 2, mediaType: OCI_IMAGE_INDEX, manifests: [] });
          }
        },
        this.lockOptions,
      );
    }
  }

  // ---- blobs -------------------------------------------------------------

  /**
   * Stores `bytes` as a blob and returns its descriptor. The content is written
   * to a temporary file, read back and hashed, then renamed into place, so a
   * blob file is either absent or complete. With `expected`, a digest or size
   * mismatch is refused before anything is stored.
   */
  async putBlob(
    bytes: Uint8Array,
    expected: { digest?: string; size?: number; mediaType?: string } = {},
  ): Promise<Descriptor> {
    await this.init();
    const digest = sha256Digest(bytes);
    const descriptor: Descriptor = {
      mediaType: expected.mediaType ?? 'application/octet-stream',
      digest,
      size: bytes.byteLength,
    };
    if (expected.digest !== undefined) verifyBytes(bytes, expected.digest, `blob ${expected.digest}`, expected.size);
    const path = this.blobPath(digest);
    const present = await readFile(path).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    if (present !== undefined && sha256Digest(present) === digest) return descriptor;
    const tmp = await writeTempFile(this.tmpDir, digestHex(digest).slice(0, 16), bytes, 0o444);
    try {
      const written = await readFile(tmp);
      verifyBytes(written, digest, `writing blob ${digest} to ${tmp}`, bytes.byteLength);
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(join(this.root, 'blobs', 'sha256'));
    return descriptor;
  }

  /**
   * Writes a blob given as a stream of chunks (a download) to a temporary file while hashing
   * it, never holding it whole: more bytes than `expected.size`, or another digest, remove the
   * file and throw. The blob is in the store only once `commit()` renames it into place, so a
   * pull that fails half way leaves nothing behind (`discard()` removes the file).
   */
  async stageBlob(
    chunks: AsyncIterable<Uint8Array>,
    expected: { digest: string; size: number },
    where = `blob ${expected.digest}`,
  ): Promise<StagedBlob> {
    await this.init();
    const path = this.blobPath(expected.digest);
    const tmp = join(this.tmpDir, tempName(digestHex(expected.digest).slice(0, 16)));
    const fh = await open(tmp, 'wx', 0o444);
    const hash = new DigestStream();
    try {
      for await (const chunk of chunks) {
        hash.update(chunk);
        if (hash.size > expected.size)
          throw new DigestMismatchError(
            `${where}: more than the ${expected.size} bytes the descriptor declares`,
            expected.digest,
            'unknown',
          );
        await fh.write(chunk);
      }
      await fh.sync();
      await fh.close();
      if (hash.size !== expected.size)
        throw new DigestMismatchError(
          `${where}: ${hash.size} bytes, the descriptor says ${expected.size} (content truncated)`,
          expected.digest,
          'unknown',
          { truncated: true },
        );
      const actual = hash.digest();
      if (actual !== expected.digest)
        throw new DigestMismatchError(
          `${where}: content hashes to ${actual}, expected ${expected.digest} (corrupted or tampered)`,
          expected.digest,
          actual,
        );
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const blobDir = join(this.root, 'blobs', 'sha256');
    return {
      digest: expected.digest,
      path: tmp,
      commit: async () => {
        await rename(tmp, path);
        await fsyncDir(blobDir);
      },
      discard: () => unlink(tmp).catch(() => undefined),
    };
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /** Reads a blob and verifies its digest (and size, if given). */
  async getBlob(digest: string, size?: number): Promise<Uint8Array> {
    const path = this.blobPath(digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`blob ${digest} is missing from package store ${this.root}`);
      throw err;
    }
    verifyBytes(bytes, digest, `blob ${digest} in package store ${this.root} is corrupted`, size);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // ---- index -------------------------------------------------------------

  /** Reads index.json (an empty index when the store does not exist yet). */
  async readIndex(): Promise<ImageIndex> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.indexPath);
    } catch (err) {
      if (isNotFound(err)) return { schemaVersion: 2, mediaType: OCI_IMAGE_INDEX, manifests: [] };
      throw err;
    }
    return parseImageIndex(bytes, this.indexPath);
  }

  /** Replaces index.json atomically. Called only with the lock held. */
  protected async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(this.indexPath, JSON.stringify(index));
  }

  /** Runs `mutate` on the current index under the lock and writes the result atomically. */
  private async updateIndex<T>(mutate: (index: ImageIndex, lock: FileLock) => Promise<T>): Promise<T> {
    await this.init();
    return withFileLock(
      this.lockPath,
      async (lock) => {
        const index = await this.readIndex();
        const result = await mutate(index, lock);
        await lock.assertHeld();
        await this.writeIndex(index);
        return result;
      },
      this.lockOptions,
    );
  }

  /** The index descriptors with the package name and tag each one stands for. */
  private async entries(index: ImageIndex): Promise<Entry[]> {
    const out: Entry[] = [];
    for (const descriptor of index.manifests) {
      const e = await this.describeEntry(descriptor);
      if (e) out.push(e);
    }
    return out;
  }

  private async describeEntry(descriptor: Descriptor): Promise<Entry | undefined> {
    const refName = descriptor.annotations?.[ANNOTATION_REF_NAME];
    if (refName === undefined) return undefined;
    if (refName.includes(':') || refName.includes('@')) {
      // Written by kbpf (or `skopeo copy ... oci:DIR:name:tag`): a full reference.
      try {
        const ref = parseReference(refName, { defaultTag: null });
        const e: Entry = { descriptor, name: referenceName(ref) };
        if (ref.tag !== undefined) e.tag = ref.tag;
        else if (ref.digest === undefined) e.tag = 'latest';
        return e;
      } catch {
        return undefined;
      }
    }
    // A bare tag, as other tools write it: the name comes from the manifest's title.
    let name = '';
    try {
      const m = parseImageManifest(await this.getBlob(descriptor.digest), 'manifest');
      name = m.annotations?.[ANNOTATION_TITLE] ?? '';
    } catch {
      // unreadable manifest: keep the entry nameless
    }
    return { descriptor, name, tag: refName };
  }

  // ---- packages ----------------------------------------------------------

  /**
   * Stores a package and tags it (default `name:version` from the manifest).
   * Blobs are written first, then the image manifest, then index.json; if any
   * step fails, no tag changes and the partial blobs are left for gc().
   */
  async putPackage(input: PutPackageInput, tag?: string | Reference): Promise<StoredPackage> {
    const pkg = validatePackageManifest(input.manifest);
    if (!Array.isArray(input.layers) || input.layers.length === 0) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `package ${pkg.name}:${pkg.version}: no layers (a package needs at least one ${KBPF_BYTECODE} layer)`,
      );
    }
    const titles = new Set<string>();
    for (const [i, layer] of input.layers.entries()) {
      const where = `package ${pkg.name}:${pkg.version}, layer ${i}`;
      if (!KBPF_LAYER_TYPES.includes(layer.mediaType)) {
        throw new PackageError(
          'INVALID_PACKAGE',
          `${where}: media type ${JSON.stringify(layer.mediaType)} is not one of ${KBPF_LAYER_TYPES.join(', ')}`,
        );
      }
      if (typeof layer.title !== 'string' || layer.title.length === 0 || layer.title.includes('/')) {
        throw new PackageError(
          'INVALID_PACKAGE',
          `${where}: title ${JSON.stringify(layer.title)} must be a file name (non-empty, no "/")`,
        );
      }
      if (titles.has(layer.title))
        throw new PackageError('INVALID_PACKAGE', `${where}: two layers are named "${layer.title}"`);
      titles.add(layer.title);
      if (!(layer.bytes instanceof Uint8Array))
        throw new PackageError('INVALID_PACKAGE', `${where}: bytes is not a Uint8Array`);
    }
    if (!input.layers.some((l) => l.mediaType === KBPF_BYTECODE || l.mediaType === KBPF_WASM)) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `package ${pkg.name}:${pkg.version}: no ${KBPF_BYTECODE} layer (no BPF object) and no ${KBPF_WASM} layer (no Wasm guest)`,
      );
    }
    const ref = tag === undefined ? parseReference(`${pkg.name}:${pkg.version}`) : toRef(tag);
    if (ref.digest !== undefined || ref.tag === undefined) {
      throw new PackageError('INVALID_PACKAGE', `cannot tag a new package as "${formatReference(ref)}": give name:tag`);
    }

    const configBytes = Buffer.from(canonicalJson(pkg), 'utf8');
    const blobs: BlobWithBytes[] = [];
    const config: Descriptor = {
      mediaType: KBPF_CONFIG,
      digest: sha256Digest(configBytes),
      size: configBytes.byteLength,
    };
    blobs.push({ descriptor: config, bytes: configBytes });
    const layers: Descriptor[] = input.layers.map((l) => {
      const d: Descriptor = {
        mediaType: l.mediaType,
        digest: sha256Digest(l.bytes),
        size: l.bytes.byteLength,
        annotations: { ...(l.annotations ?? {}), [ANNOTATION_TITLE]: l.title },
      };
      blobs.push({ descriptor: d, bytes: l.bytes });
      return d;
    });
    const buildInput: Parameters<typeof buildImageManifest>[0] = {
      pkg,
      config,
      layers,
      created: createdTime(input.created),
    };
    if (input.annotations) buildInput.annotations = input.annotations;
    if (input.bpfmanPrograms) buildInput.bpfmanPrograms = input.bpfmanPrograms;
    if (input.bpfmanMaps) buildInput.bpfmanMaps = input.bpfmanMaps;
    const manifest = buildImageManifest(buildInput);
    const manifestBytes = Buffer.from(JSON.stringify(manifest), 'utf8');
    return this.importPackage({ manifestBytes, blobs }, ref);
  }

  /**
   * Stores an image manifest given as exact bytes (as pulled) with its blobs,
   * and points `ref` at it: a tag, or `name@digest` for an untagged entry.
   * Every blob the manifest names must be given here or already be stored;
   * every digest is verified.
   */
  async importPackage(
    input: { manifestBytes: Uint8Array; blobs: BlobWithBytes[] },
    ref: string | Reference,
  ): Promise<StoredPackage> {
    const target = toRef(ref);
    const digest = sha256Digest(input.manifestBytes);
    const where = `package ${formatReference(target)} (${digest})`;
    if (target.digest !== undefined && target.digest !== digest) {
      throw new DigestMismatchError(
        `${where}: manifest hashes to ${digest}, the reference says ${target.digest}`,
        target.digest,
        digest,
      );
    }
    const manifest = parseImageManifest(input.manifestBytes, where);
    if (isKbpfPackage(manifest)) checkPackageLimits(manifest, where);
    const given = new Map(input.blobs.map((b) => [b.descriptor.digest, b]));
    const needed = [manifest.config, ...manifest.layers];
    for (const d of needed) {
      const b = given.get(d.digest);
      if (b) verifyBytes(b.bytes, d.digest, `${where}: blob ${d.digest}`, d.size);
      else if (!(await this.hasBlob(d.digest)))
        throw new NotFoundError(`${where}: blob ${d.digest} (${d.mediaType}) was not given and is not in the store`);
    }
    // 1. content blobs, 2. the manifest, 3. the tag.
    for (const d of needed) {
      const b = given.get(d.digest);
      if (b) await this.putBlob(b.bytes, { digest: d.digest, size: d.size, mediaType: d.mediaType });
    }
    await this.putBlob(input.manifestBytes, { digest, mediaType: OCI_IMAGE_MANIFEST });
    const indexDescriptor: Descriptor = { mediaType: OCI_IMAGE_MANIFEST, digest, size: input.manifestBytes.byteLength };
    if (manifest.artifactType) indexDescriptor.artifactType = manifest.artifactType;
    const name = referenceName(target);
    const tag = target.digest === undefined ? (target.tag ?? 'latest') : target.tag;
    const refName = tag !== undefined ? `${name}:${tag}` : `${name}@${digest}`;
    indexDescriptor.annotations = { [ANNOTATION_REF_NAME]: refName };

    await this.updateIndex(async (index) => {
      // A concurrent gc() may have removed blobs written before the lock was taken: write them again.
      for (const d of needed) {
        if (!(await this.hasBlob(d.digest))) {
          const b = given.get(d.digest);
          if (!b)
            throw new NotFoundError(`${where}: blob ${d.digest} disappeared from the store while it was being tagged`);
          await this.putBlob(b.bytes, { digest: d.digest, size: d.size });
        }
      }
      if (!(await this.hasBlob(digest))) await this.putBlob(input.manifestBytes, { digest });
      const entries = await this.entries(index);
      const drop = new Set<Descriptor>();
      for (const e of entries) {
        if (e.name !== name) continue;
        if (tag !== undefined ? e.tag === tag : e.tag === undefined && e.descriptor.digest === digest)
          drop.add(e.descriptor);
      }
      index.manifests = index.manifests.filter((d) => !drop.has(d));
      index.manifests.push(indexDescriptor);
    });
    const result: StoredPackage = { reference: refName, name, digest, size: input.manifestBytes.byteLength, manifest };
    if (tag !== undefined) result.tag = tag;
    return result;
  }

  private async findEntries(ref: Reference): Promise<{ entries: Entry[]; matches: Entry[] }> {
    const entries = await this.entries(await this.readIndex());
    const name = referenceName(ref);
    const matches = entries.filter(
      (e) =>
        e.name === name &&
        (ref.digest !== undefined ? e.descriptor.digest === ref.digest : e.tag === (ref.tag ?? 'latest')),
    );
    return { entries, matches };
  }

  private notFound(ref: Reference, entries: Entry[]): NotFoundError {
    const name = referenceName(ref);
    const same = entries
      .filter((e) => e.name === name)
      .map((e) => (e.tag !== undefined ? `${name}:${e.tag}` : `${name}@${e.descriptor.digest}`));
    const hint = same.length > 0 ? ` (it has ${same.join(', ')})` : '';
    return new NotFoundError(`package ${formatReference(ref)} is not in the package store ${this.root}${hint}`);
  }

  /** Any manifest by `name[:tag]` or `name@sha256:…` (not only packages), digest verified; undefined when absent. */
  async findManifest(
    reference: string | Reference,
  ): Promise<{ digest: string; manifestBytes: Uint8Array; manifest: ImageManifest } | undefined> {
    const ref = toRef(reference);
    const { matches } = await this.findEntries(ref);
    const entry = matches[0];
    if (!entry) return undefined;
    const digest = entry.descriptor.digest;
    const manifestBytes = await this.getBlob(digest);
    return {
      digest,
      manifestBytes,
      manifest: parseImageManifest(manifestBytes, `${formatReference(ref)} (${digest})`),
    };
  }

  // ---- signatures --------------------------------------------------------
  //
  // The signatures of package `name@digest` are a cosign signature manifest tagged
  // `name:sha256-<hex>.sig` in the store, as in a registry (see trust/simple-signing.ts).

  /** The signature layers stored for manifest `digest` of `name`, or undefined when it has none. */
  async signatures(name: string, digest: string): Promise<{ layers: Descriptor[]; tag: string } | undefined> {
    const tag = signatureTag(digest);
    const found = await this.findManifest(`${name}:${tag}`);
    if (!found) return undefined;
    return { layers: parseSignatureManifest(found.manifestBytes, `signatures ${name}:${tag}`), tag };
  }

  /**
   * Adds signature layers (descriptor and payload bytes) to those stored for `name@digest`;
   * layers already there are kept once. Returns the number of signatures stored.
   */
  async addSignatures(
    name: string,
    digest: string,
    layers: readonly { descriptor: Descriptor; payload: Uint8Array }[],
  ): Promise<number> {
    const existing = (await this.signatures(name, digest))?.layers ?? [];
    const merged = mergeLayers(
      existing,
      layers.map((l) => l.descriptor),
    );
    const { manifest, config } = buildSignatureManifest(merged);
    const blobs: BlobWithBytes[] = layers.map((l) => ({ descriptor: l.descriptor, bytes: l.payload }));
    blobs.push({
      descriptor: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256Digest(config),
        size: config.byteLength,
      },
      bytes: config,
    });
    await this.importPackage({ manifestBytes: manifest, blobs }, `${name}:${signatureTag(digest)}`);
    return merged.length;
  }

  /** Finds a package by `name[:tag]` or `name@sha256:…`, reading and verifying its manifest and config. */
  async resolve(reference: string | Reference): Promise<ResolvedPackage> {
    const ref = toRef(reference);
    const { entries, matches } = await this.findEntries(ref);
    const entry = matches[0];
    if (!entry) throw this.notFound(ref, entries);
    const digest = entry.descriptor.digest;
    const label = formatReference(ref);
    const manifestBytes = await this.getBlob(digest);
    const manifest = parseImageManifest(manifestBytes, `package ${label} (${digest})`);
    if (!isKbpfPackage(manifest)) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `${label} (${digest}) is not a kbpf package: artifactType ${JSON.stringify(manifest.artifactType)}, config media type ${JSON.stringify(manifest.config.mediaType)}`,
      );
    }
    checkPackageLimits(manifest, `package ${label} (${digest})`);
    const configBytes = await this.getBlob(manifest.config.digest, manifest.config.size);
    let configJson: unknown;
    try {
      configJson = JSON.parse(Buffer.from(configBytes).toString('utf8'));
    } catch (err) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `${label}: config blob ${manifest.config.digest} is not JSON (${(err as Error).message})`,
      );
    }
    const config = validatePackageManifest(configJson, `${label}: package manifest`);
    if (claimsPackageSpec(configJson)) validatePackageSpec(configJson, `${label} (${digest}): package spec`);
    const name = entry.name || referenceName(ref);
    const tags = entries.filter((e) => e.name === name && e.descriptor.digest === digest && e.tag !== undefined);
    const tag = ref.digest === undefined ? (ref.tag ?? 'latest') : tags[0]?.tag;
    const result: ResolvedPackage = {
      reference: tag !== undefined ? `${name}:${tag}` : `${name}@${digest}`,
      name,
      digest,
      size: manifestBytes.byteLength,
      manifest,
      manifestBytes,
      configBytes,
      config,
    };
    if (tag !== undefined) result.tag = tag;
    return result;
  }

  /** Reads and verifies one layer of a resolved package, by title (file name) or index. */
  async getLayer(pkg: StoredPackage, which: string | number): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
    const descriptor =
      typeof which === 'number'
        ? pkg.manifest.layers[which]
        : pkg.manifest.layers.find((l) => l.annotations?.[ANNOTATION_TITLE] === which);
    if (!descriptor)
      throw new NotFoundError(
        `package ${pkg.reference} has no layer ${typeof which === 'number' ? `#${which}` : `"${which}"`}`,
      );
    return { descriptor, bytes: await this.getBlob(descriptor.digest, descriptor.size) };
  }

  /** One row per (name, manifest digest), with all its tags. Unreadable entries are listed with what the index says. */
  async list(): Promise<PackageSummary[]> {
    const entries = await this.entries(await this.readIndex());
    const rows = new Map<string, PackageSummary>();
    for (const e of entries) {
      if (isSignatureTag(e.tag)) continue; // signatures belong to their package: see signatures()
      const key = `${e.name}\u0000${e.descriptor.digest}`;
      let row = rows.get(key);
      if (!row) {
        row = { name: e.name, tags: [], digest: e.descriptor.digest, size: e.descriptor.size };
        if (e.descriptor.artifactType) row.artifactType = e.descriptor.artifactType;
        try {
          const m = parseImageManifest(await this.getBlob(e.descriptor.digest), 'manifest');
          row.size += m.config.size + m.layers.reduce((s, l) => s + l.size, 0);
          const created = m.annotations?.[ANNOTATION_CREATED];
          const version = m.annotations?.[ANNOTATION_VERSION];
          if (created) row.created = created;
          if (version) row.version = version;
          if (m.artifactType) row.artifactType = m.artifactType;
        } catch {
          // listed with the index's information only
        }
        rows.set(key, row);
      }
      if (e.tag !== undefined && !row.tags.includes(e.tag)) row.tags.push(e.tag);
    }
    return [...rows.values()].sort(
      (a, b) => a.name.localeCompare(b.name) || (b.created ?? '').localeCompare(a.created ?? ''),
    );
  }

  /** Points tag `dst` at the package `src` resolves to. */
  async tag(src: string | Reference, dst: string | Reference): Promise<StoredPackage> {
    const from = await this.resolve(src);
    const to = toRef(dst);
    if (to.digest !== undefined)
      throw new PackageError(
        'INVALID_PACKAGE',
        `cannot tag as "${formatReference(to)}": the target must be name:tag, not a digest`,
      );
    return this.importPackage({ manifestBytes: from.manifestBytes, blobs: [] }, to);
  }

  /** Removes one tag; returns the digest it pointed at. Blobs stay until gc(). */
  async untag(reference: string | Reference): Promise<string> {
    const ref = toRef(reference);
    if (ref.digest !== undefined)
      throw new PackageError(
        'INVALID_REFERENCE',
        `untag ${formatReference(ref)}: give name:tag, not a digest (use remove)`,
      );
    return this.updateIndex(async (index) => {
      const entries = await this.entries(index);
      const name = referenceName(ref);
      const hit = entries.find((e) => e.name === name && e.tag === ref.tag);
      if (!hit) throw this.notFound(ref, entries);
      index.manifests = index.manifests.filter((d) => d !== hit.descriptor);
      return hit.descriptor.digest;
    });
  }

  /**
   * Removes a package reference: `name:tag` removes that tag; `name@sha256:…`
   * removes every tag of that name pointing at the digest. Returns the
   * references removed. Blobs stay until gc().
   */
  async remove(reference: string | Reference): Promise<string[]> {
    const ref = toRef(reference);
    return this.updateIndex(async (index) => {
      const entries = await this.entries(index);
      const name = referenceName(ref);
      const hits = entries.filter(
        (e) => e.name === name && (ref.digest !== undefined ? e.descriptor.digest === ref.digest : e.tag === ref.tag),
      );
      if (hits.length === 0) throw this.notFound(ref, entries);
      const drop = new Set(hits.map((h) => h.descriptor));
      index.manifests = index.manifests.filter((d) => !drop.has(d));
      return hits.map((h) => (h.tag !== undefined ? `${name}:${h.tag}` : `${name}@${h.descriptor.digest}`));
    });
  }

  /**
   * Deletes blobs not reachable from index.json (through manifests and
   * nested indexes) and leftover temporary files. Runs under the index lock,
   * so a package being tagged concurrently is either reachable or re-written
   * by its writer (see importPackage).
   */
  async gc(options: GcOptions = {}): Promise<GcResult> {
    const grace = options.gracePeriodMs ?? 0;
    await this.init();
    return withFileLock(
      this.lockPath,
      async () => {
        const index = await this.readIndex();
        const reachable = new Set<string>();
        const visit = async (d: Descriptor, depth: number): Promise<void> => {
          if (reachable.has(d.digest) || depth > 8) return;
          reachable.add(d.digest);
          let bytes: Uint8Array;
          try {
            bytes = await this.getBlob(d.digest);
          } catch {
            return;
          }
          if (
            d.mediaType === OCI_IMAGE_INDEX ||
            d.mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json'
          ) {
            try {
              for (const child of parseImageIndex(bytes, d.digest).manifests) await visit(child, depth + 1);
            } catch {
              /* not an index after all */
            }
            return;
          }
          try {
            const m = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<ImageManifest>;
            for (const c of [m.config, ...(m.layers ?? []), m.subject]) {
              if (c && typeof c.digest === 'string') reachable.add(c.digest);
            }
          } catch {
            /* not JSON: a blob, nothing more to follow */
          }
        };
        for (const d of index.manifests) await visit(d, 0);
        for (const digest of options.keep ?? []) await visit({ mediaType: OCI_IMAGE_MANIFEST, digest, size: 0 }, 0);

        const result: GcResult = { removed: [], freedBytes: 0, removedTempFiles: 0 };
        const now = Date.now();
        const blobDir = join(this.root, 'blobs', 'sha256');
        for (const file of await readdir(blobDir).catch(() => [] as string[])) {
          const digest = `sha256:${file}`;
          if (reachable.has(digest)) continue;
          const path = join(blobDir, file);
          const st = await stat(path).catch(() => undefined);
          if (!st?.isFile() || now - st.mtimeMs < grace) continue;
          await unlink(path).catch(() => undefined);
          result.removed.push(digest);
          result.freedBytes += st.size;
        }
        // Temporary files of writers that died: in .kbpf-tmp/, and index.json / oci-layout temp files in the root.
        const temps = [
          ...(await readdir(this.tmpDir).catch(() => [] as string[])).map((f) => join(this.tmpDir, f)),
          ...(await readdir(this.root).catch(() => [] as string[]))
            .filter((f) => /^\.(index\.json|oci-layout)\.tmp-/.test(f) || /^index\.json\.lock\.stale-/.test(f))
            .map((f) => join(this.root, f)),
        ];
        for (const path of temps) {
          const st = await stat(path).catch(() => undefined);
          if (!st || now - st.mtimeMs < Math.max(grace, 60_000)) continue;
          await unlink(path).catch(() => undefined);
          result.removedTempFiles++;
        }
        return result;
      },
      this.lockOptions,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}
