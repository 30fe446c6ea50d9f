// The agent's records from outside: instance names that try to leave their directory (at the
// API, in the state and pin stores), a record of another name, a malformed record (skipped and
// reported; ps, metrics and the other instances go on), the pid lock held across PID
// namespaces (flock), and adoption after a restart when the package can no longer be read.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from '../../src/agent/agent.js';
import { startApiServer } from '../../src/agent/api-server.js';
import { PidLock } from '../../src/agent/pid-lock.js';
import { InstancePins } from '../../src/agent/pins.js';
import { StateStore } from '../../src/agent/state-store.js';
import { Conflict, Invalid, isKind } from '../../src/errors.js';
import { EXAMPLES, testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const RECORD = (name: string) => ({
  name,
  desired: 'stopped',
  current: 1,
  createdAt: '2025-01-01T00:00:00Z',
  revisions: [
    {
      revision: 1,
      image: 'x:1',
      digest: `sha256:${'0'.repeat(64)}`,
      config: {},
      attach: {},
      createdAt: '2025-01-01T00:00:00Z',
      cause: 'run',
    },
  ],
});

test('the state store refuses names that leave its directory, and records of another name', (t) => {
  const dir = scratch(t);
  const store = new StateStore(join(dir, 'state', 'instances'));
  mkdirSync(join(dir, 'srv', 'data'), { recursive: true });
  writeFileSync(join(dir, 'srv', 'data.json'), JSON.stringify(RECORD('data')));
  const evil = '../../srv/data';
  assert.throws(
    () => store.get(evil),
    (e: unknown) => isKind(e, Invalid),
  );
  assert.throws(
    () => store.delete(evil),
    (e: unknown) => isKind(e, Invalid),
  );
  assert.throws(
    () => store.save({ ...RECORD(evil), name: evil } as never),
    (e: unknown) => isKind(e, Invalid),
  );
  assert.ok(existsSync(join(dir, 'srv', 'data.json')), 'nothing outside was removed');

  // a record file whose record names another instance, and malformed ones: skipped, reported
  writeFileSync(join(store.dir, 'a.json'), JSON.stringify(RECORD('b')));
  writeFileSync(join(store.dir, 'bad.json'), JSON.stringify({ name: 'bad' }));
  writeFileSync(join(store.dir, 'torn.json'), '{"name": "torn", "desi');
  writeFileSync(join(store.dir, 'good.json'), JSON.stringify(RECORD('good')));
  assert.deepEqual(
    store.list().map((r) => r.name),
    ['good'],
  );
  assert.deepEqual(store.skipped.map((s) => [s.file.split('/').pop(), s.reason.split(':')[0]]).sort(), [
    ['a.json', 'it names instance "b", not "a"'],
    ['bad.json', 'desired is neither running nor stopped'],
    ['torn.json', 'unreadable'],
  ]);
  assert.throws(() => store.get('a'), /names instance "b"/);
});

test('pins refuse names that leave the bpffs directory', (t) => {
  const dir = scratch(t);
  mkdirSync(join(dir, 'victim', 'rev-1'), { recursive: true });
  for (const evil of ['../victim', '..', '.', 'a/b', '']) {
    assert.throws(
      () => new InstancePins(join(dir, 'bpffs'), evil).removeAll(),
      (e: unknown) => isKind(e, Invalid),
      evil,
    );
  }
  assert.ok(existsSync(join(dir, 'victim', 'rev-1')));
});

function raw(socketPath: string, method: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ agent: false, socketPath, method, path }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('DELETE /v1/instances/..%2F..%2F…?force=1 is refused at the API; nothing outside is read or removed', async (t) => {
  const ta = await testAgent(t);
  const socket = join(ta.paths.stateDir, 'api.sock');
  const server = await startApiServer(ta.agent, socket);
  t.after(() => server.close());
  // a victim beside the state directory: STATE/instances/../../victim-XXX(.json)
  const victim = mkdtempSync(join(tmpdir(), 'kbpf-victim-'));
  t.after(() => rmSync(victim, { recursive: true, force: true }));
  writeFileSync(`${victim}.json`, JSON.stringify(RECORD('victim')));
  t.after(() => rmSync(`${victim}.json`, { force: true }));
  const rel = `../../${victim.split('/').pop()}`;
  for (const [method, sub] of [
    ['DELETE', '?force=1'],
    ['GET', ''],
    ['POST', '/stop'],
    ['GET', '/logs'],
  ] as const) {
    const r = await raw(socket, method, `/v1/instances/${encodeURIComponent(rel)}${sub}`);
    assert.equal(r.status, 400, `${method} ${sub}: ${r.text}`);
    assert.match(JSON.parse(r.text).error, /invalid instance name/);
    assert.equal(JSON.parse(r.text).kind, 'Invalid');
  }
  assert.ok(existsSync(victim) && existsSync(`${victim}.json`), 'the victim is untouched');
  const run = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ agent: false, socketPath: socket, method: 'POST', path: '/v1/instances' }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ image: 'x:1', name: '../x' }));
  });
  assert.equal(run.status, 400, run.text);
});

