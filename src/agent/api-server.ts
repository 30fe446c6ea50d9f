// The agent's HTTP API on a unix socket (mode 0600: root only). JSON in and out; see docs/api.md.
//
//   GET    /v1/version
//   GET    /v1/doctor
//   GET    /v1/instances                       list
//   POST   /v1/instances                       run        body: RunRequest             -> 201
//   GET    /v1/instances/{name}                inspect
//   DELETE /v1/instances/{name}[?force=1]      rm
//   POST   /v1/instances/{name}/stop
//   POST   /v1/instances/{name}/start
//   POST   /v1/instances/{name}/upgrade        body: UpgradeRequest
//   POST   /v1/instances/{name}/rollback       body: { toRevision? }
//   GET    /v1/instances/{name}/history
//   GET    /v1/instances/{name}/maps[/{map}]
//   POST   /v1/instances/{name}/stacks         body: { stacks: StackRequest[] } -> { stacks: frames[] }
//   GET    /v1/instances/{name}/logs[?follow=1&since=&tail=]   NDJSON (streamed with follow)
//   GET    /v1/images
//   GET    /v1/images/{ref}                    inspect (ref URL-encoded)
//   DELETE /v1/images/{ref}[?force=1]          rmi
//   GET    /metrics                            Prometheus text 0.0.4
//
// Errors are `{"error": message, "kind": KIND}` (plus `details` when the agent gave some), with
// the HTTP status chosen from the error's kind in errorStatus, the one place that does.

