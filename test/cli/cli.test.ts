// The kbpf CLI: every verb's --help, argument checks, aliases, output (tables and -o json), error
// reporting, against the API server backed by a fake agent; and bin/kbpf.js as a real process.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../../src/agent/api-server.js';
import { parseSinceArg } from '../../src/cli/options.js';
import { buildProgram, runCli } from '../../src/cli/program.js';
import { FakeAgent } from './fake-agent.js';

const BIN = fileURLToPath(new URL('../../../bin/kbpf.js', import.meta.url));

interface Run {
  code: number;
  out: string;
  err: string;
}

async function kbpf(args: string[], env: NodeJS.ProcessEnv = {}, signal?: AbortSignal): Promise<Run> {
  let out = '';
  let err = '';
  const io = {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    env,
    ...(signal ? { signal } : {}),
  };
  const code = await runCli(args, io);
  return { code, out, err };
}

interface Fixture {
  agent: FakeAgent;
  socket: string;
  /** runs kbpf with --socket pointing at the fake agent */
  k(...args: string[]): Promise<Run>;
}

async function fixture(t: { after(fn: () => Promise<void> | void): void }): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-cli-'));
  const socket = join(dir, 'agent.sock');
  const agent = new FakeAgent();
  const server = await startApiServer(agent, socket);
  t.after(async () => {
    await server.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { agent, socket, k: (...args) => kbpf(['--socket', socket, ...args]) };
}

/** verb → options its --help must list */
const VERBS: Record<string, string[]> = {
  agent: ['--bpffs-dir', '--metrics-address', '--state-dir', '--socket'],
  build: ['--tag', '--quiet', '--output'],
  push: ['--insecure', '--username', '--password'],
  pull: ['--insecure', '--username', '--password', '--tag'],
  run: ['--name', '--set', '--cgroup', '--iface', '--attach', '--output'],
  ps: ['--all', '--quiet', '--output'],
  logs: ['--follow', '--since', '--tail', '--output'],
  flows: [
    '--pod',
    '--namespace',
    '--from-ip',
    '--to-ip',
    '--from-pod',
    '--to-pod',
    '--port',
    '--service',
    '--verdict',
    '--protocol',
    '--tcp-flags',
    '--not',
    '--follow',
    '--last',
    '--output',
    '--metrics-listen',
  ],
  inspect: ['--type'],
  stop: [],
  start: [],
  rm: ['--force'],
  clear: ['--force'],
  upgrade: ['--set', '--cgroup', '--iface', '--attach', '--output'],
  rollback: ['--to-revision', '--output'],
  history: ['--output'],
  maps: ['--output'],
  images: ['--quiet', '--output'],
  rmi: ['--force'],
  doctor: ['--output'],
  version: ['--output'],
};

const ALIASES: Record<string, string> = { list: 'ps', log: 'logs', delete: 'rm', packages: 'images', show: 'inspect' };

test('every verb has --help (exit 0) listing its options, and the global ones', async () => {
  for (const [verb, options] of Object.entries(VERBS)) {
    const r = await kbpf([verb, '--help']);
    assert.equal(r.code, 0, `${verb} --help: ${r.err}`);
    assert.match(r.out, new RegExp(`^Usage: kbpf ${verb}\\b`), verb);
    for (const o of [...options, '--help', '--state-dir', '--socket'])
      assert.ok(r.out.includes(o), `${verb} --help lists ${o}`);
    assert.equal(r.err, '');
  }
  const top = await kbpf(['--help']);
  assert.equal(top.code, 0);
  for (const verb of Object.keys(VERBS))
    assert.match(top.out, new RegExp(`^  ${verb}\\b`, 'm'), `kbpf --help lists ${verb}`);
  assert.equal((await kbpf(['help', 'run'])).code, 0);
  const v = await kbpf(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.out, /^\d+\.\d+\.\d+/);
});

test("the prototype's names are aliases", async (t) => {
  for (const [alias, verb] of Object.entries(ALIASES)) {
    const r = await kbpf([alias, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`^Usage: kbpf ${verb}\\|${alias}\\b`), alias);
  }
  const program = buildProgram({ stdout: () => {}, stderr: () => {}, env: {} });
  for (const [alias, verb] of Object.entries(ALIASES)) {
    assert.equal(program.commands.find((c) => c.aliases().includes(alias))?.name(), verb);
  }
  // and they do the same thing
  const f = await fixture(t);
  await f.k('run', '--name', 'a', 'opensnoop:1.0.0');
  assert.deepEqual((await f.k('list', '-q')).out, 'a\n');
  assert.equal((await f.k('show', 'a')).code, 0);
  assert.equal((await f.k('packages', '-q')).out, 'opensnoop:1.0.0\nopensnoop:2.0.0\n');
  assert.equal((await f.k('log', 'a')).code, 0);
  assert.equal((await f.k('delete', '-f', 'a')).out, 'a\n');
  assert.equal(f.agent.instances.size, 0);
});

test('refusals of malformed arguments: exit 1, one "kbpf: " line, nothing sent to the agent', async (t) => {
  const f = await fixture(t);
  const bad: [string[], RegExp][] = [
    [['run', '--set', 'target_pid', 'opensnoop:1.0.0'], /--set.*expected var=value \(got "target_pid"\)/],
    [['run', '--set', '=5', 'opensnoop:1.0.0'], /expected var=value/],
    [['run', '--set', '1pid=5', 'opensnoop:1.0.0'], /"1pid" is not a config variable name/],
    [['run', '--set', 'a-b=5', 'opensnoop:1.0.0'], /"a-b" is not a config variable name/],
    [['upgrade', '--set', 'x', 'a', 'opensnoop:2.0.0'], /expected var=value/],
    [['run', '--attach', 'tracepoint', 'opensnoop:1.0.0'], /expected program=target/],
    [['run', '--frobnicate', 'opensnoop:1.0.0'], /unknown option '--frobnicate'/],
    [['run'], /missing required argument 'image'/],
    [['ps', '-o', 'xml'], /argument 'xml' is invalid.*table, wide, json, yaml/],
    [['logs', '--tail', 'ten', 'a'], /--tail must be a non-negative integer/],
    [['logs', '--since', 'the dawn of time', 'a'], /expected a duration/],
    [['rollback', '--to-revision', '0', 'a'], /--to-revision must be a positive integer/],
    [['upgrade', 'a'], /missing required argument 'image'/],
    [['inspect', '--type', 'volume', 'a'], /argument 'volume' is invalid/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['pss'], /unknown command 'pss'[\s\S]*Did you mean ps\?/],
  ];
  const before = f.agent.calls.length;
  for (const [args, re] of bad) {
    const r = await f.k(...args);
    assert.equal(r.code, 1, `${args.join(' ')} should fail`);
    assert.match(r.err, /^kbpf: /, args.join(' '));
    assert.match(r.err, re, args.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    assert.equal(r.out, '');
  }
  assert.equal(f.agent.calls.length, before, 'the agent was not called');
});

test('run sends config and attach overrides; prints what was attached', async (t) => {
  const f = await fixture(t);
  const r = await f.k(
    'run',
    '--name',
    'snoop',
    '--set',
    'target_pid=42',
    '--set',
    'target_pid=43',
    '--cgroup',
    '/sys/fs/cgroup/app',
    '--iface',
    'eth0',
    '--attach',
    'handle_openat=syscalls/sys_enter_open',
    'opensnoop:1.0.0',
  );
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(f.agent.calls.at(-1), {
    verb: 'run',
    args: [
      {
        image: 'opensnoop:1.0.0',
        name: 'snoop',
        config: { target_pid: '43' },
        attach: { cgroup: '/sys/fs/cgroup/app', iface: 'eth0', programs: { handle_openat: 'syscalls/sys_enter_open' } },
      },
    ],
  });
  assert.match(r.out, /^snoop: running, opensnoop:1\.0\.0 \(sha256:111111111111\), revision 1$/m);
  assert.match(r.out, /handle_openat\s+tracepoint\s+tracepoint syscalls\/sys_enter_openat\s+42\s+7/);
  const j = await f.k('run', '-o', 'json', '--name', 'j', 'opensnoop:1.0.0');
  assert.equal(JSON.parse(j.out).name, 'j');
  // the agent's refusal is shown as it is
  const dup = await f.k('run', '--name', 'snoop', 'opensnoop:1.0.0');
  assert.equal(dup.code, 1);
  assert.equal(dup.err, 'kbpf: an instance named "snoop" already exists (remove it with: kbpf rm snoop)\n');
  const cfg = await f.k('run', '--set', 'nope=1', 'opensnoop:1.0.0');
  assert.equal(cfg.err, 'kbpf: unknown config variable "nope"; this package has: target_pid (u32)\n');
});

test('ps: aligned table, -a, -q, -o json', async (t) => {
  const f = await fixture(t);
  await f.k('run', '--name', 'first', 'opensnoop:1.0.0');
  await f.k('run', '--name', 'a-much-longer-name', 'opensnoop:2.0.0');
  await f.k('stop', 'first');
  let r = await f.k('ps');
  const lines = r.out.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^NAME\s+IMAGE\s+REV\s+STATUS\s+PROGRAMS\s+EVENTS\s+CREATED$/);
  assert.match(lines[1]!, /^a-much-longer-name {3}opensnoop:2\.0\.0 {3}1 {5}running /);
  r = await f.k('ps', '-a');
  const all = r.out.trimEnd().split('\n');
  assert.equal(all.length, 3);
  // columns line up: IMAGE starts at the same offset on every line
  const col = all[0]!.indexOf('IMAGE');
  for (const l of all.slice(1)) assert.match(l.slice(col), /^opensnoop:/);
  assert.match(all.find((l) => l.startsWith('first'))!, /stopped/);
  assert.equal((await f.k('ps', '-aq')).out, 'first\na-much-longer-name\n');
  const j = JSON.parse((await f.k('ps', '-a', '-o', 'json')).out) as { name: string }[];
  assert.deepEqual(
    j.map((s) => s.name),
    ['first', 'a-much-longer-name'],
  );
});

test('-o wide and -o yaml: more columns, and the same data as -o json', async (t) => {
  const YAML = (await import('yaml')).default;
  const f = await fixture(t);
  await f.k('run', '--name', 'snoop', '--set', 'target_pid=1', 'opensnoop:1.0.0');
  let r = await f.k('ps', '-o', 'wide');
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out,
    /^NAME\s+IMAGE\s+REV\s+STATUS\s+PROGRAMS\s+EVENTS\s+CREATED\s+DIGEST\s+PROG IDS\s+VARIANTS\s+MESSAGE$/m,
  );
  assert.match(r.out, /^snoop\s.*sha256:111111111111\s+handle_openat#42$/m);
  for (const args of [['ps'], ['history', 'snoop'], ['images'], ['maps', 'snoop'], ['doctor'], ['inspect', 'snoop']]) {
    const j = await f.k(...args, '-o', 'json');
    const y = await f.k(...args, '-o', 'yaml');
    assert.equal(y.code, 0, `${args.join(' ')}: ${y.err}`);
    assert.deepEqual(YAML.parse(y.out), JSON.parse(j.out), args.join(' '));
  }
  r = await f.k('run', '-o', 'yaml', '--name', 'y', 'opensnoop:1.0.0');
  assert.equal(YAML.parse(r.out).name, 'y');
});

test('logs: columns from the decoded event, -o json lines, --tail, --since, -f', async (t) => {
  const f = await fixture(t);
  await f.k('run', '--name', 'snoop', 'opensnoop:1.0.0');
  f.agent.logs.append('snoop', { source: 'events', event: { pid: 1, comm: 'cat', path: '/etc/passwd' } });
  f.agent.logs.append('snoop', { source: 'events', event: { pid: 22222, comm: 'bash', path: '/x' } });
  let r = await f.k('logs', 'snoop');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^TIME\s+PID\s+COMM\s+PATH$/);
  assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} {3}1 {7}cat {4}\/etc\/passwd$/);
  assert.match(lines[2]!, /^\d\d:\d\d:\d\d\.\d{3} {3}22222 {3}bash {3}\/x$/);
  r = await f.k('logs', '-o', 'json', '--tail', '1', 'snoop');
  const recs = r.out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(recs.length, 1);
  assert.deepEqual(recs[0].event, { pid: 22222, comm: 'bash', path: '/x' });
  assert.equal(recs[0].seq, 2);
  r = await f.k('logs', '--since', '1h', 'snoop');
  assert.equal(r.out.trimEnd().split('\n').length, 3);
  r = await f.k('logs', '--since', new Date(Date.now() + 60_000).toISOString(), 'snoop');
  assert.equal(r.out, '');
  assert.equal((await f.k('logs', 'ghost')).err, 'kbpf: no instance named "ghost" (see: kbpf ps)\n');

  // -f: prints what comes until interrupted
  const ac = new AbortController();
  let out = '';
  const running = runCli(['--socket', f.socket, 'logs', '-f', '--tail', '0', 'snoop'], {
    stdout: (s) => {
      out += s;
    },
    stderr: () => {},
    env: {},
    signal: ac.signal,
  });
  await sleep(100);
  f.agent.logs.append('snoop', { source: 'events', event: { pid: 3, comm: 'vi', path: '/tmp/a' } });
  const deadline = Date.now() + 3000;
  while (!out.includes('/tmp/a') && Date.now() < deadline) await sleep(20);
  ac.abort();
  assert.equal(await running, 0);
  assert.match(out, /^TIME {11}PID {3}COMM {3}PATH\n\S+ {3}3 {5}vi {5}\/tmp\/a\n$/);
});

