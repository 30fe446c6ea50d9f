// The node's log endpoint under load: a plain read is streamed (chunked, in slices, never one
// string of the whole log), and requests past the concurrency cap are answered 503 with
// Retry-After instead of piling up.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import type { LogRecord } from '../../src/agent/log-store.js';
import { NodeLogsServer } from '../../src/k8s/node/logs-server.js';

function get(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    })
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