import { chmodSync, lstatSync, mkdirSync, type Stats, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { BpfError, type KernelFeatures, VerifierError } from 'kbpf/bpf';
import {
  Conflict,
  ConflictError,
  Corrupted,
  findError,
  Invalid,
  KbpfError,
  kindOf,
  NotFound,
  Refused,
  Unavailable,
  Unsupported,
} from '../errors.js';
import type { PackageSummary } from '../package/layout-store.js';
import { logLimitsProblem, type PackageSpec } from '../package/package-spec.js';
import { parseSince } from '../util/duration.js';
import { writeWithBackpressure } from '../util/http-stream.js';
import { requestUrl } from '../util/request-url.js';
import { KBPF_VERSION } from '../version.js';
import { eventPriority } from './event-priority.js';
import { checkInstanceName } from './instance-name.js';
import { jsonReplacer, type LogRecord, type ReadOptions } from './log-store.js';
import { formatMetrics, METRICS_CONTENT_TYPE, type MetricsSnapshot } from './metrics.js';
import { MAX_STACK_REQUESTS, type StackRequest } from './stacks.js';
import type { InstanceStatus, MapDump, PackageRemoval, Revision, RunRequest, UpgradeRequest } from './types.js';

export const API_VERSION = 'v1';
const MAX_BODY = 1024 * 1024;

/** What the API server needs of the agent (the Agent class implements it). */
export interface AgentApi {
  readonly logs: {
    read(instance: string, opts?: ReadOptions): LogRecord[];
    followBatches(instance: string, opts: ReadOptions, signal: AbortSignal): AsyncIterable<LogRecord[]>;
    /** the same as JSON lines' text, as the log holds it (used when there) */
    followText?(instance: string, opts: ReadOptions, signal: AbortSignal): AsyncIterable<string>;
  };
  list(): InstanceStatus[];
  inspect(name: string): InstanceStatus;
  run(req: RunRequest): Promise<InstanceStatus>;
  stop(name: string): Promise<InstanceStatus>;
  startInstance(name: string): Promise<InstanceStatus>;
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  upgrade(name: string, req: UpgradeRequest): Promise<InstanceStatus>;
  rollback(name: string, opts?: { toRevision?: number }): Promise<InstanceStatus>;
  history(name: string): Revision[];
  maps(name: string, map?: string): MapDump[];
  stacks(name: string, requests: readonly StackRequest[]): string[][];
  packages(): Promise<PackageSummary[]>;
  inspectPackage(ref: string): Promise<{ reference: string; digest: string; spec: PackageSpec }>;
  removePackage(ref: string, opts?: { force?: boolean }): Promise<PackageRemoval>;
  metricsSnapshot(): MetricsSnapshot;
  doctor(): Promise<KernelFeatures>;
}

export interface ApiServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/**
 * The one place where an error becomes an HTTP status: transport errors carry theirs; every other
 * error is answered by its kind (src/errors.ts), and a kernel refusal by its errno where that says
 * more (no permission, out of memory or busy).
 */
export function errorStatus(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  const bpf = findError(err, BpfError);
  if (bpf && !(bpf instanceof VerifierError) && bpf.errno) {
    const { EPERM, EACCES, ENOMEM, ENOSPC, E2BIG, EBUSY, EAGAIN } = constants.errno;
    if (bpf.errno === EPERM || bpf.errno === EACCES) return 403;
    if ([ENOMEM, ENOSPC, E2BIG, EBUSY, EAGAIN].includes(bpf.errno)) return 503;
  }
  switch (kindOf(err)) {
    case NotFound:
      return 404;
    case Conflict:
      return 409;
    case Invalid:
      return 400;
    case Unsupported:
      return 501;
    case Refused:
    case Corrupted:
      return 422;
    case Unavailable:
      return 503;
    default:
      return 500;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, jsonReplacer)}\n`;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const status = errorStatus(err);
  const e = err as { message?: string; details?: unknown };
  const body: { error: string; kind?: string; details?: unknown } = { error: e?.message ? e.message : String(err) };
  const kind = kindOf(err);
  if (kind) body.kind = kind.name;
  const details = e?.details ?? findError(err, KbpfError)?.details;
  if (details !== undefined) body.details = details;
  if (res.headersSent) {
    // a stream that already started: say it on the stream, as one more line
    res.end(`${JSON.stringify(body, jsonReplacer)}\n`);
    return;
  }
  sendJson(res, status >= 400 && status < 600 ? status : 500, body);
}

function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // past the limit: keep draining (so that the answer can be read), keep nothing
      if (size > MAX_BODY) chunks.length = 0;
      else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > MAX_BODY) return reject(new HttpError(413, `request body larger than ${MAX_BODY} bytes`));
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve({});
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return reject(new HttpError(400, `request body is not JSON: ${(e as Error).message}`));
      }
      if (!v || typeof v !== 'object' || Array.isArray(v))
        return reject(new HttpError(400, 'request body must be a JSON object'));
      resolve(v as Record<string, unknown>);
    });
  });
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v !== null && /^(|1|true|yes)$/i.test(v);
}

function str(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new HttpError(400, `"${key}" is required`);
    return undefined;
  }
  if (typeof v !== 'string' || v === '') throw new HttpError(400, `"${key}" must be a non-empty string`);
  return v;
}

function obj(body: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, `"${key}" must be a JSON object`);
  return v as Record<string, unknown>;
}

function attachOf(body: Record<string, unknown>): RunRequest['attach'] {
  const a = obj(body, 'attach');
  if (!a) return undefined;
  const out: NonNullable<RunRequest['attach']> = {};
  for (const k of Object.keys(a)) {
    if (k === 'cgroup' || k === 'iface') {
      if (typeof a[k] !== 'string') throw new HttpError(400, `"attach.${k}" must be a string`);
      out[k] = a[k] as string;
    } else if (k === 'programs') {
      const p = obj(a, 'programs') ?? {};
      for (const [prog, target] of Object.entries(p)) {
        if (typeof target !== 'string') throw new HttpError(400, `"attach.programs.${prog}" must be a string`);
      }
      out.programs = p as Record<string, string>;
    } else if (k === 'mapSizes') {
      const p = obj(a, 'mapSizes') ?? {};
      for (const [map, n] of Object.entries(p)) {
        if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
          throw new HttpError(400, `"attach.mapSizes.${map}" must be a positive integer`);
      }
      out.mapSizes = p as Record<string, number>;
    } else if (k === 'logBytes') {
      const n = a[k];
      const problem =
        typeof n === 'number' && Number.isSafeInteger(n) ? logLimitsProblem({ maxBytes: n }) : 'must be an integer';
      if (problem) throw new HttpError(400, `"attach.logBytes": ${problem}`);
      out.logBytes = n as number;
    } else if (k === 'order') {
      const p = obj(a, 'order') ?? {};
      for (const [prog, order] of Object.entries(p)) {
        if (typeof order !== 'string') throw new HttpError(400, `"attach.order.${prog}" must be a string`);
      }
      out.order = p as Record<string, string>;
    } else if (k === 'optional') {
      const list = a[k];
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || !x))
        throw new HttpError(400, '"attach.optional" must be an array of program names');
      out.optional = list as string[];
    } else if (k === 'shareMaps') {
      const p = obj(a, 'shareMaps') ?? {};
      for (const [map, share] of Object.entries(p)) {
        if (typeof share !== 'string') throw new HttpError(400, `"attach.shareMaps.${map}" must be a string`);
      }
      out.shareMaps = p as Record<string, string>;
    } else {
      throw new HttpError(
        400,
        `unknown attach field "${k}" (expected cgroup, iface, programs, mapSizes, shareMaps, order, logBytes, optional)`,
      );
    }
  }
  return out;
}

function runRequest(body: Record<string, unknown>): RunRequest {
  const req: RunRequest = { image: str(body, 'image', true)! };
  const name = str(body, 'name', false);
  if (name !== undefined) req.name = checkInstanceName(name);
  const config = obj(body, 'config');
  if (config) req.config = config;
  const attach = attachOf(body);
  if (attach) req.attach = attach;
  return req;
}

function upgradeRequest(body: Record<string, unknown>): UpgradeRequest {
  const req: UpgradeRequest = { image: str(body, 'image', true)! };
  const config = obj(body, 'config');
  if (config) req.config = config;
  const attach = attachOf(body);
  if (attach) req.attach = attach;
  return req;
}

/** `{stacks: [{pid?, addresses?} | {pid?, map, id}]}`: what POST …/stacks asks about. */
function stackRequests(body: Record<string, unknown>): StackRequest[] {
  const list = body.stacks;
  if (!Array.isArray(list)) throw new HttpError(400, '"stacks" must be an array');
  if (list.length > MAX_STACK_REQUESTS) throw new HttpError(400, `"stacks": at most ${MAX_STACK_REQUESTS} at once`);
  return list.map((r: unknown, i) => {
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new HttpError(400, `"stacks[${i}]" must be an object`);
    const o = r as Record<string, unknown>;
    const out: StackRequest = {};
    const int = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v))
        throw new HttpError(400, `"stacks[${i}].${what}" must be an integer`);
      return v;
    };
    if (o.pid !== undefined) out.pid = int(o.pid, 'pid');
    if (o.addresses !== undefined) {
      if (!Array.isArray(o.addresses) || o.addresses.length > 1024)
        throw new HttpError(400, `"stacks[${i}].addresses" must be an array of at most 1024 addresses`);
      out.addresses = o.addresses;
    }
    if (o.map !== undefined) {
      if (typeof o.map !== 'string') throw new HttpError(400, `"stacks[${i}].map" must be a map's name`);
      out.map = o.map;
      out.id = int(o.id, 'id');
    }
    return out;
  });
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `bad URL encoding in "${s}"`);
  }
}

