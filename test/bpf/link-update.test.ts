// bpf_link_update: a link switched to another program in place keeps its id and never leaves
// the hook uncovered (cgroup connect4 under a stream of connections), and XDP / tcx links do the
// same on a veth pair between two namespaces.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { attachCgroup, attachTcx, attachXdp, BpfError, BpfObject, inNetns, type Link } from '../../src/bpf/index.js';
import { makeCgroup, objectPath } from '../../testbed/kernel.js';
import {
  bpftoolLink,
  execInNetns,
  idsOfObject,
  listNetns,
  madeIds,
  makeNetnsPair,
  ping,
  run,
  stillListed,
} from '../../testbed/netns.js';

const SLOTS = ['toB', 'toC', 'xdpPass', 'xdpDrop', 'tcV1', 'tcV2'] as const;
type Hits = Record<(typeof SLOTS)[number], number>;

function reader(obj: BpfObject): () => Hits {
  const m = obj.map('lu_hits');
  return () => Object.fromEntries(SLOTS.map((k, i) => [k, Number(m.lookup(i))])) as Hits;
}

async function server(reply: string): Promise<{ port: number; srv: Server }> {
  const srv = createServer((s) => s.end(reply));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as { port: number }).port, srv };
}

const inCgroup = (cg: string, args: string[]): string[] => {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return ['-c', `echo $$ > '${cg}/cgroup.procs' && exec ${quoted}`];
};

// One connection: prints what the server said.
const CLIENT = `const s=require('net').connect(+process.argv[1],'127.0.0.1');let d='';s.on('data',x=>d+=x);s.on('end',()=>console.log(d));s.on('error',e=>console.log('ERR '+e.code))`;

// Connects again and again (one at a time), one line per connection, until it has seen
// process.argv[2] replies "from-C" or made process.argv[3] connections.
const LOOP = `
const net = require('net');
const [port, wantC, max] = process.argv.slice(1).map(Number);
const one = () => new Promise((res) => { const s = net.connect(port, '127.0.0.1'); let d = ''; s.on('data', (x) => d += x); s.on('end', () => res(d)); s.on('error', (e) => res('ERR ' + e.code)); });
(async () => {
  let seenC = 0;
  for (let n = 0; n < max && seenC < wantC; n++) {
    const r = await one();
    if (r === 'from-C') seenC++;
    console.log(r);
    await new Promise((r) => setTimeout(r, 2));
  }
})();`;

test('cgroup connect4 link switched in place with link.update: before to B, after to C, no gap', async (t) => {
  const made = madeIds();
  const a = await server('from-A');
  const b = await server('from-B');
  const c = await server('from-C');
  t.after(() => {
    a.srv.close();
    b.srv.close();
    c.srv.close();
  });
  const cg = makeCgroup(t);
  const connectOnce = async () => {
    const r = await run('sh', inCgroup(cg, ['-e', CLIENT, String(a.port)]));
    return r.stdout.trim();
  };

  const obj = BpfObject.open(objectPath(import.meta.url, 'link_update.bpf.o'));
  let link: Link | undefined;
  try {
    obj.setGlobals({ from_port: a.port, port_b: b.port, port_c: c.port });
    obj.load();
    idsOfObject(made, obj);
    const hits = reader(obj);
    const toB = obj.program('lu_connect_b');
    const toC = obj.program('lu_connect_c');

    link = attachCgroup(toB, cg);
    const id = link.id;
    made.link.push(id);
    assert.equal(link.info().progId, toB.id);
    assert.equal(await connectOnce(), 'from-B');

    // a client connects in a loop while the link switches to the other program
    const child = spawn('sh', inCgroup(cg, ['-e', LOOP, String(a.port), '20', '3000']), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const replies: string[] = [];
    let updatedAt = -1;
    for await (const line of createInterface({ input: child.stdout! })) {
      replies.push(line);
      if (updatedAt < 0 && replies.filter((r) => r === 'from-B').length === 5) {
        link.update(toC);
        updatedAt = replies.length;
      }
    }
    assert.ok(updatedAt > 0, `the loop ran: ${replies.length} replies, ${stderr}`);
    assert.deepEqual(
      replies.filter((r) => r !== 'from-B' && r !== 'from-C'),
      [],
      'every connection was redirected (never reached A, never failed)',
    );
    const firstC = replies.indexOf('from-C');
    assert.ok(firstC >= 5, 'B before the update');
    assert.ok(
      replies.slice(0, firstC).every((r) => r === 'from-B') && replies.slice(firstC).every((r) => r === 'from-C'),
      `one switch from B to C: ${replies.join(',')}`,
    );
    assert.equal(replies.filter((r) => r === 'from-C').length, 20);

    // same link, other program
    const info = link.info();
    assert.equal(info.id, id, 'the link keeps its id');
    assert.equal(info.progId, toC.id);
    assert.equal(bpftoolLink(id)?.prog_id, toC.id, 'bpftool shows the new program on the same link');
    assert.equal(await connectOnce(), 'from-C');
    const h = hits();
    assert.equal(h.toB, 1 + replies.filter((r) => r === 'from-B').length);
    assert.equal(h.toC, 1 + replies.filter((r) => r === 'from-C').length);

    // a program of another type is refused, and the link keeps what it had
    const xdpProg = obj.program('lu_xdp_pass');
    assert.throws(
      () => link!.update(xdpProg),
      (e: unknown) =>
        e instanceof BpfError && e.op === 'update' && /lu_xdp_pass/.test(e.message) && e.code === 'EINVAL',
    );
    assert.equal(link.info().progId, toC.id);
    assert.equal(await connectOnce(), 'from-C');

    link.detach();
    link = undefined;
    assert.equal(await connectOnce(), 'from-A', 'detached: no redirect');
  } finally {
    link?.close();
    obj.close();
  }
  assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] }, 'bpftool lists nothing this test made');
});