test('inspect an instance or an image; stop, start, rm, clear', async (t) => {
  const f = await fixture(t);
  await f.k('run', '--name', 'a', 'opensnoop:1.0.0');
  await f.k('run', '--name', 'b', 'opensnoop:1.0.0');
  assert.equal(JSON.parse((await f.k('inspect', 'a')).out).name, 'a');
  assert.equal(JSON.parse((await f.k('inspect', 'opensnoop:1.0.0')).out).spec.name, 'opensnoop');
  assert.equal(
    JSON.parse((await f.k('inspect', '--type', 'image', 'opensnoop:2.0.0')).out).reference,
    'opensnoop:2.0.0',
  );
  assert.equal(JSON.parse((await f.k('inspect', 'a', 'b')).out).length, 2);
  const none = await f.k('inspect', 'nothing');
  assert.equal(none.code, 1);
  assert.equal(none.err, 'kbpf: no instance or package named "nothing" (see: kbpf ps -a, kbpf images)\n');

  assert.equal((await f.k('stop', 'a', 'b')).out, 'a: stopped\nb: stopped\n');
  assert.equal((await f.k('start', 'a')).out, 'a: running\n');
  // one of several fails: the others are done, the failure is reported, exit 1
  const rm = await f.k('rm', 'b', 'ghost', 'a');
  assert.equal(rm.code, 1);
  assert.equal(rm.out, 'b\n');
  assert.match(rm.err, /^kbpf: no instance named "ghost"/m);
  assert.match(rm.err, /^kbpf: instance a is running: stop it first, or remove it with rm -f$/m);
  assert.match(rm.err, /^kbpf: 2 of 3 failed$/m);

  await f.k('run', '--name', 'c', 'opensnoop:2.0.0');
  const refused = await f.k('clear');
  assert.equal(refused.code, 1);
  assert.match(
    refused.err,
    /^kbpf: clear removes all 2 instance\(s\) \(a, c\), running ones included; to do it: kbpf clear --force\n$/,
  );
  assert.equal(f.agent.instances.size, 2);
  const cleared = await f.k('clear', '--force');
  assert.equal(cleared.code, 0);
  assert.equal(cleared.out, 'a\nc\n');
  assert.equal(f.agent.instances.size, 0);
  assert.equal((await f.k('clear')).err, 'no instances\n');
});

