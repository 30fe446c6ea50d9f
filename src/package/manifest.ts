/**
 * OCI structures (descriptor, image manifest, image index) and the kbpf
 * package manifest: building them, and validating what is read back.
 */

import { DIGEST_RE } from './digest.js';
import { PackageError } from './errors.js';
import {
  ANNOTATION_CREATED,
  ANNOTATION_DESCRIPTION,
  ANNOTATION_TITLE,
  ANNOTATION_VERSION,
  BPFMAN_MAPS,
  BPFMAN_PROGRAMS,
  DOCKER_MANIFEST_LIST,
  DOCKER_MANIFEST_V2,
  KBPF_ARTIFACT_TYPE,
  KBPF_CONFIG,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
} from './media-types.js';
import { isValidTag, parseReference } from './reference.js';

export type Annotations = Record<string, string>;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Annotations;
  artifactType?: string;
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Annotations;
}

/**
 * The package manifest carried in the config blob. Opaque to the store except
 * for `name` (a valid repository name) and `version` (a valid tag).
 */
export interface PackageManifest {
  name: string;
  version: string;
  description?: string;
  [key: string]: unknown;
}

/** JSON with object keys sorted and no whitespace: the same object always gives the same bytes and digest. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function invalid(where: string, why: string): never {
  throw new PackageError('INVALID_PACKAGE', `${where}: ${why}`);
}

function checkAnnotations(v: unknown, where: string): void {
  if (v === undefined) return;
  if (!isObject(v)) invalid(where, '"annotations" is not an object');
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') invalid(where, `annotation "${k}" is not a string`);
  }
}

export function validateDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) invalid(where, 'descriptor is not an object');
  if (typeof v.mediaType !== 'string' || v.mediaType.length === 0) invalid(where, 'descriptor has no "mediaType"');
  if (typeof v.digest !== 'string' || !DIGEST_RE.test(v.digest)) {
    invalid(where, `descriptor digest ${JSON.stringify(v.digest)} is not "sha256:<64 lowercase hex>"`);
  }
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) {
    invalid(where, `descriptor size ${JSON.stringify(v.size)} is not a non-negative integer`);
  }
  checkAnnotations(v.annotations, where);
  return v as unknown as Descriptor;
}

/** Parses and validates an OCI image manifest; refuses indexes and Docker manifests with a clear message. */
export function parseImageManifest(bytes: Uint8Array, where: string): ImageManifest {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    invalid(where, `manifest is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(v)) invalid(where, 'manifest is not a JSON object');
  const mt = v.mediaType;
  if (mt === OCI_IMAGE_INDEX || mt === DOCKER_MANIFEST_LIST || (mt === undefined && Array.isArray(v.manifests))) {
    invalid(where, 'is an image index (a multi-platform list), not a kbpf package manifest');
  }
  if (mt === DOCKER_MANIFEST_V2) invalid(where, 'is a Docker image manifest, not an OCI kbpf package');
  if (mt !== undefined && mt !== OCI_IMAGE_MANIFEST)
    invalid(where, `manifest media type is ${JSON.stringify(mt)}, expected ${OCI_IMAGE_MANIFEST}`);
  if (v.schemaVersion !== 2) invalid(where, `schemaVersion is ${JSON.stringify(v.schemaVersion)}, expected 2`);
  validateDescriptor(v.config, `${where} (config)`);
  if (!Array.isArray(v.layers)) invalid(where, '"layers" is not an array');
  v.layers.forEach((l, i) => {
    validateDescriptor(l, `${where} (layer ${i})`);
  });
  if (v.artifactType !== undefined && typeof v.artifactType !== 'string')
    invalid(where, '"artifactType" is not a string');
  checkAnnotations(v.annotations, where);
  return { ...v, mediaType: OCI_IMAGE_MANIFEST } as unknown as ImageManifest;
}

/**
 * What one package may be: the registry (or the store) says how big each blob is before it is
 * read, so a package past these is refused before anything is downloaded or read into memory.
 */
export const PACKAGE_LIMITS = {
  /** layers of one package (objects, source, wasm) */
  layers: 32,
  /** bytes of one layer */
  layerBytes: 256 * 1024 * 1024,
  /** bytes of the config blob (the package spec) */
  configBytes: 1024 * 1024,
  /** bytes of config and layers together */
  totalBytes: 512 * 1024 * 1024,
} as const;

/** Throws an Invalid PackageError when the manifest is past PACKAGE_LIMITS. */
export function checkPackageLimits(m: ImageManifest, where: string): void {
  const L = PACKAGE_LIMITS;
  if (m.layers.length > L.layers)
    invalid(where, `has ${m.layers.length} layers, more than the ${L.layers} a package may have`);
  if (m.config.size > L.configBytes)
    invalid(where, `its config blob is ${m.config.size} bytes, more than the ${L.configBytes} allowed`);
  let total = m.config.size;
  m.layers.forEach((l, i) => {
    if (l.size > L.layerBytes)
      invalid(where, `layer ${i} (${l.digest}) is ${l.size} bytes, more than the ${L.layerBytes} a layer may have`);
    total += l.size;
  });
  if (total > L.totalBytes)
    invalid(where, `is ${total} bytes in all, more than the ${L.totalBytes} a package may have`);
}

/** True when the manifest is a kbpf package (by artifactType, or by config media type for registries that drop artifactType). */
export function isKbpfPackage(m: ImageManifest): boolean {
  return m.artifactType === KBPF_ARTIFACT_TYPE || m.config.mediaType === KBPF_CONFIG;
}

export function parseImageIndex(bytes: Uint8Array, where: string): ImageIndex {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    invalid(where, `index is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(v)) invalid(where, 'index is not a JSON object');
  if (v.schemaVersion !== 2) invalid(where, `schemaVersion is ${JSON.stringify(v.schemaVersion)}, expected 2`);
  if (!Array.isArray(v.manifests)) invalid(where, '"manifests" is not an array');
  v.manifests.forEach((d, i) => {
    validateDescriptor(d, `${where} (manifests[${i}])`);
  });
  return v as unknown as ImageIndex;
}

