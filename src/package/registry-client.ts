/**
 * Push and pull kbpf packages to and from an OCI distribution registry
 * (distribution-spec v1.1), with Node's built-in fetch.
 *
 * - Transport: plain HTTP for loopback registries (localhost, 127.0.0.0/8,
 *   [::1]) and for hosts the caller marks insecure; HTTPS otherwise.
 * - Auth: anonymous first; on 401 the WWW-Authenticate challenge is answered,
 *   Basic with the caller's credentials, or Bearer by fetching a token from
 *   the realm (with Basic credentials, an identity token, or anonymously).
 * - Push: blobs the registry already has (HEAD) are skipped; others are
 *   uploaded with POST then PUT ?digest= (blobs above `chunkSize` in PATCH
 *   chunks); the image manifest is PUT last with the OCI media type.
 * - Pull: every manifest and blob digest (and size) is verified before it is
 *   stored; the local tag is written only after all blobs are stored. Blobs are
 *   streamed into the store while they are hashed (never held whole in memory);
 *   the package limits (layer count and sizes) and the package spec schema are
 *   checked before anything is downloaded or tagged; a pull has one deadline.
 * - Credentials go only where they belong: never to a token realm or an upload
 *   Location on another site, never over plain HTTP to a host that is not
 *   loopback, and never along a redirect to another origin (redirects are
 *   followed by hand, and an HTTPS to HTTP redirect is refused).
 */

import { readFile } from 'node:fs/promises';
import { Refused } from '../errors.js';
import {
  authFileCredentials,
  type Challenge,
  type Credentials,
  type CredentialsProvider,
  parseWwwAuthenticate,
} from './auth.js';
import { sha256Digest, verifyBytes } from './digest.js';
import { DigestMismatchError, NotFoundError, PackageError, RegistryError } from './errors.js';
import type { BlobWithBytes, LayoutStore, StagedBlob } from './layout-store.js';
import {
  checkPackageLimits,
  type Descriptor,
  type ImageManifest,
  isKbpfPackage,
  parseImageManifest,
  validatePackageManifest,
} from './manifest.js';
import {
  ANNOTATION_TITLE,
  DOCKER_MANIFEST_LIST,
  DOCKER_MANIFEST_V2,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
} from './media-types.js';
import { claimsPackageSpec, validatePackageSpec } from './package-spec.js';
import { formatReference, isLoopbackRegistry, parseReference, type Reference } from './reference.js';
import {
  buildSignatureManifest,
  mergeLayers,
  OCI_IMAGE_CONFIG,
  parseSignatureManifest,
  SIGNATURE_LIMITS,
  signatureTag,
} from './trust/simple-signing.js';

export interface ProgressEvent {
  /** What is being transferred. */
  phase: 'upload' | 'download';
  digest: string;
  mediaType: string;
  /** The layer's file name, when it has one. */
  title?: string;
  done: number;
  total: number;
  /** True when the blob was already there and nothing was transferred. */
  skipped?: boolean;
}

export type ProgressCallback = (event: ProgressEvent) => void;

export interface RegistryClientOptions {
  /** Credentials for every registry, or a provider per registry. Default: docker/podman auth files (see auth.ts). */
  credentials?: Credentials | CredentialsProvider;
  /** Speak plain HTTP to these registries (`host:port`), or to all when true. Loopback registries always use HTTP. */
  insecure?: boolean | string[];
  /** Per-request timeout in ms. Default 120000. */
  timeoutMs?: number;
  /** Blobs larger than this are uploaded in PATCH chunks of this size. Default 8 MiB. */
  chunkSize?: number;
  userAgent?: string;
  /** For tests: a fetch implementation. Default globalThis.fetch. */
  fetch?: typeof fetch;
}

export interface PushOptions {
  onProgress?: ProgressCallback;
  /** Push the package's signatures from the store too (default true). */
  signatures?: boolean;
}

export interface PushResult {
  /** The remote reference pushed to, `host/name:tag`. */
  reference: string;
  digest: string;
  uploaded: number;
  skipped: number;
  bytesUploaded: number;
  /** Signatures pushed beside the package (`sha256-<hex>.sig`); absent when it has none. */
  signatures?: number;
}

export interface PullOptions {
  /** Local reference to store it under. Default: the remote reference as given. */
  tag?: string | Reference;
  onProgress?: ProgressCallback;
  /** The whole pull must end within this many ms (default 10 minutes). */
  deadlineMs?: number;
  /** Bring the package's signatures too (default true). */
  signatures?: boolean;
}

export interface PullResult {
  reference: string;
  /** The local reference written. */
  localReference: string;
  digest: string;
  manifest: ImageManifest;
  downloaded: number;
  present: number;
  bytesDownloaded: number;
  /** Signatures brought with the package; absent when the registry has none. */
  signatures?: number;
  /** Why the registry's signatures could not be brought (the package was pulled all the same). */
  signatureProblem?: string;
}