test('upgrade, rollback, history, maps', async (t) => {
  const f = await fixture(t);
  await f.k('run', '--name', 'a', '--set', 'target_pid=1', 'opensnoop:1.0.0');
  let r = await f.k('upgrade', 'a', 'opensnoop:2.0.0');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(f.agent.calls.at(-1), { verb: 'upgrade', args: ['a', { image: 'opensnoop:2.0.0' }] });
  assert.match(r.out, /revision 2/);
  r = await f.k('upgrade', '--set', 'target_pid=7', '--iface', 'lo', 'a', 'opensnoop:2.0.0');
  assert.deepEqual(f.agent.calls.at(-1), {
    verb: 'upgrade',
    args: ['a', { image: 'opensnoop:2.0.0', config: { target_pid: '7' }, attach: { iface: 'lo' } }],
  });
  r = await f.k('rollback', 'a');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(f.agent.calls.at(-1), { verb: 'rollback', args: ['a', {}] });
  r = await f.k('rollback', '--to-revision', '1', 'a');
  assert.deepEqual(f.agent.calls.at(-1), { verb: 'rollback', args: ['a', { toRevision: 1 }] });
  r = await f.k('history', 'a');
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^REVISION\s+IMAGE\s+DIGEST\s+CAUSE\s+CREATED\s+CONFIG$/);
  assert.equal(lines.length, 6);
  assert.match(lines[1]!, /^1 +opensnoop:1\.0\.0 +sha256:111111111111 +run +just now +target_pid=1$/);
  assert.match(lines[5]!, /^5 \*/);
  assert.equal(JSON.parse((await f.k('history', '-o', 'json', 'a')).out).length, 5);

  r = await f.k('maps', 'a');
  assert.match(r.out, /^counts \(hash, 2 entries\)\n {2}KEY {3}VALUE\n {2}1 {5}10\n {2}2 {5}20\n/);
  assert.match(r.out, /^events \(ringbuf, 0 entries\)$/m);
  r = await f.k('maps', 'a', 'counts', '-o', 'json');
  assert.deepEqual(JSON.parse(r.out), [
    {
      name: 'counts',
      type: 'hash',
      entries: [
        [1, 10],
        [2, 20],
      ],
    },
  ]);
  assert.match((await f.k('maps', 'a', 'nope')).err, /^kbpf: instance a has no pinned map "nope"/);
});

