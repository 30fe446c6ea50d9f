import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FileLock, type ImageIndex, LayoutStore, PackageError } from '../../src/package/index.js';
import { run, samplePackage, tempDir } from './helpers.js';

const packageModule = fileURLToPath(new URL('../../src/package/index.js', import.meta.url));

/** Child process: puts `count` packages named w<worker>-<i> (and re-tags a shared tag) into the store. */
const WORKER = `
const [root, worker, count] = process.argv.slice(1);
const { LayoutStore, KBPF_BYTECODE } = await import(process.env.KBPF_PACKAGE_MODULE);
const store = new LayoutStore(root);
for (let i = 0; i < Number(count); i++) {
  const name = 'w' + worker + '-' + i;
  await store.putPackage({
    manifest: { name, version: '1.0' },
    layers: [{ mediaType: KBPF_BYTECODE, bytes: new TextEncoder().encode(name), title: name + '.bpf.o' }],
  });
  await store.tag(name + ':1.0', 'shared:latest');
}
`;

test('concurrent writers in different processes do not lose or corrupt tags', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const root = join(dir, 'store');
  const workers = 6;
  const count = 8;
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) =>
      run(process.execPath, ['--input-type=module', '-e', WORKER, root, String(w), String(count)], {
        env: { ...process.env, KBPF_PACKAGE_MODULE: packageModule },
      }),
    ),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);

  const store = new LayoutStore(root);
  const index = JSON.parse(await readFile(store.indexPath, 'utf8')) as ImageIndex;
  assert.equal(index.manifests.length, workers * count + 1, 'every tag, and shared:latest exactly once');
  const names = (await store.list()).map((r) => r.name).sort();
  for (let w = 0; w < workers; w++)
    for (let i = 0; i < count; i++) assert.ok(names.includes(`w${w}-${i}`), `w${w}-${i}`);
  const shared = await store.resolve('shared:latest');
  assert.ok(shared.config.name.startsWith('w'));
  assert.deepEqual(
    (await readdir(root)).filter((f) => f.includes('lock') || f.includes('.tmp-')),
    [],
  );
});

test('a lock left by a dead process is broken at once', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = new LayoutStore(join(dir, 'store'), { lock: { timeoutMs: 2000 } });
  await store.init();
  // A pid that certainly no longer runs: a child that has exited.
  const child = spawn(process.execPath, ['-e', '0']);
  const deadPid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  const { readlink } = await import('node:fs/promises');
  const pidns = await readlink('/proc/self/ns/pid').catch(() => '');
  await writeFile(
    join(store.root, 'index.json.lock'),
    JSON.stringify({ pid: deadPid, host: hostname(), pidns, nonce: 'dead', created: Date.now() }),
  );
  const started = Date.now();
  await store.putPackage(samplePackage());
  assert.ok(Date.now() - started < 1500, 'did not wait for the timeout');
  assert.equal((await store.resolve('opensnoop:1.0')).tag, '1.0');
});

test('a lock older than staleMs is broken even if its pid is alive', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = new LayoutStore(join(dir, 'store'), { lock: { timeoutMs: 3000, staleMs: 500 } });
  await store.init();
  const lockPath = join(store.root, 'index.json.lock');
  await writeFile(
    lockPath,
    JSON.stringify({ pid: 1, host: 'elsewhere', pidns: '', nonce: 'old', created: Date.now() - 10_000 }),
  );
  await store.putPackage(samplePackage());
  // Garbage content: judged by the file's age.
  await writeFile(lockPath, '');
  const old = new Date(Date.now() - 10_000);
  await utimes(lockPath, old, old);
  await store.untag('opensnoop:1.0');
});

test('a live lock makes writers wait, then fail with a message naming the holder', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const store = new LayoutStore(join(dir, 'store'), { lock: { timeoutMs: 300 } });
  await store.init();
  const held = await FileLock.acquire(join(store.root, 'index.json.lock'));
  try {
    await assert.rejects(store.putPackage(samplePackage()), (err: unknown) => {
      assert.ok(err instanceof PackageError);
      assert.equal(err.code, 'LOCK_TIMEOUT');
      assert.match(
        err.message,
        new RegExp(`timed out after 300 ms waiting for lock .*index\\.json\\.lock, held by pid ${process.pid} on `),
      );
      return true;
    });
  } finally {
    await held.release();
  }
  // Released: the writer now succeeds, and a waiting writer gets through once the holder lets go.
  const again = await FileLock.acquire(join(store.root, 'index.json.lock'));
  setTimeout(() => void again.release(), 100);
  const slow = new LayoutStore(store.root, { lock: { timeoutMs: 5000 } });
  await slow.putPackage(samplePackage());
  assert.equal((await slow.list()).length, 1);
});

test('assertHeld notices a lock that was taken over', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const path = join(dir, 'x.lock');
  const lock = await FileLock.acquire(path);
  await lock.assertHeld();
  await writeFile(path, JSON.stringify({ pid: 1, host: 'h', pidns: '', nonce: 'other', created: Date.now() }));
  await assert.rejects(lock.assertHeld(), /was taken over by another process/);
  await lock.release();
  assert.match(await readFile(path, 'utf8'), /"other"/, 'release does not remove a lock it no longer owns');
});
