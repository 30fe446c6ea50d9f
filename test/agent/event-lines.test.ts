// Event records as log lines straight from their bytes (src/agent/event-lines.ts) and the log
// store's side of it (lineHead, appendLines): the file holds the same lines as the decode path
// (append({ source, event: jsonValue(decoded) })), readers see queued lines, seqs continue,
// rotation still bounds the files, followers are woken.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { codecFor, readObjectBtf } from 'kbpf/bpf';
import { EventLines } from '../../src/agent/event-lines.js';
import { LogStore } from '../../src/agent/log-store.js';
import { Conflict, isKind } from '../../src/errors.js';
import type { EventSpec } from '../../src/package/package-spec.js';
import { jsonValue } from '../../src/util/json.js';
import { tempDir } from '../../testbed/kernel.js';

const btf = readObjectBtf(readFileSync(new URL('../bpf/btf_types.bpf.o', import.meta.url)))!;
const codec = codecFor(btf, btf.findByName('kt_value', 'STRUCT')!.id);
const ev = (columns?: string[]): EventSpec => ({
  map: 'events',
  object: 'o',
  kind: 'ringbuf',
  type: 'kt_value',
  columns,
});

/** `n` records of random bytes, back to back. */
function records(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n * codec.size);
  let x = seed;
  for (let i = 0; i < b.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const withoutTs = (text: string): string[] =>
  text
    .trim()
    .split('\n')
    .map((l) => l.replace(/^\{"ts":"[^"]*",/, '{'));

for (const columns of [undefined, ['name', 'counts', 'nope', 'ints']]) {
  test(`lines from bytes equal the decode path's${columns ? ' (with columns)' : ''}`, async (t) => {
    const dir = tempDir(t, 'kbpf-lines-');
    const a = new LogStore(join(dir, 'a'));
    const b = new LogStore(join(dir, 'b'));
    const bytes = records(50, 42);
    const lines = EventLines.for('x', ev(columns), codec, a)!;
    assert.ok(lines);
    lines.begin();
    for (let i = 0; i < 50; i++) lines.add(bytes, i * codec.size, codec.size);
    assert.equal(lines.end(), 50);
    for (let i = 0; i < 50; i++) {
      let value = jsonValue(codec.decode(bytes, i * codec.size));
      if (columns) {
        const all = value as Record<string, unknown>;
        value = Object.fromEntries(columns.map((c) => [c, all[c]]));
      }
      b.append('x', { source: 'events', event: value });
    }
    // queued lines read as the decode path's records
    const fromLines = a.read('x');
    assert.equal(fromLines.length, 50);
    assert.deepEqual(
      fromLines.map(({ ts: _, ...r }) => r),
      b.read('x').map(({ ts: _, ...r }) => r),
    );
    await a.close();
    await b.close();
    const textA = readFileSync(join(dir, 'a', 'x', 'events.jsonl'), 'utf8');
    const textB = readFileSync(join(dir, 'b', 'x', 'events.jsonl'), 'utf8');
    assert.deepEqual(withoutTs(textA), withoutTs(textB));
    assert.match(textA, /^\{"ts":"\d{4}-\d\d-\d\dT[\d:.]+Z","seq":1,"source":"events","event":\{/);
  });
}

test('seqs continue across append, appendLines and a restart; a stale head is refused', async (t) => {
  const dir = tempDir(t, 'kbpf-lines-');
  const logs = new LogStore(dir);
  logs.append('x', { first: true });
  const lines = EventLines.for('x', ev(), codec, logs)!;
  const bytes = records(3, 1);
  lines.begin();
  for (let i = 0; i < 3; i++) lines.add(bytes, i * codec.size, codec.size);
  lines.end();
  assert.equal(logs.append('x', { last: true }).seq, 5);
  assert.deepEqual(
    logs.read('x').map((r) => r.seq),
    [1, 2, 3, 4, 5],
  );
  // lines framed before another append took their seq
  const head = logs.lineHead('x');
  logs.append('x', {});
  assert.throws(
    () => logs.appendLines('x', Buffer.from(',"a":1}\n'), 1, head.seq),
    (e: unknown) => isKind(e, Conflict) && /start at seq 6, but the log is at seq 6/.test((e as Error).message),
  );
  await logs.close();
  const again = new LogStore(dir);
  assert.equal(again.lineHead('x').seq, 7);
  await again.close();
});

test('appendLines keeps its own copy of the lines, also of a Buffer (whose slice() is a view)', async (t) => {
  const logs = new LogStore(tempDir(t, 'kbpf-lines-'));
  t.after(() => logs.close());
  const bytes = Buffer.alloc(64);
  const h = logs.lineHead('x');
  let n = Buffer.from(h.head).copy(bytes);
  n += bytes.write(`${h.seq},"n":1}\n`, n);
  logs.appendLines('x', bytes.subarray(0, n), 1, h.seq);
  bytes.fill(0x20); // the caller's buffer is its own again
  assert.deepEqual(
    logs.read('x').map((r) => [r.seq, r.n]),
    [[1, 1]],
  );
});

test('durable batches are on disk when end() returns; rotation still bounds the files', async (t) => {
  const dir = tempDir(t, 'kbpf-lines-');
  const logs = new LogStore(dir, { maxBytes: 16 * 1024, keep: 2, flushMs: 60_000 });
  const lines = EventLines.for('r', ev(), codec, logs, true)!;
  const bytes = records(100, 7);
  const file = join(dir, 'r', 'events.jsonl');
  lines.begin();
  lines.add(bytes, 0, codec.size);
  lines.end();
  assert.equal(readFileSync(file, 'utf8').split('\n').length, 2, 'written at once');
  for (let round = 0; round < 20; round++) {
    lines.begin();
    for (let i = 0; i < 100; i++) lines.add(bytes, i * codec.size, codec.size);
    lines.end();
  }
  for (const f of ['events.jsonl', 'events.jsonl.1', 'events.jsonl.2'])
    assert.ok(statSync(join(dir, 'r', f)).size <= 16 * 1024, `${f} within maxBytes`);
  const recs = logs.read('r');
  assert.equal(recs.at(-1)!.seq, 2001);
  // whole lines only, in order, across the rotated files
  for (let i = 1; i < recs.length; i++) assert.equal(recs[i]!.seq, recs[i - 1]!.seq + 1);
  await logs.close();
});

test('a follower is woken by appended lines', async (t) => {
  const dir = tempDir(t, 'kbpf-lines-');
  const logs = new LogStore(dir, { pollMs: 60_000 });
  const ac = new AbortController();
  const it = logs.follow('f', {}, ac.signal);
  const next = it.next();
  const lines = EventLines.for('f', ev(['name']), codec, logs)!;
  const bytes = records(1, 3);
  setTimeout(() => {
    lines.begin();
    lines.add(bytes, 0, codec.size);
    lines.end();
  }, 10);
  const r = (await next).value!;
  assert.equal(r.seq, 1);
  assert.deepEqual(Object.keys(r.event as object), ['name']);
  ac.abort();
  await logs.close();
});