test('images, rmi, doctor, version', async (t) => {
  const f = await fixture(t);
  let r = await f.k('images');
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^NAME\s+TAG\s+DIGEST\s+VERSION\s+SIZE\s+CREATED$/);
  assert.match(lines[1]!, /^opensnoop {3}1\.0\.0 {3}sha256:111111111111 {3}1\.0\.0 {5}12kB {3}just now$/);
  assert.equal(JSON.parse((await f.k('images', '-o', 'json')).out).length, 2);

  await f.k('run', '--name', 'u', 'opensnoop:1.0.0');
  r = await f.k('rmi', 'opensnoop:1.0.0');
  assert.equal(r.code, 1);
  assert.match(r.err, /used by instance\(s\) u: remove them first, or use rmi --force/);
  r = await f.k('rmi', '--force', 'opensnoop:1.0.0');
  assert.equal(r.out, 'removed instance u\nremoved opensnoop:1.0.0\n');

  r = await f.k('doctor');
  assert.match(r.out, /^kernel: 6\.1\.0-test$/m);
  assert.match(r.out, /^HOOK\s+SUPPORTED\s+DETAIL$/m);
  assert.match(r.out, /^tcx\s+no\s+needs 6\.6$/m);
  assert.match(r.out, /program types: 2 of 3; missing: lsm/);
  assert.equal(JSON.parse((await f.k('doctor', '-o', 'json')).out).btf, true);

  r = await f.k('version');
  assert.match(r.out, /^client: \d+\.\d+\.\d+/);
  assert.match(r.out, /^agent: \d+\.\d+\.\d+ \(API v1, /m);
  const j = JSON.parse((await f.k('version', '-o', 'json')).out);
  assert.equal(j.agent.api, 'v1');
});