test('a malformed state record is skipped and reported; the agent starts, ps and metrics work', async (t) => {
  const ta = await testAgent(t);
  await ta.agent.close();
  writeFileSync(join(ta.paths.instancesDir, 'broken.json'), JSON.stringify({ name: 'broken', revisions: 7 }));
  writeFileSync(join(ta.paths.instancesDir, 'ok.json'), JSON.stringify(RECORD('ok')));
  const logs: string[] = [];
  ta.agent = new Agent(ta.paths, { log: (m) => logs.push(m) });
  await ta.agent.start();
  assert.deepEqual(
    ta.agent.list().map((s) => s.name),
    ['ok'],
  );
  assert.equal(ta.agent.metricsSnapshot().instances.length, 1);
  assert.ok(
    logs.some((l) => /skipping state file .*broken\.json: desired is neither running nor stopped/.test(l)),
    logs.join('\n'),
  );
});

const PID_LOCK = fileURLToPath(new URL('../../src/agent/pid-lock.js', import.meta.url));

test('the pid lock is flock: a holder whose pid names nobody here (another PID namespace) still holds it', async (t) => {
  const dir = scratch(t);
  const path = join(dir, 'agent.pid');
  const holder = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { PidLock } = await import(${JSON.stringify(PID_LOCK)}); new PidLock(${JSON.stringify(path)}).acquire(); process.stdout.write('held\\n'); process.stdin.resume();`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.after(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
  });
  assert.equal(readFileSync(path, 'utf8').trim(), String(holder.pid));
  // what a holder in another PID namespace writes: its own pid, which names no process here
  const gone = spawnSync(process.execPath, ['-e', '0']).pid;
  writeFileSync(path, `${gone}\n`);
  assert.throws(
    () => new PidLock(path).acquire(),
    (e: unknown) => isKind(e, Conflict) && new RegExp(`pid ${gone}`).test(String(e)),
  );
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const lock = new PidLock(path);
  lock.acquire(); // the kernel dropped the dead holder's lock
  assert.equal(readFileSync(path, 'utf8').trim(), String(process.pid));
  assert.throws(
    () => new PidLock(path).acquire(),
    (e: unknown) => isKind(e, Conflict),
    'same process, second agent',
  );
  lock.release();
  new PidLock(path).acquire();
});

test('after a restart with an unreadable package, attached programs are adopted: running, package unreadable', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(join(EXAMPLES, 'opensnoop'));
  const st = await ta.agent.run({ image: ref, name: 'kept', config: { target_pid: String(process.pid) } });
  await ta.agent.close();
  // corrupt the object layer's blob in the store
  const pkg = await ta.agent.store.resolve(ref);
  const layer = pkg.manifest.layers.find((l) => l.annotations?.['org.opencontainers.image.title']?.endsWith('.o'))!;
  writeFileSync(ta.agent.store.blobPath(layer.digest), 'not the object any more');
  const links = kernelIds().link;
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  const again = ta.agent.inspect('kept');
  assert.equal(again.phase, 'running');
  assert.match(again.message ?? '', /^running, package unreadable \(.*sha256:/);
  assert.deepEqual(
    again.programs.map((p) => [p.name, p.progId, p.linkId]),
    st.programs.map((p) => [p.name, p.progId, p.linkId]),
  );
  assert.deepEqual(kernelIds().link, links, 'kept attached, nothing attached twice');
  assert.equal(ta.agent.list().length, 1);
  assert.equal(ta.agent.metricsSnapshot().instances[0]?.phase, 'running');
  await ta.agent.remove('kept', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
