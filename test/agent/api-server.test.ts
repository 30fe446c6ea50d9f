// The agent's API over a unix socket, against a fake agent: routes, status codes, errors, logs
// (plain and followed), metrics, the 0600 socket (a non-root user is refused), stale sockets.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient, ApiError } from '../../src/agent/api-client.js';
import { startApiServer } from '../../src/agent/api-server.js';
import { KbpfError, Refused } from '../../src/errors.js';
import { tempDir } from '../../testbed/kernel.js';
import { FakeAgent } from '../cli/fake-agent.js';

interface Fixture {
  dir: string;
  socket: string;
  agent: FakeAgent;
  client: ApiClient;
  close(): Promise<void>;
}

async function fixture(t: { after(fn: () => Promise<void> | void): void }): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-api-'));
  const socket = join(dir, 'agent.sock');
  const agent = new FakeAgent();
  const server = await startApiServer(agent, socket);
  const f = { dir, socket, agent, client: new ApiClient(socket), close: () => server.close() };
  t.after(async () => {
    await server.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return f;
}

/** A raw request: status, headers and body text. */
function raw(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent: false,
        socketPath,
        method,
        path,
        headers: body !== undefined ? { 'Content-Type': 'application/json' } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function status(socket: string, method: string, path: string, body?: string): Promise<[number, unknown]> {
  const r = await raw(socket, method, path, body);
  let v: unknown = r.text;
  try {
    v = JSON.parse(r.text);
  } catch {
    // text
  }
  return [r.status, v];
}

const NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];

function canDropPrivileges(): boolean {
  return process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;
}

/** Connects to `path` as user nobody; returns "connected" or the error code. */
function connectAsNobody(path: string): string {
  const script = `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',(e)=>console.log(e.code))`;
  const r = spawnSync('setpriv', [...NOBODY, process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
  return (r.stdout || r.stderr).trim();
}

test('the socket is created with mode 0600 and removed on close', async (t) => {
  const f = await fixture(t);
  const st = statSync(f.socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await f.client.version()).api, 'v1');
  await f.close();
  assert.equal(existsSync(f.socket), false);
});

test('a non-root user cannot connect to the 0600 socket (EACCES)', async (t) => {
  if (!canDropPrivileges()) {
    t.skip('needs root and setpriv');
    return;
  }
  const f = await fixture(t);
  chmodSync(f.dir, 0o755); // only the socket's own mode stands in the way
  // control: the same user reaches a world-writable socket in the same directory
  const open = join(f.dir, 'open.sock');
  const plain: Server = createServer((s) => s.end());
  await new Promise<void>((r) => plain.listen(open, r));
  chmodSync(open, 0o666);
  try {
    assert.equal(connectAsNobody(open), 'connected');
    assert.equal(connectAsNobody(f.socket), 'EACCES');
    // and the client says so clearly
    const clientJs = fileURLToPath(new URL('../../src/agent/api-client.js', import.meta.url));
    const script = `import(${JSON.stringify(clientJs)}).then(async (m) => { try { await new m.ApiClient(${JSON.stringify(f.socket)}).list(); console.log('no error'); } catch (e) { console.log(e.message); } })`;
    const r = spawnSync('setpriv', [...NOBODY, process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
    assert.match(r.stdout, /permission denied on the kbpf agent socket .*agent\.sock/);
  } finally {
    await new Promise<void>((r) => plain.close(() => r()));
  }
});

test('instances: run, list, inspect, stop, start, upgrade, rollback, history, rm', async (t) => {
  const { socket, client, agent } = await fixture(t);
  assert.deepEqual(await client.list(), []);

  let [code, body] = await status(
    socket,
    'POST',
    '/v1/instances',
    JSON.stringify({
      image: 'opensnoop:1.0.0',
      name: 'snoop',
      config: { target_pid: '42' },
      attach: { cgroup: '/sys/fs/cgroup' },
    }),
  );
  assert.equal(code, 201);
  assert.equal((body as { name: string }).name, 'snoop');
  assert.deepEqual(agent.calls.at(-1), {
    verb: 'run',
    args: [
      { image: 'opensnoop:1.0.0', name: 'snoop', config: { target_pid: '42' }, attach: { cgroup: '/sys/fs/cgroup' } },
    ],
  });

  [code, body] = await status(
    socket,
    'POST',
    '/v1/instances',
    JSON.stringify({ image: 'opensnoop:1.0.0', name: 'snoop' }),
  );
  assert.equal(code, 409);
  assert.match((body as { error: string }).error, /already exists/);

  assert.equal((await client.list()).length, 1);
  assert.equal((await client.inspect('snoop')).phase, 'running');
  assert.equal((await client.stop('snoop')).phase, 'stopped');
  assert.equal((await client.start('snoop')).phase, 'running');
  const up = await client.upgrade('snoop', { image: 'opensnoop:2.0.0' });
  assert.equal(up.revision, 2);
  const rb = await client.rollback('snoop');
  assert.equal(rb.revision, 3);
  assert.equal(rb.image, 'opensnoop:1.0.0');
  assert.equal((await client.rollback('snoop', { toRevision: 2 })).image, 'opensnoop:2.0.0');
  assert.deepEqual(agent.calls.at(-1), { verb: 'rollback', args: ['snoop', { toRevision: 2 }] });
  assert.deepEqual(
    (await client.history('snoop')).map((r) => r.cause),
    ['run', 'upgrade', 'rollback', 'rollback'],
  );

  [code, body] = await status(socket, 'DELETE', '/v1/instances/snoop');
  assert.equal(code, 409);
  assert.match((body as { error: string }).error, /running: stop it first/);
  [code, body] = await status(socket, 'DELETE', '/v1/instances/snoop?force=1');
  assert.equal(code, 200);
  assert.deepEqual(body, { removed: 'snoop' });
  await assert.rejects(
    client.inspect('snoop'),
    (e: ApiError) => e.status === 404 && /no instance named "snoop"/.test(e.message),
  );
});

test('status codes of refusals: 400 for bad requests, 404, 405, 500 with the message kept', async (t) => {
  const { socket, agent } = await fixture(t);
  const cases: [string, string, string | undefined, number, RegExp][] = [
    ['POST', '/v1/instances', '{not json', 400, /not JSON/],
    ['POST', '/v1/instances', '[]', 400, /JSON object/],
    ['POST', '/v1/instances', '{}', 400, /"image" is required/],
    ['POST', '/v1/instances', '{"image": 5}', 400, /"image" must be a non-empty string/],
    ['POST', '/v1/instances', '{"image": "opensnoop:1.0.0", "config": [1]}', 400, /"config" must be a JSON object/],
    [
      'POST',
      '/v1/instances',
      '{"image": "opensnoop:1.0.0", "attach": {"ifname": "lo"}}',
      400,
      /unknown attach field "ifname"/,
    ],
    [
      'POST',
      '/v1/instances',
      '{"image": "opensnoop:1.0.0", "config": {"nope": "1"}}',
      400,
      /unknown config variable "nope"/,
    ],
    ['POST', '/v1/instances', '{"image": "nothere:1"}', 404, /no package nothere:1/],
    ['GET', '/v1/instances/ghost', undefined, 404, /no instance named "ghost"/],
    ['POST', '/v1/instances/ghost/stop', undefined, 404, /no instance/],
    ['GET', '/v1/instances/ghost/logs', undefined, 404, /no instance/],
    ['POST', '/v1/instances/ghost/rollback', '{"toRevision": "two"}', 400, /toRevision/],
    ['GET', '/v1/nothing', undefined, 404, /no such endpoint/],
    ['GET', '/v2/instances', undefined, 404, /under \/v1/],
    ['GET', '/v1/instances/a/b/c/d', undefined, 404, /no such endpoint/],
    ['PUT', '/v1/instances', '{}', 405, /method not allowed/],
    ['GET', '/v1/instances/x/stop', undefined, 405, /allowed: POST/],
  ];
  for (const [method, path, body, want, re] of cases) {
    const [code, res] = await status(socket, method, path, body);
    assert.equal(code, want, `${method} ${path} ${body ?? ''}: ${JSON.stringify(res)}`);
    assert.match((res as { error: string }).error, re, `${method} ${path}`);
  }
  const r = await raw(socket, 'PUT', '/v1/instances', '{}');
  assert.equal(r.headers.allow, 'GET, POST');

  agent.failNext = new Error('the kernel said no: EPERM');
  let [code, res] = await status(socket, 'GET', '/v1/instances');
  assert.equal(code, 500);
  assert.deepEqual(res, { error: 'the kernel said no: EPERM' });

  agent.failNext = new KbpfError(Refused, 'program handle_openat: verifier refused it', {
    details: ['R1 invalid mem access', 'processed 12 insns'],
  });
  [code, res] = await status(socket, 'GET', '/v1/instances');
  assert.equal(code, 422);
  assert.deepEqual(res, {
    error: 'program handle_openat: verifier refused it',
    kind: 'Refused',
    details: ['R1 invalid mem access', 'processed 12 insns'],
  });

  const big = JSON.stringify({ image: 'x'.repeat(2 * 1024 * 1024) });
  [code, res] = await status(socket, 'POST', '/v1/instances', big);
  assert.equal(code, 413);
  assert.match((res as { error: string }).error, /larger than/);
});

test('maps, images, doctor, version', async (t) => {
  const { socket, client, agent } = await fixture(t);
  await client.run({ image: 'opensnoop:1.0.0', name: 'm' });
  assert.deepEqual(
    (await client.maps('m')).map((m) => m.name),
    ['counts', 'events'],
  );
  assert.deepEqual(await client.maps('m', 'counts'), [
    {
      name: 'counts',
      type: 'hash',
      entries: [
        [1, 10],
        [2, 20],
      ],
    },
  ]);
  await assert.rejects(client.maps('m', 'nope'), (e: ApiError) => e.status === 404);

  assert.equal((await client.packages()).length, 2);
  const img = await client.inspectPackage('opensnoop:1.0.0');
  assert.equal(img.spec.name, 'opensnoop');
  // a reference with a registry and a path, encoded or not
  await assert.rejects(
    client.inspectPackage('localhost:5000/tools/opensnoop:1.0.0'),
    (e: ApiError) => e.status === 404,
  );
  assert.equal(agent.calls.at(-1)!.args[0], 'localhost:5000/tools/opensnoop:1.0.0');
  await status(socket, 'GET', '/v1/images/localhost:5000/tools/opensnoop:1.0.0');
  assert.equal(agent.calls.at(-1)!.args[0], 'localhost:5000/tools/opensnoop:1.0.0');

  await assert.rejects(
    client.removePackage('opensnoop:1.0.0'),
    (e: ApiError) => e.status === 409 && /used by instance\(s\) m/.test(e.message),
  );
  assert.deepEqual(await client.removePackage('opensnoop:1.0.0', { force: true }), {
    removed: ['opensnoop:1.0.0'],
    instancesRemoved: ['m'],
    blobsRemoved: 0,
    freedBytes: 0,
  });

  const d = await client.doctor();
  assert.equal(d.kernel, '6.1.0-test');
  const v = await client.version();
  assert.equal(v.api, 'v1');
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

test('GET /metrics: Prometheus text 0.0.4 (and promtool accepts it)', async (t) => {
  const { socket, client } = await fixture(t);
  await client.run({ image: 'opensnoop:1.0.0', name: 'm' });
  const r = await raw(socket, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(r.text, /^kbpf_instances\{phase="running"\} 1$/m);
  assert.match(r.text, /^kbpf_program_run_count_total\{instance="m",program="handle_openat"\} 1234$/m);
  assert.match(r.text, /^kbpf_program_run_time_seconds_total\{instance="m",program="handle_openat"\} 5\.000000123$/m);
  assert.equal(await client.metrics(), r.text);
  if (spawnSync('promtool', ['--version']).status === 0) {
    const p = spawnSync('promtool', ['check', 'metrics'], { input: r.text, encoding: 'utf8' });
    assert.equal(p.status, 0, p.stdout + p.stderr);
  }
});

test('logs: NDJSON with tail and since; follow streams new records and ends on rm', async (t) => {
  const { socket, client, agent } = await fixture(t);
  await client.run({ image: 'opensnoop:1.0.0', name: 'l' });
  for (let i = 0; i < 5; i++)
    agent.logs.append('l', { source: 'events', event: { pid: i, comm: 'cat', big: 2n ** 63n } });

  const r = await raw(socket, 'GET', '/v1/instances/l/logs');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/x-ndjson; charset=utf-8');
  const lines = r.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.event.pid),
    [0, 1, 2, 3, 4],
  );
  assert.equal(lines[0].event.big, '9223372036854775808');

  const tail: number[] = [];
  for await (const rec of client.logs('l', { tail: 2 })) tail.push((rec.event as { pid: number }).pid);
  assert.deepEqual(tail, [3, 4]);
  let n = 0;
  for await (const _ of client.logs('l', { since: '1h' })) n++;
  assert.equal(n, 5);
  for await (const _ of client.logs('l', { since: new Date(Date.now() + 3_600_000).toISOString() }))
    assert.fail('nothing is that new');
  const [code, res] = await status(socket, 'GET', '/v1/instances/l/logs?since=yesterday-ish');
  assert.equal(code, 400);
  assert.match((res as { error: string }).error, /since/);
  assert.equal((await status(socket, 'GET', '/v1/instances/l/logs?tail=-1'))[0], 400);

  // follow: the existing tail, then what comes, until the instance is removed
  const got: number[] = [];
  const following = (async () => {
    for await (const rec of client.logs('l', { follow: true, tail: 1 })) got.push((rec.event as { pid: number }).pid);
  })();
  await sleep(100);
  for (let i = 5; i < 8; i++) agent.logs.append('l', { source: 'events', event: { pid: i } });
  const deadline = Date.now() + 3000;
  while (got.length < 4 && Date.now() < deadline) await sleep(20);
  assert.deepEqual(got, [4, 5, 6, 7]);
  await client.remove('l', { force: true });
  await following; // the stream ends
});

test('a client that goes away ends its follow; close() ends open streams', async (t) => {
  const f = await fixture(t);
  await f.client.run({ image: 'opensnoop:1.0.0', name: 'l' });
  const ac = new AbortController();
  const got: unknown[] = [];
  const p = (async () => {
    for await (const r of f.client.logs('l', { follow: true }, ac.signal)) got.push(r);
  })();
  await sleep(50);
  f.agent.logs.append('l', { x: 1 });
  await sleep(100);
  ac.abort();
  await p;
  assert.equal(got.length, 1);

  const p2 = (async () => {
    const out: unknown[] = [];
    for await (const r of f.client.logs('l', { follow: true })) out.push(r);
    return out;
  })();
  await sleep(50);
  const t0 = Date.now();
  await f.close();
  assert.equal((await p2).length, 1);
  assert.ok(Date.now() - t0 < 1500, 'close did not wait for the stream');
});

test('stale sockets: removed when nothing answers; refused when an agent answers or the path is not a socket', async (t) => {
  const dir = tempDir(t, 'kbpf-stale-');
  const agent = new FakeAgent();
  t.after(() => agent.close());
  const sock = join(dir, 'agent.sock');

  // a socket file whose listener is gone: a process that listened on it was killed with SIGKILL
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(sock));
  await assert.rejects(new ApiClient(sock).list(), (e: ApiError) =>
    /cannot reach the kbpf agent at .*: is it running\? \(start it with: kbpf agent\)/.test(e.message),
  );

  const s1 = await startApiServer(agent, sock);
  assert.equal(statSync(sock).mode & 0o777, 0o600);
  await assert.rejects(startApiServer(agent, sock), /another kbpf agent is already listening on/);
  assert.ok((await new ApiClient(sock).version()).version, 'the first one still serves');
  await s1.close();

  const file = join(dir, 'file');
  closeSync(openSync(file, 'w'));
  await assert.rejects(startApiServer(agent, file), /exists and is not a socket/);
  assert.ok(existsSync(file));

  // missing parent directories are created
  const deep = join(dir, 'a', 'b', 'agent.sock');
  const s2 = await startApiServer(agent, deep);
  await s2.close();
});

test('the client explains a missing agent', async () => {
  const c = new ApiClient('/nonexistent/kbpf/agent.sock');
  await assert.rejects(
    c.list(),
    (e: ApiError) =>
      e instanceof ApiError &&
      e.message ===
        'cannot reach the kbpf agent at /nonexistent/kbpf/agent.sock: is it running? (start it with: kbpf agent)',
  );
});
