/**
 * A small in-memory OCI distribution registry for client tests: blob uploads
 * (POST, PATCH, PUT ?digest=), HEAD/GET blobs, GET/PUT manifests, and
 * optional Basic or Bearer (token server on /token) authentication. It
 * records every request so tests can check what the client did.
 */

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface FakeRequest {
  method: string;
  path: string;
  authorization?: string;
  contentType?: string;
  contentRange?: string;
}

export interface FakeRegistryOptions {
  auth?: {
    mode: 'basic' | 'bearer';
    username: string;
    password: string;
    refreshToken?: string;
    anonymousPull?: boolean;
  };
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { bytes: Buffer; type: string }>();
  readonly tags = new Map<string, string>();
  readonly requests: FakeRequest[] = [];
  readonly tokenRequests: {
    method: string;
    scope: string | null;
    service: string | null;
    account: string | null;
    body?: string;
  }[] = [];
  /** Hooks to misbehave: change what a blob GET or manifest GET returns, or fail a route. */
  tamperBlob: ((digest: string, bytes: Buffer) => Buffer) | undefined;
  tamperManifest: ((bytes: Buffer) => { bytes: Buffer; digestHeader?: string }) | undefined;
  failManifestPut: { status: number; body: string } | undefined;
  private readonly uploads = new Map<string, Buffer[]>();
  private readonly tokens = new Map<string, string>();
  private server?: Server;
  port = 0;

