// The web view's HTTP server (node:http): the bundled page and the API it reads, over any
// FlowSource — the collector of flow-monitor standalone (`kbpf ui`), the merged node streams in
// the controller, a fake in tests.
//
//   GET /                              the page (index.html, app.js, app.css)
//   GET /api/flows?last=N&FILTERS      JSON: the last N (default 100) matching flow reports, oldest first
//   GET /api/flows/stream?last=N&FILTERS
//                                      Server-Sent Events: the last N matching reports (default 0),
//                                      an `event: live`, then each matching report as it comes
//   GET /api/map?window=S&FILTERS      JSON: the service map of the last S seconds (default 60)
//   GET /healthz                       ok
//
// FILTERS are the flags of `kbpf flows` as parameters (src/ui/filter-query.ts). Read-only: nothing
// here changes anything. Listening on loopback, it answers only requests whose Host names a loopback
// address (a web page elsewhere cannot reach it by DNS rebinding); there is no authentication, so
// listening elsewhere shows the flows to whoever reaches the address.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { matchFlow } from '../../apps/flow-monitor/filter.js';
import type { Flow, FlowFilter, FlowSource } from '../../apps/flow-monitor/flow.js';
import { Invalid, InvalidError, isKind } from '../errors.js';
import { writeWithBackpressure } from '../util/http-stream.js';
import { requestUrl } from '../util/request-url.js';
import { type Asset, loadAssets } from './assets.js';
import { filterFromQuery } from './filter-query.js';
import { isLoopback } from './listen.js';
import { serviceMap } from './service-map.js';

export interface UiServerOptions {
  host: string;
  /** 0: any free port */
  port: number;
  source: FlowSource;
  /** where the bundled page is (default dist/ui) */
  assetsDir?: string;
  /** SSE comment lines sent this often so proxies (and port-forward) keep the stream open (default 15 s) */
  keepAliveMs?: number;
}

export const DEFAULT_LAST = 100;
export const MAX_LAST = 10_000;
export const DEFAULT_MAP_WINDOW_S = 60;
export const MAX_MAP_WINDOW_S = 3600;
/** reports read from the source for a filtered `last` or a map: the bound on one request's work */
export const SCAN_MAX = 100_000;

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
};

function intParam(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  if (!/^\d+$/.test(v)) throw new InvalidError(`${name}: "${v}" is not a non-negative integer`);
  const n = Number(v);
  if (n > max) throw new InvalidError(`${name}: at most ${max} (got ${v})`);
  return n;
}

export class UiServer {
  url = '';
  #server?: Server;
  readonly #assets: Map<string, Asset>;
  readonly #streams = new Set<AbortController>();

  constructor(readonly opts: UiServerOptions) {
    this.#assets = loadAssets(opts.assetsDir);
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        if (isKind(e, Invalid)) this.json(res, 400, { error: (e as Error).message });
        else this.json(res, 500, { error: (e as Error).message });
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const { port } = server.address() as AddressInfo;
    const h = this.opts.host;
    this.url = `http://${h.includes(':') ? `[${h}]` : h}:${port}/`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const ac of this.#streams) ac.abort();
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
    });
    res.end(text);
  }

  /** A loopback listener answers only to loopback names (DNS rebinding). */
  private hostAllowed(req: IncomingMessage): boolean {
    if (!isLoopback(this.opts.host)) return true;
    const host = req.headers.host;
    if (!host) return false;
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
    return isLoopback(name.toLowerCase());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.json(res, 405, { error: 'method not allowed (the web view is read-only: GET)' });
    if (!this.hostAllowed(req))
      return this.json(res, 403, { error: `host "${req.headers.host ?? ''}" is not a loopback name` });
    const url = requestUrl(req.url, 'http://ui');
    const q = url.searchParams;
    switch (url.pathname) {
      case '/healthz':
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok\n');
        return;
      case '/api/flows':
        return this.json(res, 200, this.recent(filterFromQuery(q), intParam(q, 'last', DEFAULT_LAST, MAX_LAST)));
      case '/api/flows/stream':
        return this.stream(res, filterFromQuery(q), intParam(q, 'last', 0, MAX_LAST));
      case '/api/map': {
        const filter = filterFromQuery(q);
        const window = intParam(q, 'window', DEFAULT_MAP_WINDOW_S, MAX_MAP_WINDOW_S);
        if (window === 0) throw new InvalidError('window: at least 1 second');
        const reports = this.opts.source.recent(SCAN_MAX).filter((f) => matchFlow(filter, f));
        return this.json(res, 200, serviceMap(reports, window));
      }
    }
    const asset = this.#assets.get(url.pathname === '/index.html' ? '/' : url.pathname);
    if (!asset) return this.json(res, 404, { error: `no such path ${url.pathname}` });
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': asset.type,
      'Content-Length': asset.body.length,
      'Cache-Control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  /** The last `last` matching reports, oldest first. */
  private recent(filter: FlowFilter, last: number): Flow[] {
    if (last === 0) return [];
    const unfiltered = Object.keys(filter).length === 0;
    const all = this.opts.source.recent(unfiltered ? last : SCAN_MAX);
    return unfiltered ? all.slice(-last) : all.filter((f) => matchFlow(filter, f)).slice(-last);
  }

  private async stream(res: ServerResponse, filter: FlowFilter, last: number): Promise<void> {
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    res.on('close', abort); // the client went (or the server closes)
    this.#streams.add(ac);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.opts.keepAliveMs ?? 15_000);
    // subscribe before reading the backlog, so that no report falls between the two (one may come
    // twice: the page keeps one row per flow)
    const it = this.opts.source.follow(ac.signal)[Symbol.asyncIterator]();
    const first = it.next();
    first.catch(() => {}); // awaited below; this only keeps a failure during the backlog from being "unhandled"
    const send = (f: Flow): Promise<void> => writeWithBackpressure(res, `data: ${JSON.stringify(f)}\n\n`, ac.signal);
    try {
      for (const f of this.recent(filter, last)) await send(f);
      await writeWithBackpressure(res, 'event: live\ndata: {}\n\n', ac.signal);
      for (let r = await first; !r.done && !ac.signal.aborted; r = await it.next()) {
        if (matchFlow(filter, r.value)) await send(r.value);
      }
    } finally {
      clearInterval(keepAlive);
      this.#streams.delete(ac);
      res.off('close', abort);
      ac.abort();
      void it.return?.();
      if (!res.writableEnded) res.end();
    }
  }
}