export interface RemoteManifest {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

/** The context of one operation, for requests and for error messages. */
interface Op {
  verb: string;
  label: string;
  registry: string;
  repository: string;
  scope: string;
  /** Aborts every request of the operation (its deadline). */
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const DEFAULT_PULL_DEADLINE_MS = 10 * 60_000;

/** `example.com` of `auth.example.com`; an IP address or a one-label host is its own site. */
function siteOf(hostname: string): string {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (/^[0-9.]+$/.test(h) || h.includes(':')) return h;
  const labels = h.split('.');
  return labels.slice(-2).join('.');
}

function hostnameOf(registry: string): string {
  return new URL(`http://${registry}/`).hostname;
}

const MANIFEST_ACCEPT = [OCI_IMAGE_MANIFEST, OCI_IMAGE_INDEX, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST].join(', ');
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

interface RequestInit2 {
  method: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Status codes that are a success; others throw (unless `allow` has them). */
  expect: number[];
  /** Status codes returned to the caller without throwing. */
  allow?: number[];
  what: string;
}

function describeNetworkError(err: unknown): { text: string; code?: string } {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return { text: 'timed out', code: 'ETIMEDOUT' };
  const cause = e?.cause;
  if (cause && (cause.code || cause.message)) {
    const r: { text: string; code?: string } = { text: [cause.code, cause.message].filter(Boolean).join(' ') };
    if (cause.code) r.code = cause.code;
    return r;
  }
  return { text: e?.message ?? String(err) };
}

async function errorDetail(res: Response): Promise<{ text: string; codes: string[] }> {
  let body = '';
  try {
    body = await res.text();
  } catch {
    // no body
  }
  const codes: string[] = [];
  if (body) {
    try {
      const v = JSON.parse(body) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
      if (Array.isArray(v.errors) && v.errors.length > 0) {
        const parts = v.errors.map((e) => {
          if (e.code) codes.push(e.code);
          let s = [e.code, e.message].filter(Boolean).join(': ');
          if (e.detail !== undefined && e.detail !== null && e.detail !== '') {
            const d = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
            s += ` (${d.length > 200 ? `${d.slice(0, 200)}…` : d})`;
          }
          return s;
        });
        return { text: parts.join('; '), codes };
      }
    } catch {
      // not JSON
    }
  }
  const text = body.replace(/\s+/g, ' ').trim();
  return { text: text.length > 300 ? `${text.slice(0, 300)}…` : text, codes };
}

function titleOf(d: Descriptor): string | undefined {
  return d.annotations?.[ANNOTATION_TITLE];
}

export class RegistryClient {
  private readonly credentials: CredentialsProvider;
  private readonly insecure: boolean | string[];
  private readonly timeoutMs: number;
  private readonly chunkSize: number;
  private readonly userAgent: string;
  private readonly fetchImpl: typeof fetch;
  /** Authorization header values by `registry` (basic) or `registry scope` (bearer). */
  private readonly authCache = new Map<string, string>();
  private readonly basicRegistries = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    const c = options.credentials;
    this.credentials = c === undefined ? authFileCredentials() : typeof c === 'function' ? c : async () => c;
    this.insecure = options.insecure ?? false;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.chunkSize = options.chunkSize ?? 8 * 1024 * 1024;
    this.userAgent = options.userAgent ?? 'kbpf';
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** `http` for loopback and insecure registries, `https` otherwise. */
  schemeFor(registry: string): 'http' | 'https' {
    if (isLoopbackRegistry(registry)) return 'http';
    if (this.insecure === true) return 'http';
    if (Array.isArray(this.insecure) && this.insecure.includes(registry)) return 'http';
    return 'https';
  }

  private baseUrl(registry: string): string {
    return `${this.schemeFor(registry)}://${registry}`;
  }

  private op(verb: string, ref: Reference, label: string, actions: string): Op {
    if (!ref.registry) {
      throw new PackageError(
        'INVALID_REFERENCE',
        `${verb} ${label}: no registry in the reference; write host[:port]/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}`,
      );
    }
    return {
      verb,
      label,
      registry: ref.registry,
      repository: ref.repository,
      scope: `repository:${ref.repository}:${actions}`,
    };
  }

