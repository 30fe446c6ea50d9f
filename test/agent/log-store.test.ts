// The bounded per-instance event log: append/read, since/tail, rotation that bounds disk use,
// seq kept across restarts, follow (in process and across processes), remove, close.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type LogRecord, LogStore } from '../../src/agent/log-store.js';
import { tempDir } from '../../testbed/kernel.js';

test('append writes JSON lines with ts and seq; read returns them oldest first', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir);
  const before = Date.now();
  logs.append('snoop', { source: 'events', event: { pid: 1, comm: 'init' } });
  logs.append('snoop', {
    source: 'events',
    event: { pid: 2, big: 2n ** 60n, small: 7n, bytes: new Uint8Array([1, 2, 255]) },
  });
  // visible before the flush, as they will be on disk
  let recs = logs.read('snoop');
  assert.equal(recs.length, 2);
  assert.equal((recs[1]!.event as { big: unknown }).big, (2n ** 60n).toString());
  await logs.flush();
  const text = readFileSync(join(dir, 'snoop', 'events.jsonl'), 'utf8');
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.deepEqual(Object.keys(lines[0]).slice(0, 2), ['ts', 'seq']);
  assert.equal(lines[0].seq, 1);
  assert.equal(lines[1].seq, 2);
  assert.ok(Date.parse(lines[0].ts) >= before - 1);
  assert.equal(lines[1].event.big, (2n ** 60n).toString());
  assert.equal(lines[1].event.small, 7);
  assert.equal(lines[1].event.bytes, '0102ff');
  recs = logs.read('snoop');
  assert.deepEqual(
    recs.map((r) => r.seq),
    [1, 2],
  );
  assert.deepEqual(recs[0]!.event, { pid: 1, comm: 'init' });
  // a record cannot take over ts or seq
  const r = logs.append('snoop', { seq: 99, ts: 'yesterday', x: 1 });
  assert.equal(r.seq, 3);
  assert.notEqual(r.ts, 'yesterday');
  assert.deepEqual(logs.read('other'), []);
  await logs.close();
});

test('writes are batched and flushed within flushMs', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { flushMs: 100 });
  for (let i = 0; i < 1000; i++) logs.append('a', { i });
  const file = join(dir, 'a', 'events.jsonl');
  assert.equal(existsSync(file) ? statSync(file).size : 0, 0, 'nothing written synchronously');
  await sleep(250);
  assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1000);
  await logs.close();
});

test('close flushes what is queued; seq continues after a restart', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const a = new LogStore(dir, { flushMs: 10_000 });
  for (let i = 0; i < 5; i++) a.append('x', { i });
  await a.close();
  assert.throws(() => a.append('x', {}), /closed/);
  const b = new LogStore(dir);
  assert.deepEqual(
    b.read('x').map((r) => r.seq),
    [1, 2, 3, 4, 5],
  );
  assert.equal(b.append('x', { i: 5 }).seq, 6);
  await b.close();
});

test('since and tail', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir);
  for (let i = 0; i < 5; i++) logs.append('x', { i });
  await logs.flush();
  await sleep(30);
  const mid = new Date();
  await sleep(5);
  for (let i = 5; i < 10; i++) logs.append('x', { i });
  assert.deepEqual(
    logs.read('x', { since: mid }).map((r) => r.i),
    [5, 6, 7, 8, 9],
  );
  assert.deepEqual(
    logs.read('x', { tail: 3 }).map((r) => r.i),
    [7, 8, 9],
  );
  assert.deepEqual(logs.read('x', { tail: 0 }), []);
  assert.deepEqual(logs.read('x', { tail: 100 }).length, 10);
  assert.deepEqual(
    logs.read('x', { since: mid, tail: 2 }).map((r) => r.i),
    [8, 9],
  );
  assert.deepEqual(logs.read('x', { since: new Date(Date.now() + 60_000) }), []);
  await logs.close();
});

