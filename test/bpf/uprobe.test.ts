// uprobe / uretprobe on a function of a test binary compiled at test time: the uprobe sees the
// arguments (PT_REGS_PARM1), the uretprobe the return values, for every run of the binary.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { attachUprobe, BpfError, BpfObject, type Link } from '../../src/bpf/index.js';
import { isKind, NotFound } from '../../src/errors.js';
import { kernelIds, objectPath, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, oursOf } from './leak-check.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/uprobe_target.c', import.meta.url));

interface Call {
  arg: number;
  ret: number;
  entries: number;
  returns: number;
}

function buildTarget(t: { after(fn: () => unknown): void }): string {
  const dir = tempDir(t, 'kbpf-uprobe-');
  const bin = join(dir, 'kbpf_uprobe_target');
  execFileSync('cc', ['-O2', '-g', '-o', bin, FIXTURE]);
  return bin;
}

test('a uprobe sees the arguments and a uretprobe the return values of a test binary', async (t) => {
  const before = kernelIds();
  const bin = buildTarget(t);
  const obj = BpfObject.open(objectPath(import.meta.url, 'uprobe.bpf.o'));
  const links: Link[] = [];
  try {
    obj.load();
    assert.equal(obj.program('on_enter').type, 'kprobe'); // uprobes are kprobe-type programs
    links.push(attachUprobe(obj.program('on_enter'), { binary: bin, symbol: 'kbpf_target' }));
    links.push(attachUprobe(obj.program('on_return'), { binary: bin, symbol: 'kbpf_target', retprobe: true }));
    for (const l of links) assert.equal(l.info().type, 'perf_event');

    const args = [1, 7, -4, 1000, 42, 0];
    const runs: { pid: number; arg: number }[] = [];
    for (const arg of args) {
      const r = spawnSync(bin, [String(arg)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(Number(r.stdout.trim()), arg * 3 + 1);
      runs.push({ pid: r.pid, arg });
    }
    const calls = obj.map('calls');
    for (const { pid, arg } of runs) {
      assert.deepEqual(
        calls.lookup(pid) as Call,
        { arg, ret: arg * 3 + 1, entries: 1, returns: 1 },
        `run with ${arg} (pid ${pid})`,
      );
    }
    assert.equal([...calls.keys()].length, args.length, 'no other process called kbpf_target');

    // detached: another run is not seen
    for (const l of links.splice(0)) l.close();
    const r = spawnSync(bin, ['5']);
    assert.equal(r.status, 0);
    assert.equal(calls.lookup(r.pid), undefined);
  } finally {
    for (const l of links) l.close();
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('a uprobe on a missing symbol or binary fails with an error naming it', async (t) => {
  const before = kernelIds();
  const bin = buildTarget(t);
  const obj = BpfObject.open(objectPath(import.meta.url, 'uprobe.bpf.o'));
  try {
    obj.load();
    assert.throws(
      () => attachUprobe(obj.program('on_enter'), { binary: bin, symbol: 'kbpf_no_such_function' }),
      (e: unknown) => e instanceof BpfError && /on_enter/.test(e.message) && /kbpf_no_such_function/.test(e.message),
    );
    assert.throws(
      () => attachUprobe(obj.program('on_enter'), { binary: '/nonexistent/kbpf', symbol: 'kbpf_target' }),
      (e: unknown) => e instanceof BpfError && isKind(e, NotFound) && /\/nonexistent\/kbpf/.test(e.message),
    );
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});