  private fail(
    op: Op,
    res: Response,
    what: string,
    detail: { text: string; codes: string[] },
    hint = '',
  ): RegistryError {
    const status = `${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    const msg = `${op.verb} ${op.label}: ${what}: registry answered ${status}${detail.text ? `: ${detail.text}` : ''}${hint}`;
    return new RegistryError(msg, res.status, detail.codes);
  }

  /** True when `url` is on the registry's own origin: only there does its Authorization go. */
  private ownOrigin(op: Op, url: string): boolean {
    return new URL(url).origin === new URL(this.baseUrl(op.registry)).origin;
  }

  private signal(op: Op): AbortSignal {
    const t = AbortSignal.timeout(this.timeoutMs);
    return op.signal ? AbortSignal.any([t, op.signal]) : t;
  }

  /**
   * One HTTP request; redirects are followed by hand so that the Authorization header never
   * leaves the registry's origin, and a redirect from HTTPS to plain HTTP is refused.
   */
  private async send(op: Op, url: string, init: RequestInit2, authorization: string | undefined): Promise<Response> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const res = await this.sendOnce(op, target, init, this.ownOrigin(op, target) ? authorization : undefined);
      const location = res.headers.get('location');
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && location;
      if (!redirect) return res;
      await res.body?.cancel().catch(() => undefined);
      if (hop >= MAX_REDIRECTS)
        throw new PackageError(
          'REGISTRY',
          `${op.verb} ${op.label}: ${init.what}: more than ${MAX_REDIRECTS} redirects`,
        );
      const next = new URL(location, target);
      if (new URL(target).protocol === 'https:' && next.protocol !== 'https:')
        throw new PackageError(
          'REGISTRY',
          `${op.verb} ${op.label}: ${init.what}: the registry redirected from HTTPS to ${next.protocol}//${next.host}; refused`,
          { kind: Refused },
        );
      if (init.method !== 'GET' && init.method !== 'HEAD')
        throw new PackageError(
          'REGISTRY',
          `${op.verb} ${op.label}: ${init.what}: the registry answered ${res.status} with a redirect to ${next.origin} for a ${init.method}`,
        );
      target = next.toString();
    }
  }

