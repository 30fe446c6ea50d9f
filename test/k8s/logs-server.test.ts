// The node's log endpoint: TLS only (plain HTTP gets no answer), a token the authenticator
// refuses gets its status and reason; under load a plain read is streamed (chunked, in slices,
// never one string of the whole log), and requests past the concurrency cap are answered 503
// with Retry-After instead of piling up.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { test } from 'node:test';
import type { LogRecord } from '../../src/agent/log-store.js';
import { NodeLogsServer } from '../../src/k8s/node/logs-server.js';
import { selfSignedCertificate } from '../../src/k8s/node/serving-cert.js';

const tls = selfSignedCertificate('test-node', ['127.0.0.1']);
const GOOD = { authorization: 'Bearer good' };

function request(url: string, cb: Parameters<typeof httpsRequest>[2], headers: Record<string, string> = GOOD) {
  const opts: RequestOptions = { ca: tls.cert, headers };
  return httpsRequest(url, opts, cb);
}

function get(
  url: string,
  headers: Record<string, string> = GOOD,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    request(
      url,
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
      headers,
    )
      .on('error', reject)
      .end();
  });
}

test('log endpoint: plain reads are streamed; requests past the cap get 503 and Retry-After', async (t) => {
  const records: LogRecord[] = Array.from({ length: 3000 }, (_, i) => ({ ts: 't', seq: i + 1, event: { i } }) as never);
  const stop = new AbortController();
  const server = new NodeLogsServer({
    host: '127.0.0.1',
    port: 0,
    maxConcurrent: 2,
    tls,
    authenticate: async (h) =>
      h === 'Bearer good' ? { ok: true, user: 'reader' } : { ok: false, status: 401, reason: 'not this token' },
    source: {
      has: (n) => n === 'conn',
      read: () => records,
      async *followBatches(_n, _o, signal) {
        yield [records[0]!];
        await new Promise<void>((r) => {
          signal.addEventListener('abort', () => r(), { once: true });
          stop.signal.addEventListener('abort', () => r(), { once: true });
        });
      },
    },
  });
  const url = await server.start();
  t.after(() => server.close());
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);

  // plain HTTP to the same port: no HTTP answer at all (the TLS server drops it)
  const plainHttp = await new Promise<string>((resolve) => {
    httpRequest(`${url.replace('https:', 'http:')}/v1/logs/conn`, (res) => resolve(`answered ${res.statusCode}`))
      .on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message))
      .end();
  });
  assert.match(plainHttp, /ECONNRESET|socket hang up|EPROTO/, `plain HTTP: ${plainHttp}`);
  // a token the authenticator refuses, or none: 401 with its reason, nothing served
  for (const headers of [{ authorization: 'Bearer other' }, {}] as Record<string, string>[]) {
    const refused = await get(`${url}/v1/logs/conn`, headers);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['www-authenticate'], 'Bearer');
    assert.match(JSON.parse(refused.body).error, /not this token/);
  }

  const plain = await get(`${url}/v1/logs/conn?afterSeq=10`);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-length'], undefined, 'not built whole: no Content-Length');
  assert.equal(plain.headers['transfer-encoding'], 'chunked');
  const lines = plain.body.trim().split('\n');
  assert.equal(lines.length, 2990);
  assert.equal(JSON.parse(lines[0]!).seq, 11);

  // two followers hold both places; a third request is turned away, with a hint when to retry
  const followers = [0, 1].map(
    () =>
      new Promise<void>((resolve, reject) => {
        request(`${url}/v1/logs/conn?follow=1`, (res) => {
          res.once('data', () => resolve());
          res.resume();
        })
          .on('error', () => {})
          .on('error', reject)
          .end();
      }),
  );
  await Promise.all(followers);
  assert.equal(server.active, 2);
  const busy = await get(`${url}/v1/logs/conn`);
  assert.equal(busy.status, 503);
  assert.equal(busy.headers['retry-after'], '1');
  assert.match(JSON.parse(busy.body).error, /serves 2 log requests at once/);
  assert.equal((await get(`${url}/healthz`)).status, 200, 'health is not capped');

  stop.abort(); // the followers end; their places are free again
  for (let i = 0; i < 50 && server.active > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.active, 0);
  assert.equal((await get(`${url}/v1/logs/conn`)).status, 200);
});
