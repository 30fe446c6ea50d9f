// A small client of the agent's API (docs/api.md), over its unix socket. The CLI uses it.
import { Agent, type IncomingMessage, request } from 'node:http';
import type { KernelFeatures } from 'kbpf/bpf';
import { ERROR_KINDS, type ErrorKind, KbpfError, Unavailable, Unknown } from '../errors.js';
import type { PackageSummary } from '../package/layout-store.js';
import type { PackageSpec } from '../package/package-spec.js';
import type { LogRecord } from './log-store.js';
import type { InstanceStatus, MapDump, PackageRemoval, Revision, RunRequest, UpgradeRequest } from './types.js';

/**
 * An answer of the agent that was not a success, or a failure to reach it (status 0). Its kind is
 * the one the agent named in the answer, so a client matches `isKind(e, NotFound)` as it would
 * in the agent itself; an agent that cannot be reached is Unavailable.
 */
export class ApiError extends KbpfError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    override readonly details?: unknown,
    readonly code?: string,
    kind?: ErrorKind,
  ) {
    super(kind ?? (status === 0 ? Unavailable : Unknown), message, { details });
  }
}

export interface LogsQuery {
  follow?: boolean;
  /** an ISO time, Unix seconds, or a duration back from now (10s, 5m, 1h) */
  since?: string;
  tail?: number;
}

export type { MapDump, VariableDump } from './types.js';

export interface VersionInfo {
  version: string;
  api: string;
  node?: string;
  pid?: number;
}

export interface ApiClientOptions {
  /** per-request timeout (not for followed logs); default 120 s: a run or an upgrade loads programs */
  timeoutMs?: number;
}

function unreachable(socketPath: string, err: NodeJS.ErrnoException): ApiError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'ENOTDIR':
      return new ApiError(
        0,
        `cannot reach the kbpf agent at ${socketPath}: is it running? (start it with: kbpf agent)`,
        undefined,
        err.code,
      );
    case 'EACCES':
    case 'EPERM':
      return new ApiError(
        0,
        `permission denied on the kbpf agent socket ${socketPath}: it is for root only (mode 0600); run kbpf as root, e.g. with sudo`,
        undefined,
        err.code,
      );
    default:
      return new ApiError(0, `cannot talk to the kbpf agent at ${socketPath}: ${err.message}`, undefined, err.code);
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/**
 * How long an idle connection is kept for the next request: below the server's keep-alive
 * timeout (Node's default, 5 s), so the client drops it before the server would.
 */
const IDLE_MS = 4000;

export class ApiClient {
  readonly timeoutMs: number;
  /**
   * Connections kept open between requests (a new one costs a connect and the server's accept per
   * request). Idle ones do not keep the process alive (Node's agent unrefs them) and close after
   * IDLE_MS.
   */
  readonly #pool = new Agent({ keepAlive: true, maxSockets: 8, maxFreeSockets: 2, timeout: IDLE_MS });

  constructor(
    readonly socketPath: string,
    opts: ApiClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  /** Closes the connections kept for the next request. */
  close(): void {
    this.#pool.destroy();
  }

  /** Sends one request; resolves with the response once its headers are in (status checked). */
  private open(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs: number | undefined = this.timeoutMs,
  ): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return this.send(method, path, payload, timeoutMs, true);
  }