test('no agent: a clear message and exit 1; the socket comes from --state-dir, --socket or the environment', async () => {
  let r = await kbpf(['--state-dir', '/nonexistent/kbpf', 'ps']);
  assert.equal(r.code, 1);
  assert.equal(
    r.err,
    'kbpf: cannot reach the kbpf agent at /nonexistent/kbpf/agent.sock: is it running? (start it with: kbpf agent)\n',
  );
  r = await kbpf(['ps'], { KBPF_STATE_DIR: '/nonexistent/s' });
  assert.match(r.err, /at \/nonexistent\/s\/agent\.sock:/);
  r = await kbpf(['ps'], { KBPF_STATE_DIR: '/nonexistent/s', KBPF_SOCKET: '/nonexistent/x.sock' });
  assert.match(r.err, /at \/nonexistent\/x\.sock:/);
  r = await kbpf(['ps', '--socket', '/nonexistent/y.sock'], { KBPF_SOCKET: '/nonexistent/x.sock' });
  assert.match(r.err, /at \/nonexistent\/y\.sock:/);
  r = await kbpf(['ps']);
  assert.match(r.err, /at \/var\/lib\/kbpf\/agent\.sock:/);
  // version still answers for the client
  r = await kbpf(['--socket', '/nonexistent/y.sock', 'version']);
  assert.equal(r.code, 0);
  assert.match(r.out, /^agent: not reachable: cannot reach the kbpf agent/m);
  // a stack trace only when asked for
  r = await kbpf(['--socket', '/nonexistent/y.sock', 'ps'], { KBPF_DEBUG: '1' });
  assert.match(r.err, /\n\s+at /);
});

