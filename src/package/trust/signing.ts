// Signing and verifying packages, in the local store or in a registry, in cosign's key-based
// format (simple-signing.ts). A signature says "the holder of this key vouches for manifest
// sha256:…"; verifying finds, among the signatures kept beside the package, one that a given
// public key made over a payload naming exactly that digest.
import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { Corrupted, KbpfError, NotFound, Refused } from '../../errors.js';
import { verifyBytes } from '../digest.js';
import type { LayoutStore } from '../layout-store.js';
import type { Descriptor } from '../manifest.js';
import { parseReference, type Reference, referenceName } from '../reference.js';
import type { RegistryClient } from '../registry-client.js';
import type { PrivateKey, PublicKey } from './keys.js';
import { buildPayload, parsePayload, signatureLayer, signatureOf, signatureTag } from './simple-signing.js';

/** A signature as found beside a package: the payload's descriptor (with the signature) and bytes. */
export interface FoundSignature {
  descriptor: Descriptor;
  payload: Uint8Array;
}

/** Where signatures of a package are read and written: the local store, or a registry. */
export interface SignatureSource {
  /** what to call it in messages: the store's path, or host/repository */
  readonly where: string;
  /** the repository the package is in, as a docker-reference for the payload */
  readonly repository: string;
  /** where its signatures are: `repository:sha256-<hex>.sig` */
  signatureReference(digest: string): string;
  read(digest: string): Promise<FoundSignature[]>;
  add(digest: string, signatures: FoundSignature[]): Promise<number>;
}

/** The signatures of a package kept in the local store (tag `name:sha256-<hex>.sig`). */
export function storeSignatures(store: LayoutStore, name: string): SignatureSource {
  return {
    where: `the package store ${store.root}`,
    repository: name,
    signatureReference: (digest) => `${name}:${signatureTag(digest)}`,
    async read(digest) {
      const found = await store.signatures(name, digest);
      const out: FoundSignature[] = [];
      for (const d of found?.layers ?? []) out.push({ descriptor: d, payload: await store.getBlob(d.digest, d.size) });
      return out;
    },
    add: (digest, signatures) => store.addSignatures(name, digest, signatures),
  };
}

/** The signatures of a package in a registry (tag `host/repository:sha256-<hex>.sig`). */
export function registrySignatures(client: RegistryClient, reference: string | Reference): SignatureSource {
  const ref = typeof reference === 'string' ? parseReference(reference, { defaultTag: null }) : reference;
  const repo: Reference = { repository: ref.repository };
  if (ref.registry) repo.registry = ref.registry;
  const name = referenceName(repo);
  return {
    where: name,
    repository: name,
    signatureReference: (digest) => `${name}:${signatureTag(digest)}`,
    read: (digest) => client.getSignatures(repo, digest),
    add: (digest, signatures) => client.putSignatures(repo, digest, signatures),
  };
}

export interface SignResult {
  digest: string;
  /** where the signature went: `repository:sha256-<hex>.sig` */
  signatureReference: string;
  keyId: string;
  /** signatures now kept for the package */
  signatures: number;
}

/** Signs manifest `digest` with `key` and adds the signature beside the package. */
export async function signPackage(source: SignatureSource, digest: string, key: PrivateKey): Promise<SignResult> {
  const payload = buildPayload(source.repository, digest);
  const signature = cryptoSign('sha256', payload, key.key);
  const layer = signatureLayer(payload, signature);
  const signatures = await source.add(digest, [{ descriptor: layer.descriptor, payload }]);
  return { digest, signatureReference: source.signatureReference(digest), keyId: key.keyId, signatures };
}

/** A valid signature: who made it (the key it verifies with) and what reference the payload names. */
export interface Signer {
  name: string;
  keyId: string;
  /** the payload's docker-reference (informational: only the digest is checked) */
  reference: string;
}

export interface VerifyResult {
  digest: string;
  signatureReference: string;
  /** signatures found beside the package */
  found: number;
  /** keys that made a valid signature over this digest, in the order the keys were given */
  signers: Signer[];
  /** what was wrong with the others: a payload for another digest, unreadable payloads */
  problems: string[];
}