  private send(
    method: string,
    path: string,
    payload: Buffer | undefined,
    timeoutMs: number | undefined,
    mayRetry: boolean,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({
        agent: this.#pool,
        socketPath: this.socketPath,
        path,
        method,
        headers: {
          Host: 'kbpf',
          Accept: 'application/json',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
        },
      });
      let timer: NodeJS.Timeout | undefined;
      if (timeoutMs) {
        timer = setTimeout(
          () =>
            req.destroy(
              Object.assign(new Error(`no answer from the kbpf agent within ${Math.round(timeoutMs / 1000)} s`), {
                code: 'ETIMEDOUT',
              }),
            ),
          timeoutMs,
        );
      }
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // a kept connection the server closed as it was reused: the request never reached it
        if (mayRetry && req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
          resolve(this.send(method, path, payload, timeoutMs, false));
          return;
        }
        reject(
          e.code === 'ETIMEDOUT' ? new ApiError(0, e.message, undefined, e.code) : unreachable(this.socketPath, e),
        );
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        if (res.statusCode !== undefined && res.statusCode >= 400) {
          readAll(res).then((text) => {
            let message = text.trim() || `HTTP ${res.statusCode}`;
            let details: unknown;
            let kind: ErrorKind | undefined;
            try {
              const v = JSON.parse(text) as { error?: unknown; details?: unknown; kind?: unknown };
              if (typeof v.error === 'string') message = v.error;
              details = v.details;
              kind = ERROR_KINDS.find((k) => k.name === v.kind);
            } catch {
              // not JSON
            }
            reject(new ApiError(res.statusCode!, message, details, undefined, kind));
          }, reject);
          return;
        }
        resolve(res);
      });
      req.end(payload);
    });
  }

  /** One JSON request and its JSON answer. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    const text = await readAll(res);
    if (text.trim() === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(
        res.statusCode ?? 0,
        `the agent answered ${method} ${path} with something that is not JSON: ${text.slice(0, 200)}`,
      );
    }
  }

  version(): Promise<VersionInfo> {
    return this.call('GET', '/v1/version');
  }

  doctor(): Promise<KernelFeatures> {
    return this.call('GET', '/v1/doctor');
  }

  list(): Promise<InstanceStatus[]> {
    return this.call('GET', '/v1/instances');
  }

  inspect(name: string): Promise<InstanceStatus> {
    return this.call('GET', `/v1/instances/${enc(name)}`);
  }

  run(req: RunRequest): Promise<InstanceStatus> {
    return this.call('POST', '/v1/instances', req);
  }

  stop(name: string): Promise<InstanceStatus> {
    return this.call('POST', `/v1/instances/${enc(name)}/stop`, {});
  }

  start(name: string): Promise<InstanceStatus> {
    return this.call('POST', `/v1/instances/${enc(name)}/start`, {});
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.call('DELETE', `/v1/instances/${enc(name)}${opts.force ? '?force=1' : ''}`);
  }

  upgrade(name: string, req: UpgradeRequest): Promise<InstanceStatus> {
    return this.call('POST', `/v1/instances/${enc(name)}/upgrade`, req);
  }

  rollback(name: string, opts: { toRevision?: number } = {}): Promise<InstanceStatus> {
    return this.call('POST', `/v1/instances/${enc(name)}/rollback`, opts);
  }

  history(name: string): Promise<Revision[]> {
    return this.call('GET', `/v1/instances/${enc(name)}/history`);
  }

  /** The frames of stacks of an instance's events: addresses (in process `pid`), or ids in its stack trace maps. */
  async stacks(
    name: string,
    stacks: { pid?: number; addresses?: unknown[]; map?: string; id?: number }[],
  ): Promise<string[][]> {
    const r = await this.call<{ stacks: string[][] }>('POST', `/v1/instances/${enc(name)}/stacks`, { stacks });
    return r.stacks;
  }

  maps(name: string, map?: string): Promise<MapDump[]> {
    return this.call('GET', `/v1/instances/${enc(name)}/maps${map !== undefined ? `/${enc(map)}` : ''}`);
  }

  packages(): Promise<PackageSummary[]> {
    return this.call('GET', '/v1/images');
  }

  inspectPackage(ref: string): Promise<{ reference: string; digest: string; spec: PackageSpec }> {
    return this.call('GET', `/v1/images/${enc(ref)}`);
  }

  removePackage(ref: string, opts: { force?: boolean } = {}): Promise<PackageRemoval> {
    return this.call('DELETE', `/v1/images/${enc(ref)}${opts.force ? '?force=1' : ''}`);
  }

  async metrics(): Promise<string> {
    return readAll(await this.open('GET', '/metrics'));
  }

  /**
   * An instance's log records, oldest first; with `follow`, keeps yielding new ones until
   * `signal` aborts or the agent ends the stream (instance removed, agent stopped).
   */
  async *logs(name: string, query: LogsQuery = {}, signal?: AbortSignal): AsyncGenerator<LogRecord, void, undefined> {
    for await (const batch of this.logBatches(name, query, signal)) yield* batch;
  }

  /** logs(), the records of each chunk the agent sends at once (cheaper per record for busy streams). */
  async *logBatches(
    name: string,
    query: LogsQuery = {},
    signal?: AbortSignal,
  ): AsyncGenerator<LogRecord[], void, undefined> {
    const q = new URLSearchParams();
    if (query.follow) q.set('follow', '1');
    if (query.since !== undefined) q.set('since', query.since);
    if (query.tail !== undefined) q.set('tail', String(query.tail));
    const qs = q.toString();
    const res = await this.open(
      'GET',
      `/v1/instances/${enc(name)}/logs${qs ? `?${qs}` : ''}`,
      undefined,
      query.follow ? 0 : this.timeoutMs,
    );
    const onAbort = (): void => {
      res.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let buf = '';
    try {
      res.setEncoding('utf8');
      for await (const chunk of res as AsyncIterable<string>) {
        buf += chunk;
        const end = buf.lastIndexOf('\n');
        if (end < 0) continue;
        const batch = linesOf(buf, end);
        buf = buf.slice(end + 1);
        // an error after the stream started comes as a last line {"error": ...}
        for (let i = 0; i < batch.length; i++) {
          const v = batch[i] as LogRecord & { error?: unknown };
          if (typeof v.error === 'string' && v.seq === undefined) {
            if (i > 0) yield batch.slice(0, i);
            throw new ApiError(500, v.error);
          }
        }
        if (batch.length > 0) yield batch;
      }
    } catch (e) {
      if (signal?.aborted) return;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE')
        throw new ApiError(0, 'the kbpf agent closed the log stream (did it stop?)', undefined, code);
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      res.destroy();
    }
  }
}

/**
 * The JSON lines of text[0, end) (end: a newline), parsed: all at once as one array when every line
 * is a record (a JSON text holds no raw newline, so the newlines can become commas), else line by line.
 */
function linesOf(text: string, end: number): LogRecord[] {
  const body = text.slice(0, end);
  if (body.charCodeAt(0) === 0x7b && !body.includes('\n\n') && body.charCodeAt(body.length - 1) === 0x7d) {
    try {
      return JSON.parse(`[${body.replaceAll('\n', ',')}]`) as LogRecord[];
    } catch {
      /* some line is not one object (a blank or broken line): line by line below */
    }
  }
  const out: LogRecord[] = [];
  for (const line of body.split('\n')) if (line.trim() !== '') out.push(JSON.parse(line) as LogRecord);
  return out;
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