test('build and push refuse clearly without touching the agent', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-build-'));
  try {
    let r = await kbpf(['--state-dir', dir, 'build', join(dir, 'nope')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^kbpf: .*nope: no such directory\n$/);
    r = await kbpf(['--state-dir', dir, 'build', dir]);
    assert.match(
      r.err,
      /^kbpf: .*no \*\.bpf\.c files and no \.c file with a SEC\("\.\.\."\) section: nothing to build[^\n]*\n$/,
    );
    r = await kbpf(['--state-dir', dir, 'push', 'opensnoop:1.0.0']);
    assert.equal(r.code, 1);
    assert.match(r.err, /^kbpf: push opensnoop:1\.0\.0: no registry in the reference/);
    r = await kbpf(['--state-dir', dir, 'push', '--username', 'u', 'opensnoop:1.0.0', 'localhost:5000/x:1']);
    assert.equal(r.err, 'kbpf: --username and --password go together\n');
    r = await kbpf(['--state-dir', dir, 'pull', 'localhost:5000/x:1'], { KBPF_REGISTRY_AUTH: 'nocolon' });
    assert.equal(r.err, 'kbpf: KBPF_REGISTRY_AUTH must be user:password\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--since accepts durations and times', () => {
  const now = Date.parse('2024-05-01T10:00:00Z');
  assert.equal(parseSinceArg('90s', now), '2024-05-01T09:58:30.000Z');
  assert.equal(parseSinceArg('2024-05-01T08:00:00+02:00', now), '2024-05-01T06:00:00.000Z');
  assert.throws(() => parseSinceArg('later', now), /expected a duration/);
});

test('bin/kbpf.js: help exits 0; errors are one line on stderr and exit 1', () => {
  let r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^Usage: kbpf /);
  r = spawnSync(process.execPath, [BIN, '--socket', '/nonexistent/z.sock', 'ps'], {
    encoding: 'utf8',
    env: { ...process.env, KBPF_DEBUG: '' },
  });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    'kbpf: cannot reach the kbpf agent at /nonexistent/z.sock: is it running? (start it with: kbpf agent)\n',
  );
  r = spawnSync(process.execPath, [BIN, 'run', '--set', 'oops', 'x:1'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /^kbpf: option '--set <var=value>' argument 'oops' is invalid\. expected var=value \(got "oops"\)\n$/,
  );
});

test('kbpf agent: serves the API on a 0600 socket, refuses a second agent, stops on SIGTERM leaving no socket', async (t) => {
  if (process.getuid?.() !== 0 || !existsSync('/sys/fs/bpf')) {
    t.skip('needs root and bpffs');
    return;
  }
  const state = mkdtempSync(join(tmpdir(), 'kbpf-agent-'));
  const bpffs = `/sys/fs/bpf/kbpf-clitest-${process.pid}`;
  t.after(() => {
    rmSync(state, { recursive: true, force: true });
    rmSync(bpffs, { recursive: true, force: true });
  });
  const child = spawn(process.execPath, [BIN, 'agent', '--state-dir', state, '--bpffs-dir', bpffs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 20_000;
  while (!log.includes('serving') && Date.now() < deadline) await sleep(50);
  assert.match(log, /kbpf agent: kbpf \S+ serving .*agent\.sock/);
  const sock = join(state, 'agent.sock');
  const r = await kbpf(['--state-dir', state, 'ps', '-a', '-o', 'json']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), []);
  const second = spawnSync(process.execPath, [BIN, 'agent', '--state-dir', state, '--bpffs-dir', bpffs], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(second.status, 1);
  assert.match(second.stderr, /kbpf: another kbpf agent is already listening on .*agent\.sock/);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, log);
  assert.match(log, /SIGTERM: stopping \(programs keep running\)/);
  assert.equal(existsSync(sock), false);
});

test('push and pull through a registry, with credentials from flags or KBPF_REGISTRY_AUTH', async (t) => {
  const { FakeRegistry } = await import('../package/fake-registry.js');
  const { samplePackage } = await import('../package/helpers.js');
  const { LayoutStore } = await import('../../src/package/layout-store.js');
  const reg = new FakeRegistry({ auth: { mode: 'basic', username: 'kbpf', password: 's3cret' } });
  await reg.start();
  const a = mkdtempSync(join(tmpdir(), 'kbpf-push-'));
  const b = mkdtempSync(join(tmpdir(), 'kbpf-pull-'));
  t.after(async () => {
    await reg.stop();
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  });
  const stored = await new LayoutStore(join(a, 'store')).putPackage(
    samplePackage('opensnoop', '1.0.0'),
    'opensnoop:1.0.0',
  );
  const remote = `${reg.host}/tools/opensnoop:1.0.0`;

  let r = await kbpf(['--state-dir', a, 'push', 'opensnoop:1.0.0', remote]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^kbpf: .*401/);
  r = await kbpf(['--state-dir', a, 'push', '--username', 'kbpf', '--password', 's3cret', 'opensnoop:1.0.0', remote]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `pushed ${remote}\ndigest: ${stored.digest}\n`);
  assert.match(r.err, /^pushed {2,}sha256:[0-9a-f]{12} opensnoop\.bpf\.o/m);

  r = await kbpf(['--state-dir', b, 'pull', '--tag', 'opensnoop:1.0.0', remote], { KBPF_REGISTRY_AUTH: 'kbpf:s3cret' });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^pulled opensnoop:1\.0\.0\ndigest: sha256:[0-9a-f]{64}\n$/);
  assert.equal((await new LayoutStore(join(b, 'store')).resolve('opensnoop:1.0.0')).digest, stored.digest);
});
