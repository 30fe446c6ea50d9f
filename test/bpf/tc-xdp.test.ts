// XDP (generic) and tc (tcx link and clsact filter) programs on a veth pair between two network
// namespaces count real pings, and XDP drops them when told to.

import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import {
  attachTcClsact,
  attachTcx,
  attachXdp,
  BPFFS,
  BpfObject,
  ensureBpffs,
  inNetns,
  Link,
  type TcFilter,
} from '../../src/bpf/index.js';
import { objectPath, uniqueName } from '../../testbed/kernel.js';
import {
  bpftoolLink,
  execInNetns,
  idsOfObject,
  listNetns,
  madeIds,
  makeNetnsPair,
  ping,
  stillListed,
} from '../../testbed/netns.js';

const SLOTS = [
  'xdpAll',
  'xdpEchoReq',
  'xdpDropped',
  'tcxAll',
  'tcxEchoReply',
  'tcxEchoReq',
  'clsAll',
  'clsEchoReply',
  'clsEchoReq',
] as const;
type Counts = Record<(typeof SLOTS)[number], number>;

function diff(after: Counts, before: Counts): Counts {
  return Object.fromEntries(SLOTS.map((k) => [k, after[k] - before[k]])) as Counts;
}

test('xdp (generic) and tc (tcx + clsact) count real pings between two namespaces, and xdp drops them', async (t) => {
  const made = madeIds();
  const net = await makeNetnsPair(t);
  ensureBpffs();
  const pin = `${BPFFS}/${uniqueName('kbpf-tcx')}`;
  t.after(() => rmSync(pin, { force: true }));

  const obj = BpfObject.open(objectPath(import.meta.url, 'tc_xdp.bpf.o'));
  const links: Link[] = [];
  const filters: TcFilter[] = [];
  try {
    obj.load();
    idsOfObject(made, obj);
    const counters = obj.map('counters');
    const read = (): Counts => Object.fromEntries(SLOTS.map((k, i) => [k, Number(counters.lookup(i))])) as Counts;
    const xdpProg = obj.program('xdp_count');
    assert.equal(xdpProg.type, 'xdp');
    assert.equal(obj.program('tcx_count').type, 'sched_cls');

    // XDP generic on B's veth0 (sees A's echo requests), tcx ingress on A's veth0 (sees B's
    // replies), clsact egress on A's veth0 (sees A's requests leaving).
    const xdp = inNetns(net.nsB, () => attachXdp(xdpProg, 'veth0', 'generic'));
    links.push(xdp);
    made.link.push(xdp.id);
    const tcx = inNetns(net.nsA, () => attachTcx(obj.program('tcx_count'), 'veth0', 'ingress'));
    links.push(tcx);
    made.link.push(tcx.id);
    const cls = inNetns(net.nsA, () => attachTcClsact(obj.program('clsact_count'), 'veth0', 'egress'));
    filters.push(cls);

    // what the kernel says is attached where
    const xinfo = xdp.info();
    assert.equal(xinfo.type, 'xdp');
    assert.equal(xinfo.ifindex, net.b.ifindex);
    assert.equal(xinfo.progId, xdpProg.id);
    const [bLink] = JSON.parse(
      (await execInNetns(net.nsB, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'veth0'])).stdout,
    ) as { xdp?: { mode: number; prog?: { id: number } } }[];
    assert.equal(bLink?.xdp?.mode, 2, 'XDP attached in generic (skb) mode'); // XDP_ATTACHED_SKB
    assert.equal(bLink?.xdp?.prog?.id, xdpProg.id);
    const tinfo = tcx.info();
    assert.deepEqual(
      [tinfo.type, tinfo.attachType, tinfo.ifindex, tinfo.progId],
      ['tcx', 'tcx_ingress', net.a.ifindex, obj.program('tcx_count').id],
    );
    const filterShow = await execInNetns(net.nsA, 'tc', ['filter', 'show', 'dev', 'veth0', 'egress']);
    assert.match(filterShow.stdout, /bpf .*clsact_count.*direct-action/s, `clsact filter listed: ${filterShow.stdout}`);

    // 1. pass: three echo requests and three replies, each counted where it passes
    let before = read();
    const ok = await ping(net.nsA, net.b.addr!, { count: 3 });
    assert.equal(ok.received, 3, `ping A -> B: ${ok.stdout}${ok.stderr}`);
    let d = diff(read(), before);
    assert.equal(d.xdpEchoReq, 3, 'XDP on B saw 3 echo requests');
    assert.equal(d.xdpDropped, 0);
    assert.ok(d.xdpAll >= 3);
    assert.equal(d.tcxEchoReply, 3, 'tcx ingress on A saw 3 echo replies');
    assert.equal(d.tcxEchoReq, 0);
    assert.ok(d.tcxAll >= 3);
    assert.equal(d.clsEchoReq, 3, 'clsact egress on A saw 3 echo requests');
    assert.equal(d.clsEchoReply, 0);
    assert.ok(d.clsAll >= 3);

    // 2. drop on: pings get no reply, XDP counts its drops, A never sees a reply
    obj.map('xdp_config').update(0, 1);
    before = read();
    const dropped = await ping(net.nsA, net.b.addr!, { count: 3, waitS: 1 });
    assert.notEqual(dropped.code, 0, 'ping fails while XDP drops echo requests');
    assert.equal(dropped.received, 0);
    d = diff(read(), before);
    assert.equal(d.xdpDropped, 3, 'XDP dropped the 3 echo requests');
    assert.equal(d.xdpEchoReq, 3);
    assert.equal(d.clsEchoReq, 3, 'the requests did leave A');
    assert.equal(d.tcxEchoReply, 0, 'no reply came back');

    // 3. drop off again: traffic flows
    obj.map('xdp_config').update(0, 0);
    const again = await ping(net.nsA, net.b.addr!, { count: 2 });
    assert.equal(again.received, 2, `ping after drop off: ${again.stdout}`);

    // 4. the tcx link pinned, re-opened from its pin, outlives the handle that made it
    const tcxId = tcx.id;
    tcx.pin(pin);
    const reopened = Link.fromPin(pin);
    links.push(reopened);
    assert.equal(reopened.id, tcxId);
    assert.deepEqual(reopened.info(), tinfo);
    // this bpftool (7.1) predates tcx and prints its link type as the number 11
    assert.ok(['tcx', 11].includes(bpftoolLink(tcxId)?.type as string), 'bpftool lists the tcx link');
    tcx.close();
    before = read();
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 2 })).received, 2);
    assert.equal(
      diff(read(), before).tcxEchoReply,
      2,
      'the pinned tcx link still counts after its first handle closed',
    );
    reopened.detach();
    assert.equal(existsSync(pin), false, 'detach removed the pin');
    assert.equal(
      (await stillListed({ prog: [], map: [], link: [tcxId] })).link.length,
      0,
      'tcx link gone after detach',
    );
    before = read();
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 2 })).received, 2);
    d = diff(read(), before);
    assert.equal(d.tcxAll, 0, 'detached tcx program sees nothing');
    assert.equal(d.clsEchoReq, 2, 'clsact filter still counts');
    assert.equal(d.xdpEchoReq, 2, 'xdp still counts');

    // 5. the clsact filter is replaced in place and detached in its own namespace, although
    //    both are called from outside it
    cls.update(obj.program('tcx_count'));
    const replaced = await execInNetns(net.nsA, 'tc', ['filter', 'show', 'dev', 'veth0', 'egress']);
    assert.match(replaced.stdout, /tcx_count/, `filter runs the new program: ${replaced.stdout}`);
    before = read();
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 2 })).received, 2);
    d = diff(read(), before);
    assert.deepEqual([d.clsEchoReq, d.tcxEchoReq], [0, 2], "the replaced filter counts in the new program's slots");
    cls.detach();
    const filterAfter = await execInNetns(net.nsA, 'tc', ['filter', 'show', 'dev', 'veth0', 'egress']);
    assert.equal(filterAfter.stdout.trim(), '', `clsact filter removed: ${filterAfter.stdout}`);
    xdp.detach();
    const [bAfter] = JSON.parse(
      (await execInNetns(net.nsB, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'veth0'])).stdout,
    ) as { xdp?: unknown }[];
    assert.equal(bAfter?.xdp, undefined, 'XDP detached from B');
  } finally {
    for (const f of filters) f.detach();
    for (const l of links) l.close();
    obj.close();
  }
  assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] }, 'bpftool lists nothing this test made');
});

test('netns helpers leave no namespace behind', async () => {
  // runs after the test above (whose t.after removed its namespaces)
  assert.deepEqual(await listNetns(), []);
});
