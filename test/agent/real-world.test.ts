// Packages in the style of real tool collections (bcc's libbpf-tools, libbpf-bootstrap,
// bpf-developer-tutorial): an iterator writing binary structs, a ring buffer whose record is a
// typedef'd anonymous struct with an address read by its family field, a stack trace map its
// loader would size, loops written with newer libbpf's bpf_for macros, a
// helper the kernel withholds from the program's type.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BpfMap, hookSupport, VerifierError } from 'kbpf/bpf';
import { formatEvent } from '../../src/cli/render/fields.js';
import { isKind, Refused, Unsupported } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING } from '../bpf/leak-check.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));

test('an iterator writing binary records (bpf_seq_write of a struct): its log has the records decoded', async (t) => {
  if (hookSupport('iter').supported !== 'yes') return t.skip(hookSupport('iter').detail);
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('task_records'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.equal(spec.programs[0]!.record, 'task_rec', 'the struct of the size its bpf_seq_write writes');
  await ta.agent.run({ image: ref, name: 'records' });
  const recs = ta.agent.logs.read('records').map((r) => r.event as Record<string, unknown>);
  assert.ok(recs.length >= 10, `a record per task: ${recs.length}`);
  assert.ok(
    recs.some((r) => r.pid === 2 && r.ppid === 0 && r.comm === 'kthreadd'),
    JSON.stringify(recs.slice(0, 3)),
  );
  assert.ok(
    recs.some((r) => r.pid === process.pid && r.comm === 'node'),
    'this process is listed',
  );
  assert.ok(!recs.some((r) => 'output' in r), 'no escaped text lines');
});

test("a typedef'd anonymous record struct decodes with its field names; a 16-byte address reads as its family says", async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('typedef_events'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  const ev = spec.events.find((e) => e.map === 'events')!;
  assert.equal(ev.type, 'exec_event_t');
  assert.deepEqual(ev.format?.addr, { kind: 'inet', family: 'family' });
  assert.equal(ev.format?.family?.kind, 'enum');
  assert.deepEqual(ev.format?.kstack, { kind: 'stack', space: 'kernel' }, 'an array of kernel addresses');
  await ta.agent.run({ image: ref, name: 'execs' });
  let seen: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !seen; i++) {
    execFileSync('/bin/true');
    await sleep(100);
    seen = ta.agent.logs
      .read('execs')
      .map((r) => r.event as Record<string, unknown>)
      .find((e) => e.comm === 'true');
  }
  assert.ok(seen, 'an exec event of /bin/true');
  assert.equal(seen.port, 8080);
  assert.equal(seen.family, 2);
  assert.deepEqual(formatEvent(seen, ev.format), { ...seen, addr: '127.0.0.1', family: 'AF_INET', kstack: '' });
});

test('a stack trace map without a size gets 1024 stacks of 127 frames, as the tools’ loaders give it', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('stack_counts'));
  await ta.agent.run({ image: ref, name: 'stacks' });
  const m = BpfMap.fromPin(ta.agent.instanceMapPath('stacks', 'stackmap'));
  try {
    const info = m.info();
    assert.equal(info.maxEntries, 1024);
    assert.equal(info.valueSize, 127 * 8);
  } finally {
    m.close();
  }
  execFileSync('/bin/true');
  const hits = ta.agent.maps('stacks', 'stack_hits')[0]!.entries;
  assert.ok(hits.length > 0, 'the program ran with its stack map');
});

test('loops written with bpf_for, bpf_repeat and bpf_for_each (newer libbpf macros) build and run', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('bounded_loops'));
  await ta.agent.run({ image: ref, name: 'loops' });
  for (let i = 0; i < 3; i++) execFileSync('/bin/true');
  const sums = new Map(ta.agent.maps('loops', 'loop_sums')[0]!.entries.map(([k, v]) => [Number(k), Number(v)]));
  const execs = sums.get(1)! / 3;
  assert.ok(
    execs >= 3 && Number.isInteger(execs),
    `bpf_repeat(3) ran three times per exec: ${JSON.stringify([...sums])}`,
  );
  assert.equal(sums.get(0), 45 * execs, 'bpf_for(i, 0, 10) summed 0..9 on each exec');
  assert.equal(sums.get(2), 10 * execs, 'bpf_for_each(num, v, 1, 5) summed 1..4 on each exec');
});

test('a helper the kernel withholds from the program type is named in the refusal, with nothing loaded', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('withheld_helper'));
  const before = kernelIds();
  await assert.rejects(
    () => ta.agent.run({ image: ref, name: 'withheld' }),
    (e: Error) =>
      isKind(e, Refused) &&
      /load program "on_execve" .*: this kernel does not let this program type call the helper bpf_xdp_adjust_head\n/.test(
        e.message,
      ),
  );
  assert.deepEqual(
    await leftOfOurs(before, { progs: ['on_execve'], maps: ['helper_calls'], objects: ['withheld_helper'] }),
    NOTHING,
  );
  assert.equal(ta.agent.list().length, 0);
  // the tutorials' case: bpf_probe_write_user, which a kernel in lockdown gives no program
  assert.equal(
    VerifierError.refusedHelper([
      '41: (85) call bpf_probe_write_user#36',
      'program of this type cannot use helper bpf_probe_write_user#36',
    ]),
    'this kernel does not let this program type call the helper bpf_probe_write_user (a kernel in lockdown withholds it from every program)',
  );
  assert.equal(VerifierError.refusedHelper(['R2 min value is negative']), undefined);
});

