// Cosign's key-based signature format, as it is stored in an OCI registry:
//
//   <repository>:sha256-<hex>.sig   an OCI image manifest beside the signed manifest (digest
//                                    sha256:<hex>), one layer per signature:
//     layer mediaType   application/vnd.dev.cosign.simplesigning.v1+json
//     layer blob        the simple-signing payload: JSON naming the signed manifest digest
//     layer annotation  dev.cosignproject.cosign/signature = base64 of the ASN.1 DER ECDSA
//                       signature (SHA-256) of the payload bytes
//
// The payload is {"critical":{"identity":{"docker-reference":REPO},"image":
// {"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},"optional":…}.
// kbpf writes and reads exactly this; `cosign verify --key NAME.pub` accepts kbpf's signatures
// (with --insecure-ignore-tlog, since kbpf does not upload to a transparency log) and kbpf
// accepts cosign's key-based ones. Keyless (certificate) signatures and bundles are ignored.
import { Corrupted, KbpfError } from '../../errors.js';
import { digestHex, sha256Digest } from '../digest.js';
import { type Descriptor, type ImageManifest, parseImageManifest } from '../manifest.js';
import { OCI_IMAGE_MANIFEST } from '../media-types.js';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

/** Signatures one manifest may hold, and bytes of one payload: bounded like every outside input. */
export const SIGNATURE_LIMITS = { signatures: 64, payloadBytes: 64 * 1024, signatureBytes: 1024 } as const;

const SIG_TAG_RE = /^sha256-([a-f0-9]{64})\.sig$/;

/** `sha256-<hex>.sig`: the tag of the signatures of manifest `digest`. */
export function signatureTag(digest: string): string {
  return `sha256-${digestHex(digest)}.sig`;
}

export function isSignatureTag(tag: string | undefined): boolean {
  return tag !== undefined && SIG_TAG_RE.test(tag);
}

export interface SimpleSigningPayload {
  critical: {
    identity: { 'docker-reference': string };
    image: { 'docker-manifest-digest': string };
    type: string;
  };
  optional: Record<string, unknown> | null;
}

/** The payload bytes signed for manifest `digest` of repository `dockerReference`. */
export function buildPayload(dockerReference: string, digest: string): Uint8Array {
  const p: SimpleSigningPayload = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': digest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional: null,
  };
  return Buffer.from(JSON.stringify(p), 'utf8');
}

function corrupted(where: string, why: string): never {
  throw new KbpfError(Corrupted, `${where}: ${why}`);
}

/** Parses a payload; throws Corrupted unless it is a cosign simple-signing payload. */
export function parsePayload(bytes: Uint8Array, where: string): SimpleSigningPayload {
  if (bytes.byteLength > SIGNATURE_LIMITS.payloadBytes)
    corrupted(where, `payload is ${bytes.byteLength} bytes, more than ${SIGNATURE_LIMITS.payloadBytes}`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    corrupted(where, `payload is not JSON (${(err as Error).message})`);
  }
  const p = v as Partial<SimpleSigningPayload> | null;
  const c = p?.critical;
  const digest = c?.image?.['docker-manifest-digest'];
  if (!c || typeof c !== 'object' || typeof digest !== 'string')
    corrupted(where, 'payload has no critical.image.docker-manifest-digest');
  if (c.type !== COSIGN_SIGNATURE_TYPE) corrupted(where, `payload type is ${JSON.stringify(c.type)}`);
  return p as SimpleSigningPayload;
}

/** One signature as stored: the payload's descriptor (with the signature annotation) and its bytes. */
export interface SignatureLayer {
  descriptor: Descriptor;
  payload: Uint8Array;
  /** DER signature bytes */
  signature: Uint8Array;
}

export function signatureLayer(payload: Uint8Array, signature: Uint8Array): SignatureLayer {
  return {
    descriptor: {
      mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
      digest: sha256Digest(payload),
      size: payload.byteLength,
      annotations: { [SIGNATURE_ANNOTATION]: Buffer.from(signature).toString('base64') },
    },
    payload,
    signature,
  };
}

/** The config blob of a signature manifest (an empty image config, as cosign writes one). */
export function signatureConfig(layers: readonly Descriptor[]): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
}

/** The signature manifest holding `layers`, with its config blob. */
export function buildSignatureManifest(layers: readonly Descriptor[]): { manifest: Uint8Array; config: Uint8Array } {
  const config = signatureConfig(layers);
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_IMAGE_MANIFEST,
    config: { mediaType: OCI_IMAGE_CONFIG, digest: sha256Digest(config), size: config.byteLength },
    layers: [...layers],
  };
  return { manifest: Buffer.from(JSON.stringify(m)), config };
}

/** The signature layers a signature manifest lists (other layers, e.g. attestations, are skipped). */
export function parseSignatureManifest(bytes: Uint8Array, where: string): Descriptor[] {
  const m = parseImageManifest(bytes, where);
  const layers = m.layers.filter((l) => l.mediaType === SIMPLE_SIGNING_MEDIA_TYPE);
  if (layers.length > SIGNATURE_LIMITS.signatures)
    corrupted(where, `${layers.length} signatures, more than the ${SIGNATURE_LIMITS.signatures} read`);
  for (const l of layers)
    if (l.size > SIGNATURE_LIMITS.payloadBytes)
      corrupted(where, `a signature payload of ${l.size} bytes, more than ${SIGNATURE_LIMITS.payloadBytes}`);
  return layers;
}

/** The signature bytes of a layer, or undefined when the annotation is missing or not base64. */
export function signatureOf(d: Descriptor): Uint8Array | undefined {
  const b64 = d.annotations?.[SIGNATURE_ANNOTATION];
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const sig = Buffer.from(b64, 'base64');
  return sig.byteLength > 0 && sig.byteLength <= SIGNATURE_LIMITS.signatureBytes ? sig : undefined;
}

/** Layers of `a` then those of `b` not already there (same payload and signature). */
export function mergeLayers(a: readonly Descriptor[], b: readonly Descriptor[]): Descriptor[] {
  const key = (d: Descriptor) => `${d.digest} ${d.annotations?.[SIGNATURE_ANNOTATION] ?? ''}`;
  const seen = new Set(a.map(key));
  return [...a, ...b.filter((d) => !seen.has(key(d)))];
}
