// Stacks as symbols, on the real kernel with our own programs: the kernel and user stacks of a
// small C binary's getppid calls (arrays of addresses and ids in a stack trace map) in events
// shown by `kbpf logs` and in `kbpf maps`' dumps; and an execsnoop-style argument list (NUL-
// separated strings with their size) shown whole.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../../src/agent/api-server.js';
import { runCli } from '../../src/cli/program.js';
import { testAgent } from '../../testbed/agent.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));
const TARGET = fileURLToPath(new URL('../../../test/fixtures/stack_target.c', import.meta.url));
const BIN = 'kbpf_stack_target';

/** The address of a kernel text symbol, from /proc/kallsyms read here (not by the symbolizer). */
function kallsym(name: string): bigint | undefined {
  const line = readFileSync('/proc/kallsyms', 'latin1')
    .split('\n')
    .find((l) => / [tT] /.test(l) && l.split(/\s+/)[2] === name);
  return line ? BigInt(`0x${line.split(' ')[0]}`) : undefined;
}

async function kbpf(socket: string, ...args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await runCli(['--socket', socket, ...args], {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    env: {},
  });
  assert.equal(code, 0, err);
  return out;
}

test('kernel and user stacks of a process show as symbols: events in kbpf logs, stack trace maps and stack ids in kbpf maps', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-stacks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, BIN);
  execFileSync('cc', ['-g', '-O0', '-o', bin, TARGET]);
  const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  const pid = child.pid!;

  const ta = await testAgent(t);
  const ref = await ta.build(PKG('stack_symbols'));
  const ev = (await ta.agent.inspectPackage(ref)).spec.events.find((e) => e.map === 'events')!;
  assert.deepEqual(ev.format?.kstack, { kind: 'stack', space: 'kernel', size: 'kstack_sz' });
  assert.deepEqual(ev.format?.ustack, { kind: 'stack', space: 'user', pid: 'pid', size: 'ustack_sz' });
  assert.deepEqual(ev.format?.kern_stack_id, { kind: 'stack-id', map: 'stacks', space: 'kernel' });
  assert.deepEqual(ev.format?.user_stack_id, { kind: 'stack-id', map: 'stacks', space: 'user', pid: 'pid' });

  await ta.agent.run({ image: ref, name: 'stk', config: { target_tgid: pid } });
  let events: Record<string, unknown>[] = [];
  for (let i = 0; i < 50 && events.length < 3; i++) {
    await sleep(100);
    events = ta.agent.logs.read('stk').map((r) => r.event as Record<string, unknown>);
  }
  assert.ok(events.length >= 3, `events of the target's getppid calls: ${events.length}`);
  const e = events.at(-1)!;
  assert.equal(e.pid, pid);
  assert.ok((e.kstack_sz as number) > 0 && (e.ustack_sz as number) > 0, JSON.stringify(e).slice(0, 300));

  // kbpf logs, through the API, as a user runs it
  const socket = join(dir, 'agent.sock');
  const server = await startApiServer(ta.agent, socket);
  t.after(() => server.close());
  const out = await kbpf(socket, 'logs', '--tail', '1', 'stk');
  assert.match(
    out,
    /kbpf_stack_leaf\+0x[0-9a-f]+ \(kbpf_stack_target\);kbpf_stack_caller\+0x[0-9a-f]+ \(kbpf_stack_target\);main\+0x/,
  );
  // a kernel frame names a symbol whose kallsyms address plus the offset is one of the stack's addresses
  const kframe = /(?:^|[\s;])(do_syscall_64|entry_SYSCALL_64[a-z_]*|x64_sys_call)\+0x([0-9a-f]+)/.exec(out);
  assert.ok(kframe, `a syscall entry symbol in the kernel stack:\n${out}`);
  const base = kallsym(kframe[1]!);
  assert.ok(base !== undefined, kframe[1]);
  const addrs = (e.kstack as unknown[]).map((a) => BigInt(a as number | string));
  const rows = ta.agent.logs.read('stk').map((r) => r.event as Record<string, unknown>);
  const all = new Set(rows.flatMap((r) => (r.kstack as unknown[]).map((a) => BigInt(a as number | string))));
  assert.ok(all.has(base + BigInt(`0x${kframe[2]}`)), `${kframe[0]} is ${addrs.map((a) => a.toString(16))}`);
  // the stack ids of the event resolve through the stack trace map the same way
  assert.match(out, /kbpf_stack_leaf\+0x[0-9a-f]+ \(kbpf_stack_target\);kbpf_stack_caller/);
  assert.doesNotMatch(out.split('\n')[1]!, /\b-1[04]\b/, 'no failed stack id');

  // kbpf maps: the stack trace map's stacks and the counts' stack ids as frames
  const [stacks] = ta.agent.maps('stk', 'stacks');
  const frames = stacks!.entries.map(([, v]) => v as string[]);
  assert.ok(frames.length >= 2, JSON.stringify(stacks));
  assert.ok(
    frames.some((f) => f.some((x) => x.startsWith(`${kframe[1]}+0x`))),
    'a kernel stack symbolized',
  );
  assert.ok(
    frames.some((f) => f.some((x) => /^0x[0-9a-f]+$/.test(x))),
    'a user stack: the map does not say whose, so hex',
  );
  const [counts] = ta.agent.maps('stk', 'counts');
  const key = counts!.entries[0]![0] as Record<string, unknown>;
  assert.equal(key.pid, pid);
  assert.match((key.user_stack_id as string[])[0]!, /^kbpf_stack_leaf\+0x[0-9a-f]+ \(kbpf_stack_target\)$/);
  assert.ok((key.kern_stack_id as string[]).some((x) => x.startsWith(`${kframe[1]}+0x`)));
  const mapsOut = await kbpf(socket, 'maps', 'stk', 'stacks');
  assert.match(mapsOut, /^stacks \(stack_trace, \d+ entr(y|ies)\)\n {2}stack \d+\n {4}\S+/);
  assert.match(mapsOut, /\n {4}(do_syscall_64|entry_SYSCALL_64[a-z_]*|x64_sys_call)\+0x[0-9a-f]+\n/);
  // all maps at once: the user stacks of the stack trace map in the process the counts' keys name
  const whole = await kbpf(socket, 'maps', 'stk');
  assert.match(whole, /\n {4}kbpf_stack_leaf\+0x[0-9a-f]+ \(kbpf_stack_target\)\n {4}kbpf_stack_caller\+0x/);

  // the process exits: its stacks still name the files it had mapped (known from before)
  const ustack = e.ustack as unknown[];
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const [after] = ta.agent.stacks('stk', [{ pid, addresses: ustack }]);
  assert.match(after![0]!, /^(kbpf_stack_leaf\+0x[0-9a-f]+|0x[0-9a-f]+) \(kbpf_stack_target\)$/, after!.join(';'));
  // a process never seen: hex
  const gone = spawnSync('/bin/true').pid;
  const [unknown] = ta.agent.stacks('stk', [{ pid: gone, addresses: ustack }]);
  assert.ok(unknown!.length > 0 && unknown!.every((x) => /^0x[0-9a-f]+$/.test(x)), unknown!.join(';'));
});

