// Tracing hooks on the real kernel: a tracepoint on syscalls/sys_enter_openat sees exactly the
// path this process opens, and a raw tracepoint on sched_process_exec sees an exec it causes.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, openSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { attachRawTracepoint, attachTracepoint, BpfObject } from '../../src/bpf/index.js';
import { kernelIds, objectPath, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, oursOf } from './leak-check.js';

interface OpenKey {
  path: string;
}
interface ExecEvent {
  pid: number;
  ppid: number;
  count: number;
  comm: string;
  filename: string;
}

test('a tracepoint on syscalls/sys_enter_openat sees the path this process opens', async (t) => {
  const before = kernelIds();
  const dir = tempDir(t, 'kbpf-tracing-');
  const path = join(dir, `kbpf-open-${randomBytes(6).toString('hex')}`);
  writeFileSync(path, 'x'); // before attach: not counted
  const obj = BpfObject.open(objectPath(import.meta.url, 'tracing.bpf.o'));
  try {
    obj.setGlobal('target_tgid', process.pid);
    assert.equal(obj.getGlobal('target_tgid'), process.pid);
    obj.load();
    const prog = obj.program('trace_openat');
    assert.equal(prog.type, 'tracepoint');
    assert.equal(prog.section, 'tracepoint/syscalls/sys_enter_openat');
    const opens = obj.map('opens');
    const link = attachTracepoint(prog, 'syscalls/sys_enter_openat');
    try {
      assert.equal(link.info().type, 'perf_event');
      assert.equal(link.info().progId, prog.id);
      closeSync(openSync(path, 'r'));
      // another process opening the same file is filtered out by target_tgid
      execFileSync('cat', [path]);
      assert.equal(opens.lookup({ path } satisfies OpenKey), 1n, 'exactly one open of the unique path by this process');
      const seen = [...opens.keys()].map((k) => (k as OpenKey).path).filter((p) => p.includes('kbpf-open-'));
      assert.deepEqual(seen, [path]);
    } finally {
      link.close();
    }
    // detached: a further open is not seen
    closeSync(openSync(path, 'r'));
    assert.equal(opens.lookup({ path }), 1n);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('a raw tracepoint on sched_process_exec sees an exec this process causes', async (t) => {
  const before = kernelIds();
  const dir = tempDir(t, 'kbpf-tracing-');
  // a uniquely named copy of true(1): its path and comm identify our exec
  const exe = join(dir, `kbpfx${randomBytes(5).toString('hex')}`);
  copyFileSync('/bin/true', exe);
  chmodSync(exe, 0o755);
  const obj = BpfObject.open(objectPath(import.meta.url, 'tracing.bpf.o'));
  try {
    obj.setGlobals({ target_tgid: process.pid });
    obj.program('trace_openat').setAutoload(false);
    obj.load();
    assert.equal(obj.program('trace_openat').loaded, false);
    const prog = obj.program('raw_exec');
    assert.equal(prog.type, 'raw_tracepoint');
    const link = attachRawTracepoint(prog, 'sched_process_exec');
    let childPid: number;
    try {
      assert.equal(link.info().type, 'raw_tracepoint');
      const r = spawnSync(exe, [], { stdio: 'ignore' });
      assert.equal(r.status, 0);
      childPid = r.pid;
    } finally {
      link.close();
    }
    const e = obj.map('execs').lookup(0) as ExecEvent;
    assert.deepEqual(e, {
      pid: childPid,
      ppid: process.pid,
      count: 1,
      comm: basename(exe).slice(0, 15),
      filename: exe,
    });
    // detached: another exec is not seen
    spawnSync(exe, [], { stdio: 'ignore' });
    assert.equal((obj.map('execs').lookup(0) as ExecEvent).count, 1);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});
