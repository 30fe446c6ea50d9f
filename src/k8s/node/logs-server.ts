// The node agent's log endpoint: what kubelet's /containerLogs is for pods. A read-only HTTPS
// server on a TCP address of the node (in the DaemonSet: the node's IP, port 10260) that serves
// the event log of each instance this agent runs, straight from the agent's LogStore:
//
//   GET /healthz                                         "ok"
//   GET /v1/logs/{deployment}[?follow=1&tail=N&since=T&afterSeq=S]
//        NDJSON, one LogRecord per line ({"ts","seq",...}); streamed while follow=1.
//        since: an RFC 3339 time or a duration (30s, 5m, 1h30m); afterSeq: only records with a
//        larger seq (a follower that reconnects after an agent restart resumes with it).
//   GET /v1/inspect/{deployment}                         the instance's status (kbpf inspect's), JSON
//   GET /v1/maps/{deployment}[?map=NAME]                 its maps, decoded from BTF (kbpf maps'), JSON
//
// Only TLS (plain HTTP gets no answer), with the certificate the node publishes in its BpfNode
// status (which clients pin); every request but /healthz carries a bearer token that
// `authenticate` accepts (logs-auth.ts: a TokenReview for this node's audience). Nothing here
// writes or controls anything.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { jsonReplacer, type LogRecord, type ReadOptions } from '../../agent/log-store.js';
import { Invalid, isKind } from '../../errors.js';
import { parseSince } from '../../util/duration.js';
import { writeWithBackpressure } from '../../util/http-stream.js';
import { requestUrl } from '../../util/request-url.js';
import type { Verdict } from './logs-auth.js';

export interface LogSource {
  /** is there an instance of this name on the node */
  has(instance: string): boolean;
  read(instance: string, opts?: ReadOptions): LogRecord[];
  followBatches(instance: string, opts: ReadOptions, signal: AbortSignal): AsyncIterable<LogRecord[]>;
  /** the instance's status, as `kbpf inspect` shows it */
  inspect?(instance: string): unknown;
  /** its maps' contents (only `map`, when given), as `kbpf maps` shows them */
  maps?(instance: string, map?: string): unknown;
}

export interface NodeLogsServerOptions {
  /** address to listen on (an IP of the node) */
  host: string;
  /** port; 0 = any free one */
  port: number;
  /** host to put in the advertised URL (default: host) */
  advertiseHost?: string;
  /** the server's key and certificate (PEM) */
  tls: { key: string; cert: string };
  /** the verdict on a request's Authorization header */
  authenticate: (authorization: string | undefined) => Promise<Verdict>;
  source: LogSource;
  /** log requests served at once; more are answered 503 with Retry-After (default 16) */
  maxConcurrent?: number;
}

export const DEFAULT_MAX_CONCURRENT_LOG_REQUESTS = 16;
/** records per write of a plain (not followed) read: the answer is streamed, not built whole */
const RECORDS_PER_WRITE = 256;

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/;

export class NodeLogsServer {
  url = '';
  #server?: Server;
  readonly #streams = new Set<AbortController>();
  #active = 0;

  constructor(readonly opts: NodeLogsServerOptions) {}