test('kbpf.yaml names stacks: kstack/ustack/stack on an array, kstack:MAP/ustack:MAP on a stack id; refuses a map that is not one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-stackfmt-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(PKG('stack_symbols'), dir, { recursive: true });
  const ta = await testAgent(t);
  const yaml = (format: string): void =>
    writeFileSync(
      join(dir, 'kbpf.yaml'),
      `name: stackfmt\nversion: 1.0.0\nevents:\n  events:\n    format: { ${format} }\n`,
    );
  yaml('kstack: stack, kern_stack_id: ustack:stacks, user_stack_id: kstack');
  const ev = (await ta.agent.inspectPackage(await ta.build(dir))).spec.events[0]!;
  assert.deepEqual(ev.format?.kstack, { kind: 'stack', pid: 'pid', size: 'kstack_sz' }, 'by each address');
  assert.deepEqual(ev.format?.kern_stack_id, { kind: 'stack-id', map: 'stacks', space: 'user', pid: 'pid' });
  assert.deepEqual(ev.format?.user_stack_id, { kind: 'stack-id', map: 'stacks', space: 'kernel' });
  yaml('kern_stack_id: kstack:counts');
  await assert.rejects(
    ta.build(dir),
    /events\.format\.kern_stack_id: no stack trace map "counts" \(stack trace maps: stacks\)/,
  );
  yaml('kstack: kstack:stacks');
  await assert.rejects(ta.build(dir), /kstack:stacks: the field is an array of addresses, not a stack id/);
  yaml('pid: kstacks');
  await assert.rejects(ta.build(dir), /unknown format "kstacks"/);
});

test('an execsnoop-style argument list (NUL-separated strings, their size beside) shows every argument', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('exec_args'));
  await ta.agent.run({ image: ref, name: 'execs' });
  let seen: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !seen; i++) {
    execFileSync('/bin/echo', ['kbpf-arg-one', 'two', '', 'three']);
    await sleep(100);
    seen = ta.agent.logs
      .read('execs')
      .map((r) => r.event as Record<string, unknown>)
      .find((x) => typeof x.args === 'string' && x.args.includes('kbpf-arg-one'));
  }
  assert.ok(seen, 'an exec event of echo');
  assert.equal(seen.args_count, 5);
  assert.equal(seen.args, '/bin/echo kbpf-arg-one two  three');
});