test('xdp and tcx links switched in place with link.update on a veth pair', async (t) => {
  const made = madeIds();
  const net = await makeNetnsPair(t);
  const obj = BpfObject.open(objectPath(import.meta.url, 'link_update.bpf.o'));
  const links: Link[] = [];
  try {
    obj.load();
    idsOfObject(made, obj);
    const hits = reader(obj);
    const pass = obj.program('lu_xdp_pass');
    const drop = obj.program('lu_xdp_drop');
    const v1 = obj.program('lu_tc_v1');
    const v2 = obj.program('lu_tc_v2');
    const xdpProgOnB = async () => {
      const [l] = JSON.parse(
        (await execInNetns(net.nsB, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'veth0'])).stdout,
      ) as { xdp?: { prog?: { id: number } } }[];
      return l?.xdp?.prog?.id;
    };

    const xdp = inNetns(net.nsB, () => attachXdp(pass, 'veth0', 'generic'));
    links.push(xdp);
    const tcx = inNetns(net.nsA, () => attachTcx(v1, 'veth0', 'ingress'));
    links.push(tcx);
    const xdpId = xdp.id;
    const tcxId = tcx.id;
    made.link.push(xdpId, tcxId);

    let before = hits();
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 3 })).received, 3);
    let after = hits();
    assert.deepEqual(
      [
        after.xdpPass - before.xdpPass,
        after.xdpDrop - before.xdpDrop,
        after.tcV1 - before.tcV1,
        after.tcV2 - before.tcV2,
      ],
      [3, 0, 3, 0],
    );

    // switch both links: XDP now drops echo requests, tcx counts in the other slot
    xdp.update(drop);
    tcx.update(v2);
    assert.deepEqual([xdp.info().id, xdp.info().progId], [xdpId, drop.id]);
    assert.deepEqual([tcx.info().id, tcx.info().progId], [tcxId, v2.id]);
    assert.equal(await xdpProgOnB(), drop.id, 'the interface runs the new XDP program');
    before = hits();
    const dropped = await ping(net.nsA, net.b.addr!, { count: 3 });
    assert.equal(dropped.received, 0, 'echo requests dropped after the update');
    after = hits();
    assert.deepEqual(
      [
        after.xdpPass - before.xdpPass,
        after.xdpDrop - before.xdpDrop,
        after.tcV1 - before.tcV1,
        after.tcV2 - before.tcV2,
      ],
      [0, 3, 0, 0],
    );

    // and back (a rollback is an update too)
    xdp.update(pass);
    before = hits();
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 3 })).received, 3);
    after = hits();
    assert.deepEqual(
      [
        after.xdpPass - before.xdpPass,
        after.xdpDrop - before.xdpDrop,
        after.tcV1 - before.tcV1,
        after.tcV2 - before.tcV2,
      ],
      [3, 0, 0, 3],
    );
    assert.equal(xdp.info().id, xdpId);

    // a program of another type is refused; the link is unchanged
    assert.throws(
      () => xdp.update(v1),
      (e: unknown) => e instanceof BpfError && e.op === 'update' && e.code === 'EINVAL',
    );
    assert.equal(xdp.info().progId, pass.id);

    for (const l of links.splice(0)) l.detach();
    assert.equal(await xdpProgOnB(), undefined, 'XDP detached');
  } finally {
    for (const l of links) l.close();
    obj.close();
  }
  assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] }, 'bpftool lists nothing this test made');
});

test('no namespace of this file is left behind', async () => {
  // runs after the tests above, whose cleanup removed their namespaces
  assert.deepEqual(await listNetns(), []);
});