function methodNotAllowed(allow: string[]): never {
  throw Object.assign(new HttpError(405, `method not allowed (allowed: ${allow.join(', ')})`), { allow });
}

interface Ctx {
  agent: AgentApi;
  /** followed log streams: aborted, and waited for, by close() */
  streams: Map<AbortController, Promise<void>>;
}

async function streamLogs(
  ctx: Ctx,
  name: string,
  q: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  ctx.agent.inspect(name); // 404 for an unknown instance
  const opts: ReadOptions = {};
  const since = q.get('since');
  if (since) opts.since = parseSince(since); // an InvalidError: 400
  const tail = q.get('tail');
  if (tail !== null && tail !== '') {
    if (!/^\d+$/.test(tail)) throw new HttpError(400, `tail: "${tail}" is not a non-negative integer`);
    opts.tail = Number(tail);
  }
  const headers = { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' };
  if (!flag(q, 'follow')) {
    const lines = ctx.agent.logs
      .read(name, opts)
      .map((r) => `${JSON.stringify(r, jsonReplacer)}\n`)
      .join('');
    res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(lines) });
    res.end(lines);
    return;
  }
  const ac = new AbortController();
  let finished!: () => void;
  ctx.streams.set(ac, new Promise<void>((resolve) => (finished = resolve)));
  const abort = (): void => ac.abort();
  req.on('close', abort);
  res.on('close', abort);
  // a followed stream is the connection's last response: it ends when the stream does
  res.writeHead(200, { ...headers, Connection: 'close' });
  res.flushHeaders();
  held.get(res)?.(); // a reader of records itself: at the share the records are read at
  try {
    const logs = ctx.agent.logs;
    if (logs.followText) {
      // the lines as the log holds them: nothing parsed and serialised again per record
      for await (const text of logs.followText(name, opts, ac.signal)) {
        if (ac.signal.aborted) break;
        await writeWithBackpressure(res, text, ac.signal);
      }
    } else {
      for await (const batch of logs.followBatches(name, opts, ac.signal)) {
        if (ac.signal.aborted) break;
        // followed records were parsed from the log's JSON text: plain JSON values, which need no
        // replacer (the replacer made them so when they were written) — 3x faster per record
        await writeWithBackpressure(res, `${batch.map((r) => JSON.stringify(r)).join('\n')}\n`, ac.signal);
      }
    }
  } finally {
    ctx.streams.delete(ac);
    req.off('close', abort);
    if (!res.writableEnded) res.end();
    finished();
  }
}