  async start(): Promise<string> {
    const server = createServer(
      { key: this.opts.tls.key, cert: this.opts.tls.cert, minVersion: 'TLSv1.2' },
      (req, res) => {
        this.handle(req, res).catch((e) =>
          this.send(res, isKind(e, Invalid) ? 400 : 500, { error: (e as Error).message }),
        );
      },
    );
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const port = (server.address() as AddressInfo).port;
    const host = this.opts.advertiseHost ?? this.opts.host;
    this.url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const ac of this.#streams) ac.abort();
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      res.end(`${JSON.stringify(body)}\n`);
      return;
    }
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req.url, 'https://node');
    if (req.method !== 'GET') return this.send(res, 405, { error: 'method not allowed (read-only endpoint: GET)' });
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    const verdict = await this.opts.authenticate(req.headers.authorization);
    if (!verdict.ok) {
      if (verdict.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
      return this.send(res, verdict.status, { error: verdict.reason });
    }
    const view = /^\/v1\/(inspect|maps)\/([^/]+)$/.exec(url.pathname);
    if (view) return this.serveView(res, view[1] as 'inspect' | 'maps', view[2]!, url.searchParams.get('map'));
    const m = /^\/v1\/logs\/([^/]+)$/.exec(url.pathname);
    if (!m)
      return this.send(res, 404, {
        error: `no such path ${url.pathname} (GET /v1/logs/DEPLOYMENT, /v1/inspect/DEPLOYMENT, /v1/maps/DEPLOYMENT)`,
      });
    const max = this.opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_LOG_REQUESTS;
    if (this.#active >= max) {
      res.setHeader('Retry-After', '1');
      return this.send(res, 503, { error: `this node serves ${max} log requests at once; try again` });
    }
    this.#active++;
    try {
      await this.serveLog(res, url, m[1]!);
    } finally {
      this.#active--;
    }
  }

  /** GET /v1/inspect/D and /v1/maps/D: what the agent says of one instance, as JSON. */
  private serveView(res: ServerResponse, what: 'inspect' | 'maps', segment: string, map: string | null): void {
    let name: string;
    try {
      name = decodeURIComponent(segment);
    } catch {
      this.send(res, 400, { error: 'bad URL encoding' });
      return;
    }
    if (!NAME_RE.test(name) || !this.opts.source.has(name)) {
      this.send(res, 404, { error: `no instance "${name}" on this node` });
      return;
    }
    const src = this.opts.source;
    const read = what === 'inspect' ? src.inspect?.bind(src) : src.maps?.bind(src);
    if (!read) {
      this.send(res, 404, { error: `this agent does not serve ${what}` });
      return;
    }
    try {
      const body = what === 'maps' ? read(name, map ?? undefined) : read(name);
      const text = `${JSON.stringify(body, jsonReplacer)}\n`;
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(text);
    } catch (e) {
      const code = /not found|no such|no map/i.test((e as Error).message) ? 404 : 500;
      this.send(res, code, { error: (e as Error).message });
    }
  }

  /** Log requests being served now. */
  get active(): number {
    return this.#active;
  }

  private async serveLog(res: ServerResponse, url: URL, segment: string): Promise<void> {
    let name: string;
    try {
      name = decodeURIComponent(segment);
    } catch {
      return this.send(res, 400, { error: 'bad URL encoding' });
    }
    if (!NAME_RE.test(name) || !this.opts.source.has(name))
      return this.send(res, 404, { error: `no instance "${name}" on this node` });
    const q = url.searchParams;
    const opts: ReadOptions = {};
    try {
      const since = q.get('since');
      if (since) opts.since = parseSince(since);
      const tail = q.get('tail');
      if (tail) {
        if (!/^\d+$/.test(tail)) throw new Error(`tail: "${tail}" is not a non-negative integer`);
        opts.tail = Number(tail);
      }
      const after = q.get('afterSeq');
      if (after && !/^\d+$/.test(after)) throw new Error(`afterSeq: "${after}" is not a non-negative integer`);
    } catch (e) {
      return this.send(res, 400, { error: (e as Error).message });
    }
    const afterSeq = Number(q.get('afterSeq') ?? 0);
    const keep = (r: LogRecord): boolean => r.seq > afterSeq;
    const headers = { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' };
    const follow = ['1', 'true'].includes(q.get('follow') ?? '');
    const ac = new AbortController();
    if (!follow) {
      // streamed in slices with back-pressure: never the whole answer as one string
      const records = this.opts.source.read(name, opts);
      const abort = (): void => ac.abort();
      res.on('close', abort);
      this.#streams.add(ac);
      res.writeHead(200, headers);
      try {
        for (let i = 0; i < records.length && !ac.signal.aborted; i += RECORDS_PER_WRITE) {
          let text = '';
          for (const r of records.slice(i, i + RECORDS_PER_WRITE))
            if (keep(r)) text += `${JSON.stringify(r, jsonReplacer)}\n`;
          if (text) await writeWithBackpressure(res, text, ac.signal);
        }
      } finally {
        this.#streams.delete(ac);
        res.off('close', abort);
        if (!res.writableEnded) res.end();
      }
      return;
    }
    this.#streams.add(ac);
    const abort = (): void => ac.abort();
    res.on('close', abort);
    res.writeHead(200, { ...headers, Connection: 'close' });
    res.flushHeaders();
    try {
      for await (const batch of this.opts.source.followBatches(name, opts, ac.signal)) {
        if (ac.signal.aborted) break;
        const recs = batch.filter(keep);
        if (recs.length === 0) continue;
        await writeWithBackpressure(res, `${recs.map((r) => JSON.stringify(r, jsonReplacer)).join('\n')}\n`, ac.signal);
      }
    } finally {
      this.#streams.delete(ac);
      res.off('close', abort);
      if (!res.writableEnded) res.end();
    }
  }
}
