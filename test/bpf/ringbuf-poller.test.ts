// The shared event poller: one epoll wait for every reader, one-shot arming, and a process
// lifetime that only armed, ref'd registrations extend.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Poller, poller } from '../../src/bpf/poller.js';

const CHILD = fileURLToPath(new URL('./ringbuf-child.js', import.meta.url));
const OBJ = fileURLToPath(new URL('./ringbuf.bpf.o', import.meta.url));

function fifos(n: number): { dir: string; paths: string[]; fds: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-poller-'));
  const paths = Array.from({ length: n }, (_, i) => join(dir, `f${i}`));
  execFileSync('mkfifo', paths);
  const fds = paths.map((p) => openSync(p, constants.O_RDWR | constants.O_NONBLOCK));
  return { dir, paths, fds };
}

function cleanup(f: { dir: string; fds: number[] }): void {
  for (const fd of f.fds) closeSync(fd);
  rmSync(f.dir, { recursive: true, force: true });
}

test('one wait serves many registrations; each fires only when its fd is readable, once per arm', async (t) => {
  const p = new Poller();
  const f = fifos(50);
  const watches = f.fds.map((fd, i) => p.watch(fd, () => fired.push(i)));
  t.after(() => {
    for (const w of watches) w.close();
    cleanup(f);
  });
  const fired: number[] = [];
  for (const w of watches) w.arm();
  assert.equal(p.size, 50);
  assert.ok(p.waiting, 'a threadpool wait is in flight');
  const waitsBefore = p.waits;

  writeSync(f.fds[17]!, 'x');
  writeSync(f.fds[33]!, 'x');
  const deadline = Date.now() + 5000;
  while (fired.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(
    fired.sort((a, b) => a - b),
    [17, 33],
  );
  assert.ok(p.waits - waitsBefore <= 3, `a handful of waits for 50 fds, not one each (${p.waits - waitsBefore})`);

  // one-shot: still readable, but not re-armed → no more calls
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    fired.sort((a, b) => a - b),
    [17, 33],
  );
  assert.equal(watches[17]!.isArmed, false);
  watches[17]!.arm(); // re-armed while readable → fires at once
  while (fired.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(
    fired.sort((a, b) => a - b),
    [17, 17, 33],
  );

  // closing everything stops the wait (bounded by its timeout)
  readSync(f.fds[17]!, Buffer.alloc(8));
  for (const w of watches) w.close();
  assert.equal(p.size, 0);
  const stopBy = Date.now() + 2000;
  while (p.waiting && Date.now() < stopBy) await new Promise((r) => setTimeout(r, 10));
  assert.equal(p.waiting, false, 'no wait left once nothing is armed');
});

test('disarm, unref and close while a wait is in flight', async (t) => {
  const p = new Poller();
  const f = fifos(2);
  const fired: number[] = [];
  const a = p.watch(f.fds[0]!, () => fired.push(0));
  const b = p.watch(f.fds[1]!, () => fired.push(1), { ref: false });
  t.after(() => {
    a.close();
    b.close();
    cleanup(f);
  });
  a.arm();
  b.arm();
  assert.ok(p.waiting);
  a.disarm();
  writeSync(f.fds[0]!, 'x');
  writeSync(f.fds[1]!, 'x');
  const deadline = Date.now() + 3000;
  while (fired.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(fired, [1], "the disarmed fd does not fire; the unref'd one does");
  b.arm();
  b.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(fired, [1], 'a closed watch never fires');
  assert.ok(!p.polling);
});

test('the process-wide poller is one instance', () => {
  assert.equal(poller(), poller());
});

function child(mode: string, arg: string): { out: string[]; ms: number; status: number | null } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CHILD, mode, arg], { encoding: 'utf8', timeout: 10_000 });
  if (r.stderr) process.stderr.write(r.stderr);
  return { out: r.stdout.trim().split('\n'), ms: Date.now() - t0, status: r.status };
}

test("an armed ref'd watch keeps the process alive until it fires; an unref'd one does not", (t) => {
  const f = fifos(2);
  t.after(() => cleanup(f));
  const ref = child('fifo-ref', f.paths[0]!);
  assert.equal(ref.status, 0);
  assert.deepEqual(ref.out, ['armed waiting=true polling=false', 'fired']);
  const unref = child('fifo-unref', f.paths[1]!);
  assert.equal(unref.status, 0);
  // nobody ever writes to this FIFO: had the watch kept the process alive, spawnSync would have
  // killed it after its timeout (status null)
  assert.deepEqual(unref.out, ['armed waiting=false polling=true'], 'exits without waiting for the fd');
});

test('a waiting ring buffer iterator keeps the process alive until close(); unref() lets it exit', () => {
  const closed = child('reader-close', OBJ);
  assert.equal(closed.status, 0);
  assert.deepEqual(closed.out, ['waiting', 'next done=true']);
  const unref = child('reader-unref', OBJ);
  assert.equal(unref.status, 0);
  assert.deepEqual(unref.out, ['waiting'], 'exits with the iteration still pending');
});