/** Checks the parts of the package manifest the store relies on: `name` and `version`. */
export function validatePackageManifest(v: unknown, where = 'package manifest'): PackageManifest {
  if (!isObject(v)) invalid(where, 'is not a JSON object');
  if (typeof v.name !== 'string' || v.name.length === 0) invalid(where, 'has no "name" (a string)');
  try {
    const ref = parseReference(v.name, { defaultTag: null });
    if (ref.registry !== undefined || ref.tag !== undefined || ref.digest !== undefined)
      throw new Error('has a host, tag or digest');
  } catch {
    invalid(
      where,
      `"name" ${JSON.stringify(v.name)} is not a valid package name (lowercase letters, digits, ".", "_", "-", "/" between components)`,
    );
  }
  if (typeof v.version !== 'string' || v.version.length === 0) invalid(where, 'has no "version" (a string)');
  if (!isValidTag(v.version)) {
    invalid(
      where,
      `"version" ${JSON.stringify(v.version)} cannot be used as a tag (letters, digits, "_", ".", "-"; at most 128; not starting with "." or "-")`,
    );
  }
  if (v.description !== undefined && typeof v.description !== 'string') invalid(where, '"description" is not a string');
  return v as PackageManifest;
}

export interface BuildManifestInput {
  pkg: PackageManifest;
  config: Descriptor;
  layers: Descriptor[];
  /** RFC 3339 time for `org.opencontainers.image.created`. */
  created: string;
  /** bpfman interoperability: program name → program type, map name → map type. */
  bpfmanPrograms?: Record<string, string>;
  bpfmanMaps?: Record<string, string>;
  /** Extra manifest annotations (they may not override the ones above). */
  annotations?: Annotations;
}

export function buildImageManifest(input: BuildManifestInput): ImageManifest {
  const annotations: Annotations = { ...(input.annotations ?? {}) };
  annotations[ANNOTATION_TITLE] = input.pkg.name;
  annotations[ANNOTATION_VERSION] = input.pkg.version;
  annotations[ANNOTATION_CREATED] = input.created;
  if (input.pkg.description) annotations[ANNOTATION_DESCRIPTION] = input.pkg.description;
  if (input.bpfmanPrograms && Object.keys(input.bpfmanPrograms).length > 0)
    annotations[BPFMAN_PROGRAMS] = canonicalJson(input.bpfmanPrograms);
  if (input.bpfmanMaps && Object.keys(input.bpfmanMaps).length > 0)
    annotations[BPFMAN_MAPS] = canonicalJson(input.bpfmanMaps);
  return {
    schemaVersion: 2,
    mediaType: OCI_IMAGE_MANIFEST,
    artifactType: KBPF_ARTIFACT_TYPE,
    config: input.config,
    layers: input.layers,
    annotations,
  };
}