function keyList(keys: readonly PublicKey[]): string {
  return keys.length ? keys.map((k) => `${k.name} (${k.keyId})`).join(', ') : 'none';
}

/**
 * Checks every signature kept beside `digest` against every key. Never throws for a bad
 * signature (see `requireSigned` for that); throws only when the signatures cannot be read.
 */
export async function verifyPackage(
  source: SignatureSource,
  digest: string,
  keys: readonly PublicKey[],
): Promise<VerifyResult> {
  const result: VerifyResult = {
    digest,
    signatureReference: source.signatureReference(digest),
    found: 0,
    signers: [],
    problems: [],
  };
  let found: FoundSignature[];
  try {
    found = await source.read(digest);
  } catch (err) {
    if (err instanceof KbpfError && err.kind === NotFound) found = [];
    else throw err;
  }
  result.found = found.length;
  const signed = new Set<string>();
  for (const [i, s] of found.entries()) {
    const where = `signature ${i + 1} of ${found.length} (${s.descriptor.digest})`;
    const sig = signatureOf(s.descriptor);
    if (!sig) {
      result.problems.push(`${where}: no dev.cosignproject.cosign/signature annotation (not a key-based signature)`);
      continue;
    }
    try {
      verifyBytes(s.payload, s.descriptor.digest, where, s.descriptor.size);
    } catch (err) {
      result.problems.push((err as Error).message);
      continue;
    }
    const key = keys.find((k) => safeVerify(s.payload, k, sig));
    if (!key) continue; // another key's signature: not a problem, just not one of ours
    let payloadDigest: string;
    let reference: string;
    try {
      const p = parsePayload(s.payload, where);
      payloadDigest = p.critical.image['docker-manifest-digest'];
      reference = String(p.critical.identity?.['docker-reference'] ?? '');
    } catch (err) {
      result.problems.push(`${(err as Error).message} (signed by ${key.name} ${key.keyId})`);
      continue;
    }
    if (payloadDigest !== digest) {
      result.problems.push(`the signature by ${key.name} (${key.keyId}) is for ${payloadDigest}, not ${digest}`);
      continue;
    }
    if (!signed.has(key.keyId)) {
      signed.add(key.keyId);
      result.signers.push({ name: key.name, keyId: key.keyId, reference });
    }
  }
  result.signers.sort(
    (a, b) => keys.findIndex((k) => k.keyId === a.keyId) - keys.findIndex((k) => k.keyId === b.keyId),
  );
  return result;
}

function safeVerify(payload: Uint8Array, key: PublicKey, sig: Uint8Array): boolean {
  try {
    return cryptoVerify('sha256', payload, key.key, sig);
  } catch {
    return false; // a malformed DER signature
  }
}

/**
 * The error for a package that no given key signed: Refused when its signatures are missing or
 * by other keys, Corrupted when one of the keys signed another digest or a payload is unreadable.
 * Names the digest and the keys tried.
 */
export function untrustedError(v: VerifyResult, keys: readonly PublicKey[], label = v.digest): KbpfError {
  const tried = `keys tried: ${keyList(keys)}`;
  if (v.found === 0)
    return new KbpfError(Refused, `${label}: signature missing for ${v.digest} (no ${v.signatureReference}); ${tried}`);
  const forOther = v.problems.find((p) => /^the signature by .* is for sha256:/.test(p));
  if (forOther)
    return new KbpfError(Corrupted, `${label}: ${forOther}; no valid signature for ${v.digest}; ${tried}`, {
      details: v.problems,
    });
  return new KbpfError(
    Refused,
    `${label}: ${v.found} signature${v.found === 1 ? '' : 's'} for ${v.digest}, none by a trusted key; ${tried}`,
    v.problems.length ? { details: v.problems } : {},
  );
}

/** Verifies and returns the signers, or throws untrustedError. */
export async function requireSigned(
  source: SignatureSource,
  digest: string,
  keys: readonly PublicKey[],
  label?: string,
): Promise<VerifyResult> {
  const v = await verifyPackage(source, digest, keys);
  if (v.signers.length === 0) throw untrustedError(v, keys, label);
  return v;
}