test('rotation bounds the disk a chatty instance uses', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const maxBytes = 64 * 1024;
  const keep = 2;
  const logs = new LogStore(dir, { maxBytes, keep, maxPendingBytes: 16 * 1024 });
  const payload = 'x'.repeat(200);
  const N = 20_000; // ~4.5 MB of records into a 192 KiB budget
  for (let i = 0; i < N; i++) logs.append('chatty', { i, payload });
  await logs.flush();
  const files = readdirSync(join(dir, 'chatty')).sort();
  assert.deepEqual(files, ['events.jsonl', 'events.jsonl.1', 'events.jsonl.2']);
  let total = 0;
  for (const f of files) {
    const s = statSync(join(dir, 'chatty', f)).size;
    assert.ok(s <= maxBytes, `${f} is ${s} bytes, over ${maxBytes}`);
    total += s;
  }
  assert.ok(total <= (keep + 1) * maxBytes);
  // every file holds whole lines, and read() returns a contiguous, ordered tail of what was written
  const recs = logs.read('chatty');
  assert.ok(recs.length > 0);
  assert.equal(recs[recs.length - 1]!.i, N - 1);
  for (let k = 1; k < recs.length; k++) assert.equal(recs[k]!.seq, recs[k - 1]!.seq + 1);
  assert.deepEqual(
    logs.read('chatty', { tail: 5 }).map((r) => r.i),
    [N - 5, N - 4, N - 3, N - 2, N - 1],
  );
  await logs.close();
  // keep = 0: only the current file
  const dir0 = tempDir(t, 'kbpf-logs-');
  const l0 = new LogStore(dir0, { maxBytes: 4096, keep: 0 });
  for (let i = 0; i < 1000; i++) l0.append('y', { i, payload });
  await l0.close();
  assert.deepEqual(readdirSync(join(dir0, 'y')), ['events.jsonl']);
  assert.ok(statSync(join(dir0, 'y', 'events.jsonl')).size <= 4096);
});

test('100k appends are fast (batched writes)', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir);
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++)
    logs.append('fast', { source: 'events', event: { pid: i, comm: 'bench', path: '/etc/passwd' } });
  await logs.flush();
  const ms = performance.now() - t0;
  assert.ok(ms < 3000, `100k appends took ${ms.toFixed(0)} ms`);
  assert.equal(logs.read('fast', { tail: 1 })[0]!.seq, 100_000);
  await logs.close();
});

test('follow yields existing records, then new ones as they are appended', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { pollMs: 5000 }); // in-process wake-ups, not polling
  logs.append('f', { i: 0 });
  logs.append('f', { i: 1 });
  await logs.flush();
  logs.append('f', { i: 2 }); // still queued
  const ac = new AbortController();
  const it = logs.follow('f', {}, ac.signal);
  const first: unknown[] = [];
  for (let k = 0; k < 3; k++) first.push(((await it.next()).value as LogRecord).i);
  assert.deepEqual(first, [0, 1, 2]);
  const t0 = Date.now();
  setTimeout(() => logs.append('f', { i: 3 }), 20);
  const next = await it.next();
  assert.equal((next.value as LogRecord).i, 3);
  assert.ok(Date.now() - t0 < 1000, 'woken by append, not by the poll');
  ac.abort();
  assert.equal((await it.next()).done, true);
  await logs.close();
});

test('follow with tail and since, across rotations, without loss or duplicates', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { maxBytes: 8 * 1024, keep: 3, flushMs: 5 });
  for (let i = 0; i < 10; i++) logs.append('r', { i });
  const ac = new AbortController();
  const it = logs.follow('r', { tail: 2 }, ac.signal);
  const got: number[] = [];
  const reader = (async () => {
    for await (const r of it) {
      got.push(r.i as number);
      if (r.i === 999) break;
    }
  })();
  // slow trickle with rotations in between (each record ~60 bytes: a rotation every ~130)
  for (let i = 10; i < 1000; i++) {
    logs.append('r', { i });
    if (i % 50 === 0) await sleep(2);
  }
  await reader;
  ac.abort();
  assert.deepEqual(got, [8, 9, ...Array.from({ length: 990 }, (_, k) => k + 10)]);
  await logs.close();
});