  constructor(private readonly options: FakeRegistryOptions = {}) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.handle(req, res, Buffer.concat(chunks));
        } catch (err) {
          res.writeHead(500).end(String(err));
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      this.server?.closeAllConnections();
      this.server?.close(() => r());
    });
  }

  /** Stores a manifest directly (for tests that serve hand-made content). */
  putManifest(repo: string, tag: string, bytes: Buffer, type = 'application/vnd.oci.image.manifest.v1+json'): string {
    const digest = sha(bytes);
    this.manifests.set(`${repo}@${digest}`, { bytes, type });
    this.tags.set(`${repo}:${tag}`, digest);
    return digest;
  }

  private error(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify({ errors: [{ code, message, detail: null }] }));
  }

  private authorized(req: IncomingMessage, res: ServerResponse, repo: string, action: 'pull' | 'push'): boolean {
    const auth = this.options.auth;
    if (!auth) return true;
    const header = req.headers.authorization ?? '';
    if (auth.mode === 'basic') {
      const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
      if (header === expected) return true;
      this.error(res, 401, 'UNAUTHORIZED', 'authentication required', { 'WWW-Authenticate': 'Basic realm="fake"' });
      return false;
    }
    const scope = header.startsWith('Bearer ') ? this.tokens.get(header.slice(7)) : undefined;
    if (scope) {
      const [, name, actions] = scope.split(':');
      if (name === repo && actions!.split(',').includes(action)) return true;
    }
    const wanted = `repository:${repo}:${action === 'push' ? 'pull,push' : 'pull'}`;
    this.error(res, 401, 'UNAUTHORIZED', 'authentication required', {
      'WWW-Authenticate': `Bearer realm="http://${this.host}/token",service="fake-registry",scope="${wanted}"`,
    });
    return false;
  }

  private handleToken(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void {
    const auth = this.options.auth!;
    let scope = url.searchParams.get('scope');
    let ok = false;
    if (req.method === 'POST') {
      const form = new URLSearchParams(body.toString());
      scope = form.get('scope');
      this.tokenRequests.push({
        method: 'POST',
        scope,
        service: form.get('service'),
        account: null,
        body: body.toString(),
      });
      ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === auth.refreshToken;
    } else {
      this.tokenRequests.push({
        method: 'GET',
        scope,
        service: url.searchParams.get('service'),
        account: url.searchParams.get('account'),
      });
      const header = req.headers.authorization;
      if (header) ok = header === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
      else ok = auth.anonymousPull === true && scope !== null && !scope.endsWith('push');
    }
    if (!ok) {
      res
        .writeHead(401, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const token = `tok-${randomBytes(6).toString('hex')}`;
    this.tokens.set(token, scope ?? '');
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify(req.method === 'POST' ? { access_token: token } : { token }));
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const entry: FakeRequest = { method: req.method ?? 'GET', path: url.pathname + url.search };
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    if (req.headers['content-type']) entry.contentType = req.headers['content-type'];
    if (req.headers['content-range']) entry.contentRange = String(req.headers['content-range']);
    this.requests.push(entry);
    if (url.pathname === '/token') {
      this.handleToken(req, res, url, body);
      return;
    }

    const m = /^\/v2\/(.+?)\/(blobs\/uploads\/([^/]*)|blobs\/([^/]+)|manifests\/([^/]+))$/.exec(url.pathname);
    if (!m) {
      this.error(res, 404, 'NAME_UNKNOWN', 'no route');
      return;
    }
    const repo = m[1]!;
    const method = req.method ?? 'GET';
    const action = method === 'GET' || method === 'HEAD' ? 'pull' : 'push';
    if (!this.authorized(req, res, repo, action)) return;

    if (m[2]!.startsWith('blobs/uploads/')) {
      const id = m[3]!;
      if (method === 'POST' && id === '') {
        const nid = randomBytes(8).toString('hex');
        this.uploads.set(nid, []);
        res.writeHead(202, { Location: `/v2/${repo}/blobs/uploads/${nid}?_state=s0`, Range: '0-0' }).end();
        return;
      }
      const parts = this.uploads.get(id);
      if (!parts) {
        this.error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'upload unknown');
        return;
      }
      if (method === 'PATCH') {
        parts.push(body);
        const size = parts.reduce((s, p) => s + p.length, 0);
        res
          .writeHead(202, {
            Location: `http://${this.host}/v2/${repo}/blobs/uploads/${id}?_state=s${size}`,
            Range: `0-${size - 1}`,
          })
          .end();
        return;
      }
      if (method === 'PUT') {
        parts.push(body);
        const all = Buffer.concat(parts);
        const digest = url.searchParams.get('digest');
        if (digest !== sha(all)) {
          this.error(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
          return;
        }
        this.blobs.set(digest, all);
        this.uploads.delete(id);
        res.writeHead(201, { Location: `/v2/${repo}/blobs/${digest}`, 'Docker-Content-Digest': digest }).end();
        return;
      }
      this.error(res, 405, 'UNSUPPORTED', 'method');
      return;
    }
    if (m[4]) {
      const digest = m[4];
      const blob = this.blobs.get(digest);
      if (!blob) {
        this.error(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
        return;
      }
      const bytes = method === 'GET' && this.tamperBlob ? this.tamperBlob(digest, blob) : blob;
      res.writeHead(200, {
        'Content-Length': String(blob.length),
        'Docker-Content-Digest': digest,
        'Content-Type': 'application/octet-stream',
      });
      if (method === 'HEAD') res.end();
      else res.end(bytes.subarray(0, blob.length));
      return;
    }
    const ref = m[5]!;
    if (method === 'PUT') {
      if (this.failManifestPut) {
        res
          .writeHead(this.failManifestPut.status, { 'Content-Type': 'application/json' })
          .end(this.failManifestPut.body);
        return;
      }
      const digest = sha(body);
      this.manifests.set(`${repo}@${digest}`, { bytes: body, type: req.headers['content-type'] ?? '' });
      if (!ref.startsWith('sha256:')) this.tags.set(`${repo}:${ref}`, digest);
      res.writeHead(201, { 'Docker-Content-Digest': digest, Location: `/v2/${repo}/manifests/${digest}` }).end();
      return;
    }
    const digest = ref.startsWith('sha256:') ? ref : this.tags.get(`${repo}:${ref}`);
    const man = digest ? this.manifests.get(`${repo}@${digest}`) : undefined;
    if (!digest || !man) {
      this.error(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      return;
    }
    let bytes = man.bytes;
    let header = digest;
    if (this.tamperManifest) {
      const t = this.tamperManifest(bytes);
      bytes = t.bytes;
      header = t.digestHeader ?? header;
    }
    res.writeHead(200, {
      'Content-Type': man.type,
      'Docker-Content-Digest': header,
      'Content-Length': String(bytes.length),
    });
    res.end(method === 'HEAD' ? undefined : bytes);
  }
}
