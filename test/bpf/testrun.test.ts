// BPF_PROG_TEST_RUN: program logic on crafted packets and contexts, without traffic. An XDP
// program drops UDP to port 53, echoes UDP to port 7 back (XDP_TX, addresses swapped) and passes
// the rest; a tc program reads and writes __sk_buff fields through ctx in/out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BpfError, BpfObject, Btf, codecFor, testRun, testRunAsync } from '../../src/bpf/index.js';
import { kernelIds, objectPath } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, oursOf } from './leak-check.js';

const XDP_ABORTED = 0,
  XDP_DROP = 1,
  XDP_PASS = 2,
  XDP_TX = 3;
const TC_ACT_OK = 0,
  TC_ACT_SHOT = 2;

const MAC_A = [0x02, 0, 0, 0, 0, 0xaa];
const MAC_B = [0x02, 0, 0, 0, 0, 0xbb];

/** Ethernet + IPv4 (no options) + UDP or TCP header + payload. */
function packet(opts: {
  proto: 'udp' | 'tcp';
  sport: number;
  dport: number;
  payload?: string;
  ethType?: number;
}): Buffer {
  const payload = Buffer.from(opts.payload ?? 'kbpf');
  const l4 = opts.proto === 'udp' ? 8 : 20;
  const b = Buffer.alloc(14 + 20 + l4 + payload.length);
  b.set(MAC_B, 0); // destination
  b.set(MAC_A, 6); // source
  b.writeUInt16BE(opts.ethType ?? 0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(20 + l4 + payload.length, 16);
  b[22] = 64; // ttl
  b[23] = opts.proto === 'udp' ? 17 : 6;
  b.set([10, 0, 0, 1], 26); // source 10.0.0.1
  b.set([10, 0, 0, 2], 30); // destination 10.0.0.2
  b.writeUInt16BE(opts.sport, 34);
  b.writeUInt16BE(opts.dport, 36);
  if (opts.proto === 'udp') b.writeUInt16BE(8 + payload.length, 38);
  else b[46] = 0x50; // tcp data offset
  payload.copy(b, 14 + 20 + l4);
  return b;
}

test('XDP: drops UDP to port 53, passes other traffic unchanged, echoes UDP to port 7', async () => {
  const before = kernelIds();
  const obj = BpfObject.open(objectPath(import.meta.url, 'testrun.bpf.o'));
  try {
    obj.load();
    const prog = obj.program('xdp_udp');
    assert.equal(prog.type, 'xdp');

    const dns = packet({ proto: 'udp', sport: 40000, dport: 53, payload: 'query' });
    assert.equal(testRun(prog, { data: dns }).retval, XDP_DROP);

    const other = packet({ proto: 'udp', sport: 40000, dport: 5353 });
    const passed = testRun(prog, { data: other });
    assert.equal(passed.retval, XDP_PASS);
    assert.deepEqual(passed.dataOut, other, 'passed packets are not modified');

    const tcp53 = packet({ proto: 'tcp', sport: 40000, dport: 53 });
    assert.equal(testRun(prog, { data: tcp53 }).retval, XDP_PASS, 'only UDP is dropped');
    const arp = packet({ proto: 'udp', sport: 1, dport: 53, ethType: 0x0806 });
    assert.equal(testRun(prog, { data: arp }).retval, XDP_PASS, 'not IPv4');

    const echo = packet({ proto: 'udp', sport: 40001, dport: 7, payload: 'ping!' });
    const tx = testRun(prog, { data: echo });
    assert.equal(tx.retval, XDP_TX);
    const out = tx.dataOut!;
    assert.equal(out.length, echo.length);
    assert.deepEqual([...out.subarray(0, 6)], MAC_A, 'destination MAC is the old source');
    assert.deepEqual([...out.subarray(6, 12)], MAC_B);
    assert.deepEqual([...out.subarray(26, 30)], [10, 0, 0, 2]);
    assert.deepEqual([...out.subarray(30, 34)], [10, 0, 0, 1]);
    assert.equal(out.readUInt16BE(34), 7);
    assert.equal(out.readUInt16BE(36), 40001);
    assert.equal(out.subarray(42).toString(), 'ping!');

    // the verdict counters saw each run once
    const verdicts = obj.map('verdicts');
    assert.deepEqual(
      [XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX].map((a) => verdicts.lookup(a)),
      [0n, 1n, 3n, 1n],
    );
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('repeat runs the program N times and reports a duration; async runs give the same result', async () => {
  const before = kernelIds();
  const obj = BpfObject.open(objectPath(import.meta.url, 'testrun.bpf.o'));
  try {
    obj.load();
    const prog = obj.program('xdp_udp');
    const dns = packet({ proto: 'udp', sport: 1234, dport: 53 });
    const r = testRun(prog, { data: dns, repeat: 1000 });
    assert.equal(r.retval, XDP_DROP);
    assert.ok(Number.isInteger(r.durationNs) && r.durationNs > 0, `durationNs ${r.durationNs}`);
    assert.equal(obj.map('verdicts').lookup(XDP_DROP), 1000n);
    const runCount = prog.info().runCount; // 0 unless run-time stats are enabled: only a type check
    assert.equal(typeof runCount, 'bigint');

    const a = await testRunAsync(prog, { data: dns, repeat: 10 });
    assert.equal(a.retval, XDP_DROP);
    assert.ok(a.durationNs > 0);
    assert.equal(obj.map('verdicts').lookup(XDP_DROP), 1010n);
    const echo = packet({ proto: 'udp', sport: 9, dport: 7 });
    assert.equal((await testRunAsync(prog, { data: echo })).retval, XDP_TX);
    // repetitions run on the same packet buffer: after the first echo swapped the ports, the
    // second run sees destination port 9 and passes it (retval is the last run's)
    const twice = testRun(prog, { data: echo, repeat: 2 });
    assert.equal(twice.retval, XDP_PASS);
    assert.equal(twice.dataOut!.readUInt16BE(36), 9);
    assert.equal(obj.map('verdicts').lookup(XDP_TX), 2n);

    // input the kernel refuses (shorter than an Ethernet header): an error naming the program
    assert.throws(
      () => testRun(prog, { data: new Uint8Array(8) }),
      (e: unknown) =>
        e instanceof BpfError &&
        e.code === 'EINVAL' &&
        /^test run program "xdp_udp" of object "testrun\.bpf"/.test(e.message),
    );
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('tc: ctx in / ctx out carry __sk_buff fields into and out of the program', async () => {
  const before = kernelIds();
  const obj = BpfObject.open(objectPath(import.meta.url, 'testrun.bpf.o'));
  try {
    obj.load();
    const prog = obj.program('tc_mark');
    assert.equal(prog.type, 'sched_cls');
    const kernel = Btf.kernel();
    const skb = codecFor(kernel, kernel.findByName('__sk_buff', 'struct')!.id);
    const data = packet({ proto: 'udp', sport: 1, dport: 2 });

    const r = testRun(prog, { data, ctx: skb.encode({ mark: 21 }) });
    assert.equal(r.retval, TC_ACT_OK);
    const out = skb.decode(r.ctxOut!) as { mark: number; priority: number };
    assert.equal(out.mark, 42);
    assert.equal(out.priority, 7);
    assert.deepEqual(r.dataOut, data);

    const shot = testRun(prog, { data, ctx: skb.encode({ mark: 0 }) });
    assert.equal(shot.retval, TC_ACT_SHOT);
    assert.equal((skb.decode(shot.ctxOut!) as { priority: number }).priority, 0);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});