test('bare kprobe and kretprobe sections build; run refuses them naming kprobe support, or asks for the function', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('bare_kprobe'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.programs.map((p) => p.attach),
    [{ hook: 'kprobe' }, { hook: 'kretprobe' }],
  );
  const kprobes = hookSupport('kprobe').supported === 'yes';
  const before = kernelIds();
  await assert.rejects(
    () => ta.agent.run({ image: ref, name: 'bare' }),
    (e: Error) =>
      kprobes
        ? /program on_entry \(section "kprobe"\) attaches to a kprobe but names no target: give one with --attach on_entry=kprobe:FUNCTION/.test(
            e.message,
          )
        : isKind(e, Unsupported) &&
          /program on_entry \(section "kprobe"\) cannot run on this kernel: this kernel has no kprobe support/.test(
            e.message,
          ),
  );
  assert.deepEqual(
    await leftOfOurs(before, { progs: ['on_entry', 'on_return'], maps: ['probe_hits'], objects: ['bare_kprobe'] }),
    NOTHING,
  );
  assert.equal(ta.agent.list().length, 0);
  if (!kprobes) return;
  await ta.agent.run({
    image: ref,
    name: 'bare',
    attach: { programs: { on_entry: 'kprobe:do_unlinkat', on_return: 'kretprobe:do_unlinkat' } },
  });
  assert.equal(ta.agent.inspect('bare').phase, 'running');
});

test('a directory without *.bpf.c builds its .c files that have BPF sections (bpf2go style), and runs', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('plain_c'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.objects, ['counter.o'], 'user.c (no SEC) is not compiled');
  assert.deepEqual(spec.programs[0]!.attach, { hook: 'tracepoint', target: 'syscalls/sys_enter_execve' });
  await ta.agent.run({ image: ref, name: 'plain' });
  execFileSync('/bin/true');
  const [[, n]] = ta.agent.maps('plain', 'exec_count')[0]!.entries as [unknown, unknown][];
  assert.ok(Number(n) >= 1, `execs counted: ${n}`);
});

test('event buffers declared with __type(value, struct X) load (sizes as the kernel wants them) and decode as X', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('typed_buffers'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.events.map((e) => [e.map, e.type]),
    [
      ['exec_events', 'exec_rec'],
      ['exit_events', 'exit_rec'],
    ],
  );
  await ta.agent.run({ image: ref, name: 'typed' });
  const seen = (map: string, marker: number) =>
    ta.agent.logs
      .read('typed')
      .filter((r) => r.source === map)
      .map((r) => r.event as Record<string, unknown>)
      .find((e) => e.marker === marker);
  let exec: Record<string, unknown> | undefined;
  let exit: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !(exec && exit); i++) {
    execFileSync('/bin/true');
    await sleep(100);
    exec = seen('exec_events', 0xabcd);
    exit = seen('exit_events', 0x1234);
  }
  assert.ok(exec && typeof exec.comm === 'string' && typeof exec.pid === 'number', JSON.stringify(exec));
  assert.ok(exit && typeof exit.tgid === 'number', JSON.stringify(exit));
});

test('records sent cut to a filled prefix of their struct (sslsniff style) decode as that struct', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('cut_records'));
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  const ev = spec.events.find((e) => e.map === 'cut_events')!;
  assert.equal(ev.type, 'cut_rec');
  assert.deepEqual(ev.format?.data, { kind: 'text', size: 'data_len' }, 'a __u8 buffer named as data');
  await ta.agent.run({ image: ref, name: 'cut', config: { target_tgid: String(process.pid) } });
  let recs: Record<string, unknown>[] = [];
  for (let i = 0; i < 40 && recs.length < 4; i++) {
    process.getgid!();
    await sleep(50);
    recs = ta.agent.logs.read('cut').map((r) => r.event as Record<string, unknown>);
  }
  assert.ok(recs.length >= 4, JSON.stringify(recs));
  for (const r of recs) {
    assert.equal(r.pid, process.pid, JSON.stringify(r));
    assert.equal(r.comm, 'node');
    assert.equal(
      (formatEvent(r, ev.format) as Record<string, unknown>).data,
      'kbpf-bytes',
      'its bytes up to data_len, as text',
    );
  }
  assert.ok(
    recs.some((r) => r.len === 0 && r.buf === ''),
    'a header-only record',
  );
  const cut = recs.filter((r) => (r.len as number) > 0);
  assert.ok(cut.length > 0, JSON.stringify(recs));
  for (const r of cut) assert.equal(r.buf, 'cut-record!'.slice(0, r.len as number), 'the filled part of buf');
  await ta.agent.remove('cut', { force: true });
});