test('followText yields the lines as the files hold them, across many rotations, none lost or repeated', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  // ready-made lines (as the event pump writes them), durable: written at once, rotating often
  const logs = new LogStore(dir, { maxBytes: 4096, keep: 1, flushMs: 5 });
  const ac = new AbortController();
  for (let i = 0; i < 3; i++) logs.append('x', { i });
  let text = '';
  const done = (async () => {
    for await (const chunk of logs.followText('x', { tail: 1 }, ac.signal)) {
      text += chunk;
      if (text.includes('"i":5002}')) break;
    }
  })();
  for (let i = 3; i < 5000; i += 10) {
    const h = logs.lineHead('x');
    const lines = Array.from({ length: 10 }, (_, k) => `${Buffer.from(h.head)}${h.seq + k},"i":${i + k}}\n`).join('');
    logs.appendLines('x', Buffer.from(lines), 10, h.seq, true);
    if (i % 50 === 3) await sleep(1); // the follower reads between (it cannot fall more than the kept files behind)
  }
  await Promise.race([done, sleep(5000, undefined, { ref: false })]);
  ac.abort();
  const recs = text
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as LogRecord);
  assert.deepEqual(
    recs.map((r) => r.i),
    Array.from({ length: 5001 }, (_, k) => k + 2),
  );
  assert.ok(recs.every((r, k) => k === 0 || r.seq === recs[k - 1]!.seq + 1));
  await logs.close();
});

test('follow picks up records another process writes, across rotation (polling)', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const writer = new LogStore(dir, { maxBytes: 4096, keep: 2, flushMs: 5 });
  const reader = new LogStore(dir, { pollMs: 20 });
  writer.append('p', { i: 0 });
  await writer.flush();
  const ac = new AbortController();
  const it = reader.follow('p', {}, ac.signal);
  const got: number[] = [];
  const done = (async () => {
    for await (const r of it) {
      got.push(r.i as number);
      if (r.i === 99) break;
    }
  })();
  for (let i = 1; i < 100; i++) {
    writer.append('p', { i, pad: 'y'.repeat(30) });
    if (i % 10 === 0) await sleep(40); // the reader polls between rotations
  }
  await writer.flush();
  await Promise.race([done, sleep(5000, undefined, { ref: false })]);
  ac.abort();
  assert.deepEqual(
    got,
    Array.from({ length: 100 }, (_, k) => k),
  );
  await writer.close();
  await reader.close();
});

test('remove deletes the log and ends its followers; close ends followers too', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { pollMs: 5000 });
  logs.append('gone', { i: 1 });
  await logs.flush();
  const it = logs.follow('gone', {}, new AbortController().signal);
  assert.equal(((await it.next()).value as LogRecord).i, 1);
  const pending = it.next();
  await logs.remove('gone');
  assert.equal((await pending).done, true);
  assert.equal(existsSync(join(dir, 'gone')), false);
  assert.deepEqual(logs.read('gone'), []);
  // a new instance of the same name starts over
  assert.equal(logs.append('gone', {}).seq, 1);

  const it2 = logs.follow('other', {}, new AbortController().signal);
  const p2 = it2.next();
  await logs.close();
  assert.equal((await p2).done, true);
});

test('instance names cannot escape the log directory', async (t) => {
  const logs = new LogStore(tempDir(t, 'kbpf-logs-'));
  assert.throws(() => logs.append('../etc', {}), /invalid instance name/);
  assert.throws(() => logs.read('a/b'), /invalid instance name/);
  await logs.close();
});