async function route(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = requestUrl(req.url, 'http://kbpf');
  const method = req.method ?? 'GET';
  const q = url.searchParams;
  const parts = url.pathname.split('/').filter((p) => p !== '');
  const agent = ctx.agent;

  if (url.pathname === '/metrics') {
    if (method !== 'GET' && method !== 'HEAD') methodNotAllowed(['GET']);
    const text = formatMetrics(agent.metricsSnapshot(), { version: KBPF_VERSION });
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(method === 'HEAD' ? undefined : text);
    return;
  }
  if (parts[0] !== API_VERSION)
    throw new HttpError(404, `no such endpoint: ${url.pathname} (the API is under /${API_VERSION}; see docs/api.md)`);
  const [, resource, ...rest] = parts;

  switch (resource) {
    case 'version':
      if (rest.length) break;
      if (method !== 'GET') methodNotAllowed(['GET']);
      return sendJson(res, 200, { version: KBPF_VERSION, api: API_VERSION, node: process.version, pid: process.pid });
    case 'doctor':
      if (rest.length) break;
      if (method !== 'GET') methodNotAllowed(['GET']);
      return sendJson(res, 200, await agent.doctor());
    case 'instances': {
      if (rest.length === 0) {
        if (method === 'GET') return sendJson(res, 200, agent.list());
        if (method === 'POST') return sendJson(res, 201, await agent.run(runRequest(await readBody(req))));
        methodNotAllowed(['GET', 'POST']);
      }
      // checked here, before any verb: a name becomes file and bpffs paths further in
      const name = checkInstanceName(decodeSegment(rest[0]!));
      const sub = rest[1];
      if (rest.length === 1) {
        if (method === 'GET') return sendJson(res, 200, agent.inspect(name));
        if (method === 'DELETE') {
          await agent.remove(name, { force: flag(q, 'force') });
          return sendJson(res, 200, { removed: name });
        }
        methodNotAllowed(['GET', 'DELETE']);
      }
      if (sub === 'maps' && rest.length <= 3) {
        if (method !== 'GET') methodNotAllowed(['GET']);
        const map = rest[2] !== undefined ? decodeSegment(rest[2]) : (q.get('map') ?? undefined);
        return sendJson(res, 200, agent.maps(name, map));
      }
      if (rest.length !== 2) break;
      switch (sub) {
        case 'stop':
        case 'start':
        case 'upgrade':
        case 'rollback': {
          if (method !== 'POST') methodNotAllowed(['POST']);
          const body = await readBody(req);
          if (sub === 'stop') return sendJson(res, 200, await agent.stop(name));
          if (sub === 'start') return sendJson(res, 200, await agent.startInstance(name));
          if (sub === 'upgrade') return sendJson(res, 200, await agent.upgrade(name, upgradeRequest(body)));
          const to = body.toRevision;
          if (to !== undefined && (typeof to !== 'number' || !Number.isInteger(to) || to < 1)) {
            throw new HttpError(400, '"toRevision" must be a positive integer');
          }
          return sendJson(res, 200, await agent.rollback(name, to !== undefined ? { toRevision: to as number } : {}));
        }
        case 'history':
          if (method !== 'GET') methodNotAllowed(['GET']);
          return sendJson(res, 200, agent.history(name));
        case 'stacks':
          if (method !== 'POST') methodNotAllowed(['POST']);
          return sendJson(res, 200, { stacks: agent.stacks(name, stackRequests(await readBody(req))) });
        case 'logs':
          if (method !== 'GET') methodNotAllowed(['GET']);
          return streamLogs(ctx, name, q, req, res);
      }
      break;
    }
    case 'images': {
      if (rest.length === 0) {
        if (method !== 'GET') methodNotAllowed(['GET']);
        return sendJson(res, 200, await agent.packages());
      }
      // a reference may hold '/', encoded or not
      const ref = rest.map(decodeSegment).join('/');
      if (method === 'GET') return sendJson(res, 200, await agent.inspectPackage(ref));
      if (method === 'DELETE') return sendJson(res, 200, await agent.removePackage(ref, { force: flag(q, 'force') }));
      methodNotAllowed(['GET', 'DELETE']);
    }
  }
  throw new HttpError(404, `no such endpoint: ${method} ${url.pathname} (see docs/api.md)`);
}

