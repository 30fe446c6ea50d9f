// Pins outlive the process that made them: a child process loads, attaches, pins a link and a
// map, writes a value and exits; this process sees the program still attached, re-opens the link
// and the map from their pins (map values decoded through the map's kernel BTF), then detaches,
// unpins, and checks that nothing is left.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BPFFS, BpfError, BpfMap, ensureBpffs, Link } from '../../src/bpf/index.js';
import { kernelIds, objectPath, run, uniqueName } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, type Ours } from './leak-check.js';

const CHILD = fileURLToPath(new URL('../../../test/fixtures/pin-child.mjs', import.meta.url));
const OURS: Ours = { progs: ['count_getppid'], maps: ['pin_state'], objects: ['pin.bpf'] };

interface PinState {
  calls: bigint;
  magic: number;
  note: string;
  mode: string;
  pair: { lo: number; hi: number };
}
interface ChildIds {
  pid: number;
  linkId: number;
  progId: number;
  mapId: number;
}

function bpftool<T>(...args: string[]): T {
  return JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** getppid() calls of this process: what the pinned program counts. */
function callGetppid(n: number): void {
  for (let i = 0; i < n; i++) void process.ppid;
}

test('a link and a map pinned by a process that exited stay attached, re-open and are removed', async (t) => {
  ensureBpffs();
  const before = kernelIds();
  const dir = `${BPFFS}/${uniqueName('kbpf-pin')}`;
  t.after(() => rmSync(dir, { recursive: true, force: true })); // removes the pins if an assertion failed

  const child = await run(process.execPath, [CHILD, objectPath(import.meta.url, 'pin.bpf.o'), dir], {
    timeoutMs: 20_000,
  });
  assert.equal(child.code, 0, `child failed: ${child.stderr}`);
  const ids = JSON.parse(child.stdout) as ChildIds;
  assert.equal(alive(ids.pid), false, 'the child process is gone');
  assert.deepEqual(readdirSync(dir).sort(), ['link', 'pin_state']);

  // still attached: bpftool lists the link with the child's program, and the program still runs
  const shown = bpftool<{ id: number; type: string; prog_id: number }>('link', 'show', 'id', String(ids.linkId));
  assert.equal(shown.prog_id, ids.progId);
  assert.equal(shown.type, 'perf_event');
  assert.equal(bpftool<{ id: number }>('link', 'show', 'pinned', `${dir}/link`).id, ids.linkId);
  callGetppid(3);

  const link = Link.fromPin(`${dir}/link`);
  const map = BpfMap.fromPin(`${dir}/pin_state`);
  try {
    assert.equal(link.id, ids.linkId);
    assert.equal(link.info().progId, ids.progId);
    assert.equal(link.pinPath, `${dir}/link`);
    assert.equal(map.id, ids.mapId);
    assert.equal(map.type, 'array');
    assert.equal(map.name, 'pin_state');
    assert.ok(map.btf, 'the map has kernel BTF');
    assert.equal(map.valueCodec.size, map.valueSize);
    // the value the child wrote, decoded from the map's kernel BTF; calls counted our 3 getppid()s
    assert.deepEqual(map.lookup(0) as PinState, {
      calls: 3n,
      magic: 0xc0ffee,
      note: 'from the child',
      mode: 'PIN_MODE_B',
      pair: { lo: 7, hi: 65535 },
    });
    callGetppid(5);
    assert.equal((map.lookup(0) as PinState).calls, 8n);

    // detach: removes the pin and releases the link; the program stops counting
    link.detach();
    assert.equal(existsSync(`${dir}/link`), false);
    assert.throws(() => link.fd, BpfError);
    callGetppid(4);
    assert.equal((map.lookup(0) as PinState).calls, 8n, 'no counting after detach');
    assert.throws(
      () => Link.fromPin(`${dir}/link`),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.message.includes(`${dir}/link`),
    );

    // a second handle on the pinned map sees the same kernel map
    const again = BpfMap.fromPin(`${dir}/pin_state`);
    try {
      assert.equal(again.id, map.id);
      again.update(0, { calls: 1n, magic: 1, note: 'from the parent', mode: 'PIN_MODE_A' });
      assert.deepEqual(map.lookup(0), {
        calls: 1n,
        magic: 1,
        note: 'from the parent',
        mode: 'PIN_MODE_A',
        pair: { lo: 0, hi: 0 },
      });
    } finally {
      again.close();
    }
    unlinkSync(`${dir}/pin_state`);
  } finally {
    link.close();
    map.close();
  }
  rmdirSync(dir);
  assert.equal(readdirSync(BPFFS).includes(basename(dir)), false);
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
  const gone = bpftool<unknown[]>('link', 'show').filter((l) => (l as { id: number }).id === ids.linkId);
  assert.deepEqual(gone, []);
});