  private async sendOnce(
    op: Op,
    url: string,
    init: RequestInit2,
    authorization: string | undefined,
  ): Promise<Response> {
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...(init.headers ?? {}) };
    if (authorization) headers.Authorization = authorization;
    const req: RequestInit = { method: init.method, headers, signal: this.signal(op), redirect: 'manual' };
    if (init.body !== undefined) req.body = init.body as Uint8Array<ArrayBuffer>;
    try {
      return await this.fetchImpl(url, req);
    } catch (err) {
      const { text, code } = describeNetworkError(err);
      let hint = '';
      if (code === 'ECONNREFUSED') hint = ' (nothing listens there: is the registry running?)';
      else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') hint = ' (host name does not resolve)';
      else if (/SSL|TLS|CERT|wrong version number|EPROTO/i.test(text)) {
        hint = url.startsWith('https:')
          ? ' (TLS failed: if the registry speaks plain HTTP, mark it insecure)'
          : ' (the registry may expect HTTPS)';
      }
      throw new PackageError('NETWORK', `${op.verb} ${op.label}: ${init.what}: cannot reach ${url}: ${text}${hint}`, {
        cause: err,
      });
    }
  }

  /** One request, answering an authentication challenge once if the registry asks for one. */
  private async request(op: Op, url: string, init: RequestInit2): Promise<Response> {
    const cacheKey = `${op.registry} ${op.scope}`;
    let authorization =
      this.authCache.get(cacheKey) ??
      (this.basicRegistries.has(op.registry) ? this.authCache.get(op.registry) : undefined);
    let res = await this.send(op, url, init, authorization);
    if (res.status === 401 && !this.ownOrigin(op, url)) {
      const detail = await errorDetail(res);
      throw this.fail(
        op,
        res,
        init.what,
        detail,
        ` (${new URL(url).origin} is not the registry: no credentials are sent there)`,
      );
    }
    if (res.status === 401) {
      const header = res.headers.get('www-authenticate') ?? '';
      await res.body?.cancel().catch(() => undefined);
      const challenges = parseWwwAuthenticate(header);
      authorization = await this.answerChallenge(op, challenges, res, init.what);
      res = await this.send(op, url, init, authorization);
      if (res.status === 401 || res.status === 403) {
        const detail = await errorDetail(res);
        throw this.fail(op, res, init.what, detail, ' (the credentials were refused or lack the permission)');
      }
    }
    if (init.expect.includes(res.status) || init.allow?.includes(res.status)) return res;
    const detail = await errorDetail(res);
    let hint = '';
    if (res.status === 403) hint = ' (the credentials lack the permission)';
    if (res.status === 405 && init.method !== 'GET' && init.method !== 'HEAD')
      hint = ' (the registry is read-only or does not allow this operation)';
    throw this.fail(op, res, init.what, detail, hint);
  }

  private async answerChallenge(op: Op, challenges: Challenge[], res: Response, what: string): Promise<string> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    let creds: Credentials | undefined;
    try {
      creds = await this.credentials(op.registry, op.repository);
    } catch (err) {
      throw new PackageError('AUTH_CONFIG', `${op.verb} ${op.label}: ${(err as Error).message}`, { cause: err });
    }
    if (bearer) {
      if (creds?.registryToken) {
        const value = `Bearer ${creds.registryToken}`;
        this.authCache.set(`${op.registry} ${op.scope}`, value);
        return value;
      }
      const token = await this.fetchToken(op, bearer, creds);
      const value = `Bearer ${token}`;
      this.authCache.set(`${op.registry} ${op.scope}`, value);
      return value;
    }
    if (basic) {
      if (!creds?.username && !creds?.password) {
        throw this.fail(
          op,
          res,
          what,
          { text: `authentication required (Basic realm "${basic.params.realm ?? ''}")`, codes: ['UNAUTHORIZED'] },
          ` and no credentials for ${op.registry} were given (log in with skopeo/podman/docker login, or set $REGISTRY_AUTH_FILE)`,
        );
      }
      const value = `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64')}`;
      this.authCache.set(op.registry, value);
      this.basicRegistries.add(op.registry);
      return value;
    }
    const schemes = challenges.map((c) => c.scheme).join(', ') || 'none given';
    throw this.fail(op, res, what, {
      text: `authentication required with an unsupported scheme (${schemes})`,
      codes: ['UNAUTHORIZED'],
    });
  }

  /**
   * A token server may receive the registry's credentials when it is on the registry's site
   * (the same host, or e.g. auth.docker.io for registry-1.docker.io), and over HTTPS unless it is
   * on loopback.
   */
  private mayReceiveCredentials(op: Op, realm: URL): boolean {
    const host = realm.hostname;
    if (realm.protocol !== 'https:' && !isLoopbackRegistry(realm.host)) return false;
    const registryHost = hostnameOf(op.registry);
    return host === registryHost || siteOf(host) === siteOf(registryHost);
  }

  private async fetchToken(op: Op, challenge: Challenge, credentials: Credentials | undefined): Promise<string> {
    let creds = credentials;
    const realm = challenge.params.realm;
    if (!realm)
      throw new PackageError(
        'REGISTRY',
        `${op.verb} ${op.label}: the registry asked for a bearer token but named no realm (token server)`,
      );
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new PackageError('REGISTRY', `${op.verb} ${op.label}: the registry's token realm "${realm}" is not a URL`);
    }
    const service = challenge.params.service;
    const what = `token from ${url.origin}${url.pathname}`;
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new PackageError('REGISTRY', `${op.verb} ${op.label}: the token realm "${realm}" is not an http(s) URL`);
    const withheld = creds !== undefined && !this.mayReceiveCredentials(op, url);
    if (withheld) creds = undefined;
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, Accept: 'application/json' };
    let init: RequestInit;
    if (creds?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: 'kbpf',
        scope: op.scope,
      });
      if (service) form.set('service', service);
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: form.toString() };
    } else {
      if (service) url.searchParams.set('service', service);
      url.searchParams.append('scope', op.scope);
      if (creds?.username) {
        url.searchParams.set('account', creds.username);
        headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      }
      init = { method: 'GET', headers };
    }
    init.signal = this.signal(op);
    init.redirect = 'error';
    let res: Response;
    try {
      res = await this.fetchImpl(url, init);
    } catch (err) {
      throw new PackageError(
        'NETWORK',
        `${op.verb} ${op.label}: ${what}: cannot reach ${url.origin}: ${describeNetworkError(err).text}`,
        { cause: err },
      );
    }
    if (!res.ok) {
      const detail = await errorDetail(res);
      const status = `${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
      const hint =
        res.status === 401 || res.status === 403
          ? withheld
            ? ` (the credentials for ${op.registry} were not sent to ${url.origin}: a token server must be on the registry's own site, over HTTPS unless on loopback)`
            : creds
              ? ' (the credentials were refused)'
              : ` (no credentials for ${op.registry} were given)`
          : '';
      throw new RegistryError(
        `${op.verb} ${op.label}: ${what}: token server answered ${status}${detail.text ? `: ${detail.text}` : ''}${hint}`,
        res.status,
        detail.codes,
      );
    }
    let body: { token?: string; access_token?: string };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new PackageError('REGISTRY', `${op.verb} ${op.label}: ${what}: the token server's answer is not JSON`);
    }
    const token = body !== null && typeof body === 'object' ? (body.token ?? body.access_token) : undefined;
    if (typeof token !== 'string' || !token)
      throw new PackageError('REGISTRY', `${op.verb} ${op.label}: ${what}: the token server's answer has no token`);
    if (!/^[\x21-\x7e]{1,8192}$/.test(token))
      throw new PackageError(
        'REGISTRY',
        `${op.verb} ${op.label}: ${what}: the token is not printable ASCII of at most 8192 characters`,
      );
    return token;
  }

  private url(op: Op, path: string): string {
    return `${this.baseUrl(op.registry)}/v2/${op.repository}/${path}`;
  }

  // ---- low-level operations ------------------------------------------------

  /** Fetches a manifest by tag or digest and verifies its digest. */
  private async fetchManifest(op: Op, ref: Reference): Promise<RemoteManifest> {
    const which = ref.digest ?? ref.tag ?? 'latest';
    const res = await this.request(op, this.url(op, `manifests/${which}`), {
      method: 'GET',
      headers: { Accept: MANIFEST_ACCEPT },
      expect: [200],
      allow: [404],
      what: 'get manifest',
    });
    if (res.status === 404) {
      const detail = await errorDetail(res);
      throw new NotFoundError(
        `${op.verb} ${op.label}: the registry has no manifest ${which} in ${op.repository}${detail.text ? ` (${detail.text})` : ''}`,
      );
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_MANIFEST_BYTES) {
      await res.body?.cancel().catch(() => undefined);
      throw new PackageError(
        'INVALID_PACKAGE',
        `${op.verb} ${op.label}: the manifest is ${declared} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`,
      );
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `${op.verb} ${op.label}: the manifest is ${bytes.byteLength} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`,
      );
    }
    const digest = sha256Digest(bytes);
    if (ref.digest !== undefined && digest !== ref.digest) {
      throw new DigestMismatchError(
        `${op.verb} ${op.label}: the manifest the registry sent hashes to ${digest}, not the requested ${ref.digest}`,
        ref.digest,
        digest,
      );
    }
    const header = res.headers.get('docker-content-digest');
    if (header?.startsWith('sha256:') && header !== digest) {
      throw new DigestMismatchError(
        `${op.verb} ${op.label}: the manifest hashes to ${digest} but the registry says ${header} (Docker-Content-Digest)`,
        header,
        digest,
      );
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    return { digest, mediaType, bytes };
  }

  /** Size of the blob if the registry has it, else undefined. */
  private async blobSize(op: Op, digest: string): Promise<number | undefined> {
    const res = await this.request(op, this.url(op, `blobs/${digest}`), {
      method: 'HEAD',
      expect: [200],
      allow: [404],
      what: `check blob ${digest}`,
    });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404) return undefined;
    return Number(res.headers.get('content-length') ?? '-1');
  }

  private async uploadBlob(op: Op, d: Descriptor, bytes: Uint8Array, onProgress?: ProgressCallback): Promise<void> {
    const what = `upload blob ${d.digest}${titleOf(d) ? ` (${titleOf(d)})` : ''}`;
    const report = (done: number) => {
      const e: ProgressEvent = { phase: 'upload', digest: d.digest, mediaType: d.mediaType, done, total: d.size };
      const t = titleOf(d);
      if (t) e.title = t;
      onProgress?.(e);
    };
    report(0);
    const start = await this.request(op, this.url(op, 'blobs/uploads/'), {
      method: 'POST',
      expect: [202],
      what,
    });
    await start.body?.cancel().catch(() => undefined);
    let location = this.location(op, start, what);
    if (bytes.byteLength > this.chunkSize) {
      for (let offset = 0; offset < bytes.byteLength; offset += this.chunkSize) {
        const chunk = bytes.subarray(offset, Math.min(offset + this.chunkSize, bytes.byteLength));
        const res = await this.request(op, location, {
          method: 'PATCH',
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Range': `${offset}-${offset + chunk.byteLength - 1}`,
          },
          body: chunk,
          expect: [202],
          what: `${what}, chunk at ${offset}`,
        });
        await res.body?.cancel().catch(() => undefined);
        location = this.location(op, res, what);
        report(offset + chunk.byteLength);
      }
    }
    const put = new URL(location);
    put.searchParams.set('digest', d.digest);
    const last = bytes.byteLength > this.chunkSize ? new Uint8Array(0) : bytes;
    const res = await this.request(op, put.toString(), {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: last,
      expect: [201, 204],
      what,
    });
    await res.body?.cancel().catch(() => undefined);
    const stored = res.headers.get('docker-content-digest');
    if (stored && stored !== d.digest) {
      throw new DigestMismatchError(
        `${op.verb} ${op.label}: ${what}: the registry stored it as ${stored}`,
        d.digest,
        stored,
      );
    }
    report(d.size);
  }

  /**
   * The upload URL a registry names. Another origin is allowed (storage back ends do that) but
   * gets no credentials (see send); plain HTTP from an HTTPS registry is refused.
   */
  private location(op: Op, res: Response, what: string): string {
    const loc = res.headers.get('location');
    if (!loc)
      throw new PackageError(
        'REGISTRY',
        `${op.verb} ${op.label}: ${what}: the registry answered ${res.status} without a Location header`,
      );
    const url = new URL(loc, `${this.baseUrl(op.registry)}/`);
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new PackageError(
        'REGISTRY',
        `${op.verb} ${op.label}: ${what}: upload Location ${JSON.stringify(loc)} is not http(s)`,
      );
    if (this.schemeFor(op.registry) === 'https' && url.protocol === 'http:')
      throw new PackageError(
        'REGISTRY',
        `${op.verb} ${op.label}: ${what}: the registry named a plain HTTP upload Location (${url.origin}); refused`,
        { kind: Refused },
      );
    return url.toString();
  }

  /**
   * Streams a blob into a temporary file of the store while hashing it: never held whole in memory.
   * A body that ends short of the declared size (a registry that has just taken the blob can answer
   * before its storage is readable) is asked for once more; a wrong hash is never retried.
   */
  private async downloadBlob(
    op: Op,
    d: Descriptor,
    store: LayoutStore,
    onProgress?: ProgressCallback,
  ): Promise<StagedBlob> {
    try {
      return await this.downloadBlobOnce(op, d, store, onProgress);
    } catch (e) {
      if (!(e instanceof DigestMismatchError && e.truncated)) throw e;
      return this.downloadBlobOnce(op, d, store, onProgress);
    }
  }

  private async downloadBlobOnce(
    op: Op,
    d: Descriptor,
    store: LayoutStore,
    onProgress?: ProgressCallback,
  ): Promise<StagedBlob> {
    const what = `get blob ${d.digest}${titleOf(d) ? ` (${titleOf(d)})` : ''}`;
    const report = (done: number) => {
      const e: ProgressEvent = { phase: 'download', digest: d.digest, mediaType: d.mediaType, done, total: d.size };
      const t = titleOf(d);
      if (t) e.title = t;
      onProgress?.(e);
    };
    const res = await this.request(op, this.url(op, `blobs/${d.digest}`), { method: 'GET', expect: [200], what });
    const declared = res.headers.get('content-length');
    if (declared !== null && Number(declared) > d.size) {
      await res.body?.cancel().catch(() => undefined);
      throw new DigestMismatchError(
        `${op.verb} ${op.label}: ${what}: the registry would send ${declared} bytes, more than the ${d.size} the manifest declares`,
        d.digest,
        'unknown',
      );
    }
    report(0);
    let done = 0;
    const body = res.body;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      if (!body) return;
      const reader = body.getReader();
      try {
        for (;;) {
          const { done: end, value } = await reader.read();
          if (end) return;
          done += value.byteLength;
          yield value;
          report(done);
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
    }
    return store.stageBlob(chunks(), { digest: d.digest, size: d.size }, `${op.verb} ${op.label}: ${what}`);
  }

  // ---- public operations ---------------------------------------------------

  /** Reads a remote manifest (digest verified) without storing anything. */
  async getManifest(reference: string | Reference): Promise<RemoteManifest> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const label = formatReference(ref);
    return this.fetchManifest(this.op('inspect', ref, label, 'pull'), ref);
  }

  /**
   * Pushes a package from the store. `destination` defaults to `source` when
   * that names a registry; a destination without tag or digest takes the
   * source's tag.
   */
  async push(
    store: LayoutStore,
    source: string | Reference,
    destination?: string | Reference,
    options: PushOptions = {},
  ): Promise<PushResult> {
    const src = typeof source === 'string' ? parseReference(source) : source;
    let dst: Reference;
    if (destination === undefined) {
      dst = src;
    } else {
      dst = typeof destination === 'string' ? parseReference(destination, { defaultTag: null }) : { ...destination };
      if (dst.tag === undefined && dst.digest === undefined) dst.tag = src.tag ?? 'latest';
    }
    const label = formatReference(dst);
    const op = this.op('push', dst, label, 'pull,push');
    const pkg = await store.resolve(src).catch((err: Error) => {
      throw Object.assign(err, { message: `push ${label}: ${err.message}` });
    });
    if (dst.digest !== undefined && dst.digest !== pkg.digest) {
      throw new DigestMismatchError(
        `push ${label}: the local package ${pkg.reference} is ${pkg.digest}, not ${dst.digest}`,
        dst.digest,
        pkg.digest,
      );
    }
    const result: PushResult = { reference: label, digest: pkg.digest, uploaded: 0, skipped: 0, bytesUploaded: 0 };
    for (const d of [pkg.manifest.config, ...pkg.manifest.layers]) {
      const size = await this.blobSize(op, d.digest);
      if (size !== undefined) {
        result.skipped++;
        const e: ProgressEvent = {
          phase: 'upload',
          digest: d.digest,
          mediaType: d.mediaType,
          done: d.size,
          total: d.size,
          skipped: true,
        };
        const t = titleOf(d);
        if (t) e.title = t;
        options.onProgress?.(e);
        continue;
      }
      const bytes = await store.getBlob(d.digest, d.size).catch((err: Error) => {
        throw Object.assign(err, { message: `push ${label}: ${err.message}` });
      });
      await this.uploadBlob(op, d, bytes, options.onProgress);
      result.uploaded++;
      result.bytesUploaded += d.size;
    }
    const which = dst.digest ?? dst.tag ?? 'latest';
    const res = await this.request(op, this.url(op, `manifests/${which}`), {
      method: 'PUT',
      headers: { 'Content-Type': OCI_IMAGE_MANIFEST },
      body: pkg.manifestBytes,
      expect: [201, 200, 204],
      what: 'put manifest',
    });
    await res.body?.cancel().catch(() => undefined);
    const stored = res.headers.get('docker-content-digest');
    if (stored && stored !== pkg.digest) {
      throw new DigestMismatchError(
        `push ${label}: the registry stored the manifest as ${stored}, not ${pkg.digest} (it rewrote the manifest)`,
        pkg.digest,
        stored,
      );
    }
    if (options.signatures !== false) {
      const n = await this.pushSignatures(op, store, pkg.name, pkg.digest);
      if (n > 0) result.signatures = n;
    }
    return result;
  }

  /** Pushes the store's signatures of `name@digest`, merged with those the registry has already. */
  private async pushSignatures(op: Op, store: LayoutStore, name: string, digest: string): Promise<number> {
    const local = await store.signatures(name, digest);
    if (!local || local.layers.length === 0) return 0;
    const remote = await this.remoteSignatures(op, digest);
    const layers = mergeLayers(remote?.layers ?? [], local.layers);
    const blobs: BlobWithBytes[] = [];
    for (const d of local.layers) blobs.push({ descriptor: d, bytes: await store.getBlob(d.digest, d.size) });
    await this.putArtifact(op, signatureTag(digest), layers, blobs);
    return layers.length;
  }

  /** The registry's signature layers for manifest `digest` of the operation's repository, if any. */
  private async remoteSignatures(op: Op, digest: string): Promise<{ layers: Descriptor[] } | undefined> {
    const tag = signatureTag(digest);
    let m: RemoteManifest;
    try {
      m = await this.fetchManifest(op, { registry: op.registry, repository: op.repository, tag });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    return { layers: parseSignatureManifest(m.bytes, `${op.verb} ${op.label}: signatures ${tag}`) };
  }

  /** Uploads the blobs the registry lacks and puts a signature manifest of `layers` at `tag`. */
  private async putArtifact(op: Op, tag: string, layers: Descriptor[], blobs: BlobWithBytes[]): Promise<void> {
    const { manifest, config } = buildSignatureManifest(layers);
    const all: BlobWithBytes[] = [
      ...blobs,
      {
        descriptor: { mediaType: OCI_IMAGE_CONFIG, digest: sha256Digest(config), size: config.byteLength },
        bytes: config,
      },
    ];
    for (const b of all) {
      if ((await this.blobSize(op, b.descriptor.digest)) === undefined)
        await this.uploadBlob(op, b.descriptor, b.bytes);
    }
    const res = await this.request(op, this.url(op, `manifests/${tag}`), {
      method: 'PUT',
      headers: { 'Content-Type': OCI_IMAGE_MANIFEST },
      body: manifest,
      expect: [201, 200, 204],
      what: `put signatures ${tag}`,
    });
    await res.body?.cancel().catch(() => undefined);
  }

  /** A small blob (at most `max` bytes), read into memory and verified. */
  private async smallBlob(op: Op, d: Descriptor, max: number): Promise<Uint8Array> {
    if (d.size > max)
      throw new PackageError(
        'INVALID_PACKAGE',
        `${op.verb} ${op.label}: blob ${d.digest} is ${d.size} bytes, more than ${max}`,
      );
    const res = await this.request(op, this.url(op, `blobs/${d.digest}`), {
      method: 'GET',
      expect: [200],
      what: `get blob ${d.digest}`,
    });
    const chunks: Uint8Array[] = [];
    let n = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        n += value.byteLength;
        if (n > d.size) {
          await reader.cancel().catch(() => undefined);
          throw new DigestMismatchError(
            `${op.verb} ${op.label}: blob ${d.digest}: more than ${d.size} bytes`,
            d.digest,
            'unknown',
          );
        }
        chunks.push(value);
      }
    }
    const bytes = Buffer.concat(chunks);
    verifyBytes(bytes, d.digest, `${op.verb} ${op.label}: blob ${d.digest}`, d.size);
    return bytes;
  }

  /**
   * The signatures of manifest `digest` in the registry (cosign's `sha256-<hex>.sig`): each
   * layer's descriptor with its payload bytes. Empty when there are none.
   */
  async getSignatures(
    reference: string | Reference,
    digest: string,
  ): Promise<{ descriptor: Descriptor; payload: Uint8Array }[]> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const op = this.op('verify', ref, formatReference(ref), 'pull');
    return this.fetchSignatures(op, digest);
  }

  private async fetchSignatures(op: Op, digest: string): Promise<{ descriptor: Descriptor; payload: Uint8Array }[]> {
    const remote = await this.remoteSignatures(op, digest);
    const out: { descriptor: Descriptor; payload: Uint8Array }[] = [];
    for (const d of remote?.layers ?? [])
      out.push({ descriptor: d, payload: await this.smallBlob(op, d, SIGNATURE_LIMITS.payloadBytes) });
    return out;
  }

  /** Adds signatures (descriptor and payload) for `digest` in the registry, merged with those there. */
  async putSignatures(
    reference: string | Reference,
    digest: string,
    layers: readonly { descriptor: Descriptor; payload: Uint8Array }[],
  ): Promise<number> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const op = this.op('sign', ref, formatReference(ref), 'pull,push');
    const remote = await this.remoteSignatures(op, digest);
    const merged = mergeLayers(
      remote?.layers ?? [],
      layers.map((l) => l.descriptor),
    );
    await this.putArtifact(
      op,
      signatureTag(digest),
      merged,
      layers.map((l) => ({ descriptor: l.descriptor, bytes: l.payload })),
    );
    return merged.length;
  }

  /**
   * Pulls a package into the store, verifying every digest; the local tag is written last.
   * The manifest is held to the package limits before any blob is fetched, and the config blob
   * to the package spec schema before the tag is written.
   */
  async pull(source: string | Reference, store: LayoutStore, options: PullOptions = {}): Promise<PullResult> {
    const ref = typeof source === 'string' ? parseReference(source) : source;
    const label = formatReference(ref);
    const op = this.op('pull', ref, label, 'pull');
    op.signal = AbortSignal.timeout(options.deadlineMs ?? DEFAULT_PULL_DEADLINE_MS);
    const remote = await this.fetchManifest(op, ref);
    if (remote.mediaType === OCI_IMAGE_INDEX || remote.mediaType === DOCKER_MANIFEST_LIST) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `pull ${label}: ${remote.digest} is an image index (a multi-platform list), not a kbpf package`,
      );
    }
    const where = `pull ${label}: manifest ${remote.digest}`;
    const manifest = parseImageManifest(remote.bytes, where);
    if (!isKbpfPackage(manifest)) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `pull ${label}: not a kbpf package: artifactType ${JSON.stringify(manifest.artifactType)}, config media type ${JSON.stringify(manifest.config.mediaType)}`,
      );
    }
    checkPackageLimits(manifest, where);
    const result: PullResult = {
      reference: label,
      localReference: '',
      digest: remote.digest,
      manifest,
      downloaded: 0,
      present: 0,
      bytesDownloaded: 0,
    };
    // The config first: a spec that fails the schema stops the pull before the layers come.
    // Downloads stay in temporary files until all are verified: a failed pull stores nothing.
    const staged: StagedBlob[] = [];
    try {
      await this.fetchBlobs(op, manifest, store, staged, result, label, options);
      for (const b of staged) await b.commit();
    } finally {
      for (const b of staged) await b.discard();
    }
    let local: Reference;
    if (options.tag !== undefined) {
      local = typeof options.tag === 'string' ? parseReference(options.tag) : options.tag;
    } else {
      local = { ...ref };
      if (local.tag !== undefined) delete local.digest;
    }
    const stored = await store.importPackage({ manifestBytes: remote.bytes, blobs: [] }, local).catch((err: Error) => {
      throw Object.assign(err, { message: `pull ${label}: ${err.message}` });
    });
    result.localReference = stored.reference;
    if (options.signatures !== false) {
      try {
        const sigs = await this.fetchSignatures(op, remote.digest);
        if (sigs.length > 0) result.signatures = await store.addSignatures(stored.name, remote.digest, sigs);
      } catch (err) {
        // The package is verified by digest; signatures are judged by whoever checks them.
        result.signatureProblem = (err as Error).message;
      }
    }
    return result;
  }

  private async fetchBlobs(
    op: Op,
    manifest: ImageManifest,
    store: LayoutStore,
    staged: StagedBlob[],
    result: PullResult,
    label: string,
    options: PullOptions,
  ): Promise<void> {
    for (const d of [manifest.config, ...manifest.layers]) {
      let configBytes: Uint8Array;
      if (await store.hasBlob(d.digest)) {
        result.present++;
        const e: ProgressEvent = {
          phase: 'download',
          digest: d.digest,
          mediaType: d.mediaType,
          done: d.size,
          total: d.size,
          skipped: true,
        };
        const t = titleOf(d);
        if (t) e.title = t;
        options.onProgress?.(e);
        if (d !== manifest.config) continue;
        configBytes = await store.getBlob(d.digest, d.size);
      } else {
        const b = await this.downloadBlob(op, d, store, options.onProgress);
        staged.push(b);
        result.downloaded++;
        result.bytesDownloaded += d.size;
        if (d !== manifest.config) continue;
        configBytes = await readFile(b.path);
      }
      this.checkConfig(configBytes, d, label);
    }
  }

  /** The config blob of a pulled package: JSON, a package manifest, and (if it lists objects) a valid package spec. */
  private checkConfig(bytes: Uint8Array, d: Descriptor, label: string): void {
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (err) {
      throw new PackageError(
        'INVALID_PACKAGE',
        `pull ${label}: config blob ${d.digest} is not JSON (${(err as Error).message})`,
      );
    }
    validatePackageManifest(json, `pull ${label}: package manifest`);
    if (claimsPackageSpec(json)) validatePackageSpec(json, `pull ${label}: package spec`);
  }
}