test('an instance rotates at its own size (setLimits), others at the store defaults', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { maxBytes: 16 * 1024, keep: 2, maxPendingBytes: 4096 });
  logs.setLimits('big', { maxBytes: 64 * 1024, keep: 1 });
  assert.deepEqual(logs.limits('big'), { maxBytes: 64 * 1024, keep: 1 });
  assert.deepEqual(logs.limits('small'), { maxBytes: 16 * 1024, keep: 2 });
  const payload = 'y'.repeat(200);
  for (let i = 0; i < 5000; i++) {
    logs.append('big', { i, payload });
    logs.append('small', { i, payload });
  }
  await logs.flush();
  const sizes = (name: string): Record<string, number> =>
    Object.fromEntries(readdirSync(join(dir, name)).map((f) => [f, statSync(join(dir, name, f)).size]));
  const big = sizes('big');
  assert.deepEqual(Object.keys(big).sort(), ['events.jsonl', 'events.jsonl.1']);
  // a full rotated file is within one line of its size (it was rotated at 64 KiB, not 16)
  assert.ok(big['events.jsonl.1']! <= 64 * 1024 && big['events.jsonl.1']! > 63 * 1024, JSON.stringify(big));
  const small = sizes('small');
  assert.deepEqual(Object.keys(small).sort(), ['events.jsonl', 'events.jsonl.1', 'events.jsonl.2']);
  for (const s of Object.values(small)) assert.ok(s <= 16 * 1024);
  // reads see the instance's own files, and the newest records
  const recs = logs.read('big');
  assert.equal(recs.at(-1)!.i, 4999);
  assert.ok(recs.length > 300, `${recs.length} records kept in 2 x 64 KiB`);
  for (let k = 1; k < recs.length; k++) assert.equal(recs[k]!.seq, recs[k - 1]!.seq + 1);
  await logs.close();
});

test('a follower far behind reads the files a chunk at a time, none lost or repeated', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const chunk = 8 * 1024;
  const logs = new LogStore(dir, { maxBytes: 256 * 1024, keep: 2, readChunkBytes: chunk, pollMs: 5000 });
  logs.append('x', { i: 0 });
  await logs.flush();
  const ac = new AbortController();
  const it = logs.followText('x', { tail: 1 }, ac.signal);
  assert.match((await it.next()).value as string, /"i":0\}/);
  const waiting = it.next();
  const payload = 'z'.repeat(100);
  const N = 4000; // ~600 KB: more than two files, all written before the follower reads again
  for (let i = 1; i <= N; i++) logs.append('x', { i, payload });
  await logs.flush();
  const chunks: string[] = [(await waiting).value as string];
  let text = chunks[0]!;
  while (!text.includes(`"i":${N},`)) {
    const next = (await it.next()).value as string;
    chunks.push(next);
    text += next;
  }
  ac.abort();
  const lineMax = 200;
  for (const c of chunks) assert.ok(c.length <= chunk + lineMax, `a chunk of ${c.length} bytes`);
  assert.ok(chunks.length > 600_000 / chunk / 2, `${chunks.length} chunks`);
  const got = text
    .split('\n')
    .filter((l) => l)
    .map((l) => (JSON.parse(l) as LogRecord).i as number);
  // the files (3 x 256 KiB) hold all of it: every record comes, in order, once
  assert.deepEqual(
    got,
    Array.from({ length: N }, (_, k) => k + 1),
  );
  await logs.close();
});

test('tail reads only the end of a big file (in chunks), across files', async (t) => {
  const dir = tempDir(t, 'kbpf-logs-');
  const logs = new LogStore(dir, { maxBytes: 64 * 1024, keep: 2, readChunkBytes: 4096 });
  for (let i = 0; i < 2000; i++) logs.append('t', { i, pad: 'p'.repeat(40) });
  await logs.close();
  const again = new LogStore(dir, { maxBytes: 64 * 1024, keep: 2, readChunkBytes: 4096 });
  const all = again.read('t');
  for (const n of [0, 1, 5, 100, 700, all.length, all.length + 10]) {
    assert.deepEqual(
      again.read('t', { tail: n }).map((r) => r.i),
      n === 0 ? [] : all.slice(-n).map((r) => r.i),
      `tail ${n}`,
    );
  }
  await again.close();
});