/** A request's hold on the normal CPU share (event-priority.ts), let go when it is answered. */
const held = new WeakMap<ServerResponse, () => void>();

function handler(ctx: Ctx): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const release = eventPriority().hold();
    held.set(res, release);
    res.once('close', release);
    route(ctx, req, res).catch((err: unknown) => {
      const allow = (err as { allow?: string[] }).allow;
      if (allow && !res.headersSent) res.setHeader('Allow', allow.join(', '));
      if (errorStatus(err) === 500 && process.env.KBPF_DEBUG === '1')
        process.stderr.write(`kbpf agent: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}\n`);
      // drain what the client sent, so the connection can be reused
      req.resume();
      sendError(res, err);
    });
  };
}

/** Is an agent answering on this socket? */
function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(true); // something holds it but does not answer: do not take it over
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(!(e.code === 'ECONNREFUSED' || e.code === 'ENOENT'));
    });
  });
}

/** Removes a socket file left by an agent that is gone; refuses if one answers, or if it is not a socket. */
export async function ensureSocketFree(path: string): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket())
    throw new ConflictError(
      `${path} exists and is not a socket; not touching it (use --socket to choose another path)`,
    );
  if (await socketAnswers(path)) throw new ConflictError(`another kbpf agent is already listening on ${path}`);
  unlinkSync(path);
}

async function listenPrivately(server: Server, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  await ensureSocketFree(path);
  // The socket file is created by bind() inside listen(), synchronously: with this umask it is
  // 0600 from the first instant, before any connection can be accepted.
  const old = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(old);
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
  });
  chmodSync(path, 0o600);
}

export async function startApiServer(agent: AgentApi, socketPath: string): Promise<ApiServer> {
  const ctx: Ctx = { agent, streams: new Map() };
  const server = createServer(handler(ctx));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // the peer is gone (ECONNRESET, EPIPE): nothing to answer
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable) return void socket.destroy();
    socket.on('error', () => socket.destroy());
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  await listenPrivately(server, socketPath);
  const ino = lstatSync(socketPath).ino;
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close(): Promise<void> {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        const streams = [...ctx.streams.values()];
        for (const ac of ctx.streams.keys()) ac.abort();
        await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 1000).unref())]);
        server.closeIdleConnections();
        // requests still running get a moment to answer; then the connections are cut
        const t = setTimeout(() => server.closeAllConnections(), 2000);
        await done;
        clearTimeout(t);
        try {
          // only our own socket file: another agent may have taken the path meanwhile
          if (lstatSync(socketPath).ino === ino) unlinkSync(socketPath);
        } catch {
          // already gone
        }
      })();
      return closing;
    },
  };
}

/** Serves only GET /metrics over TCP, for a Prometheus server that cannot scrape a unix socket. */
export async function startMetricsServer(
  agent: Pick<AgentApi, 'metricsSnapshot'>,
  host: string,
  port: number,
): Promise<{ address: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = URL.canParse(`http://kbpf${req.url}`) ? new URL(`http://kbpf${req.url}`).pathname : '';
    if (path !== '/metrics') return sendJson(res, 404, { error: 'only /metrics is served here' });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET');
      return sendJson(res, 405, { error: 'method not allowed (allowed: GET)' });
    }
    try {
      const text = formatMetrics(agent.metricsSnapshot(), { version: KBPF_VERSION });
      res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
    } catch (e) {
      sendError(res, e);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const address =
    a && typeof a === 'object' ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : String(a);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
