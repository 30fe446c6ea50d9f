// Nothing leaks: after loading and attaching programs of several kinds (tracepoint, raw
// tracepoint, uprobe, uretprobe, cgroup, XDP, tcx) and creating maps, closing everything leaves
// bpftool's lists as they were; so does a failed load or a failed attach.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  attachCgroup,
  attachRawTracepoint,
  attachTcx,
  attachTracepoint,
  attachUprobe,
  attachXdp,
  BpfError,
  BpfMap,
  BpfObject,
  type Link,
  VerifierError,
} from '../../src/bpf/index.js';
import { isKind, NotFound } from '../../src/errors.js';
import { kernelIds, makeCgroup, objectPath, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs, merge, NOTHING, type Ours, oursNow, oursOf } from './leak-check.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/uprobe_target.c', import.meta.url));
type T = { after(fn: () => unknown): void };

/** A veth pair (veth is on every kernel with network namespaces; dummy is not always built); deleting one end removes both. */
function testInterface(t: T): string {
  const name = `kbpfl${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
  t.after(() => execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' }));
  execFileSync('ip', ['link', 'set', name, 'up']);
  return name;
}

function uprobeTarget(t: T): string {
  const dir = tempDir(t, 'kbpf-leak-');
  const bin = join(dir, 'kbpf_uprobe_target');
  execFileSync('cc', ['-O2', '-o', bin, FIXTURE]);
  return bin;
}

interface Loaded {
  objects: BpfObject[];
  links: Link[];
  maps: BpfMap[];
  ours: Ours;
}

/** Loads and attaches one of every kind this kernel has; all of it is released by the caller. */
function loadEverything(t: T, loaded: Loaded): void {
  const open = (file: string) => {
    const o = BpfObject.open(objectPath(import.meta.url, file));
    loaded.objects.push(o);
    return o;
  };
  const tracing = open('tracing.bpf.o');
  tracing.setGlobal('target_tgid', process.pid);
  tracing.load();
  loaded.links.push(attachTracepoint(tracing.program('trace_openat'), 'syscalls/sys_enter_openat'));
  loaded.links.push(attachRawTracepoint(tracing.program('raw_exec'), 'sched_process_exec'));

  const bin = uprobeTarget(t);
  const uprobe = open('uprobe.bpf.o').load();
  loaded.links.push(attachUprobe(uprobe.program('on_enter'), { binary: bin, symbol: 'kbpf_target' }));
  loaded.links.push(attachUprobe(uprobe.program('on_return'), { binary: bin, symbol: 'kbpf_target', retprobe: true }));

  const cg = makeCgroup(t, 'kbpf-leak');
  const connect = open('connect_redirect.bpf.o');
  connect.setGlobals({ from_port: 1, to_port: 2 });
  connect.load();
  loaded.links.push(attachCgroup(connect.program('redirect_connect4'), cg));

  const iface = testInterface(t);
  const net = open('testrun.bpf.o').load();
  loaded.links.push(attachXdp(net.program('xdp_udp'), iface, 'generic'));
  loaded.links.push(attachTcx(net.program('tc_mark'), iface, 'ingress'));

  loaded.maps.push(BpfMap.create({ type: 'hash', name: 'kbpf_leak_map', keySize: 4, valueSize: 4, maxEntries: 4 }));
  loaded.maps.push(
    BpfMap.create({ type: 'ringbuf', name: 'kbpf_leak_rb', keySize: 0, valueSize: 0, maxEntries: 4096 }),
  );
  loaded.ours = merge(oursOf(...loaded.objects), { maps: ['kbpf_leak_map', 'kbpf_leak_rb'] });
}

function releaseAll(l: Loaded, order: 'links-first' | 'objects-first'): void {
  const links = () => {
    for (const x of l.links.splice(0)) x.close();
  };
  const objects = () => {
    for (const x of l.objects.splice(0)) x.close();
  };
  if (order === 'links-first') {
    links();
    objects();
  } else {
    objects();
    links();
  }
  for (const m of l.maps.splice(0)) m.close();
}

for (const order of ['links-first', 'objects-first'] as const) {
  test(`load + attach of every kind, then close (${order}): nothing is left`, async (t) => {
    const before = kernelIds();
    const l: Loaded = { objects: [], links: [], maps: [], ours: {} };
    try {
      loadEverything(t, l);
      const during = oursNow(before, l.ours);
      assert.equal(during.link.length, 7, `links while attached: ${during.link}`);
      assert.equal(during.prog.length, 8, `programs while loaded: ${during.prog}`); // 3 tracing (one kprobe, not attached), 2 uprobe, 1 cgroup, 2 net
      assert.ok(during.map.length >= 10, `maps while loaded: ${during.map}`);
      if (order === 'objects-first') {
        // closing the objects does not detach: the links hold their programs
        for (const o of l.objects.splice(0)) o.close();
        const held = oursNow(before, l.ours);
        assert.equal(held.link.length, 7);
        assert.equal(held.prog.length, 7, 'only attached programs stay');
      }
    } finally {
      releaseAll(l, order);
    }
    assert.deepEqual(await leftOfOurs(before, l.ours), NOTHING);
  });
}

test('a failed load (verifier) and failed attaches leave nothing', async (t) => {
  const before = kernelIds();
  const bad = BpfObject.open(objectPath(import.meta.url, 'verifier.bpf.o'));
  const good = BpfObject.open(objectPath(import.meta.url, 'tracing.bpf.o'));
  const ours = merge(oursOf(bad), oursOf(good));
  try {
    assert.throws(() => bad.load(), VerifierError);
    good.load();
    const prog = good.program('trace_openat');
    assert.throws(
      () => attachTracepoint(prog, 'syscalls/sys_enter_no_such_call'),
      (e: unknown) => e instanceof BpfError && isKind(e, NotFound),
    );
    assert.throws(
      () => attachCgroup(good.program('raw_exec'), '/sys/fs/cgroup/kbpf-no-such-cgroup', 'cgroup_inet4_connect'),
      BpfError,
    );
    assert.throws(
      () => attachUprobe(good.program('trace_openat'), { binary: uprobeTarget(t), symbol: 'kbpf_target' }),
      BpfError,
    );
    assert.throws(() => attachXdp(good.program('trace_openat'), testInterface(t)), BpfError);
    const during = oursNow(before, ours);
    assert.equal(during.link.length, 0, 'no failed attach left a link');
    assert.equal(during.prog.length, 3, `only the good object's programs: ${during.prog}`);
  } finally {
    bad.close();
    good.close();
  }
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
});
