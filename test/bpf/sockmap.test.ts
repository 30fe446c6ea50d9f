// sock_ops + sk_msg with a sockhash: a client and a server process in a test cgroup talk over
// 127.0.0.1 while every message goes socket-to-socket through bpf_msg_redirect_hash, which a
// counter map proves; bytes arrive intact both ways.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { attachCgroup, attachSockmap, BpfObject, type Link } from '../../src/bpf/index.js';
import { makeCgroup, objectPath } from '../../testbed/kernel.js';
import { bpftoolLink, idsOfObject, madeIds, run, stillListed } from '../../testbed/netns.js';

const STATS = ['addedActive', 'addedPassive', 'toServer', 'toClient', 'missed', 'bytes'] as const;
type Stats = Record<(typeof STATS)[number], number>;

// Frames are a 4-byte big-endian length and a payload. The server greets each connection with a
// frame, then answers every frame with one frame holding the payload reversed; it prints one JSON
// line per finished connection. One frame = one write() = one sendmsg.
const FRAMING = `
const frame = (p) => { const h = Buffer.alloc(4); h.writeUInt32BE(p.length); return Buffer.concat([h, p]); };
function reader(sock, onFrame) {
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      const p = buf.subarray(4, 4 + n);
      buf = buf.subarray(4 + n);
      onFrame(Buffer.from(p));
    }
  });
}`;

const SERVER = `${FRAMING}
const srv = require('net').createServer((s) => {
  let frames = 0, bytes = 0;
  reader(s, (p) => { frames++; bytes += p.length; s.write(frame(Buffer.from(p).reverse())); });
  s.on('end', () => { console.log(JSON.stringify({ frames, bytes })); s.end(); });
  s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
  s.write(frame(Buffer.from('hello from the server')));
});
srv.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: srv.address().port })));`;

const CLIENT = `${FRAMING}
const { createHash, randomBytes } = require('crypto');
const sizes = JSON.parse(process.argv[2]);
const s = require('net').connect(+process.argv[1], '127.0.0.1');
const queue = [];
let waiting = null;
reader(s, (p) => { if (waiting) { const w = waiting; waiting = null; w(p); } else queue.push(p); });
const next = () => new Promise((r) => { if (queue.length) r(queue.shift()); else waiting = r; });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(1); });
(async () => {
  const greeting = (await next()).toString();
  let bad = 0, bytes = 0;
  for (const n of sizes) {
    const p = randomBytes(n);
    s.write(frame(p));
    const r = await next();
    if (!r.equals(Buffer.from(p).reverse())) bad++;
    bytes += n;
  }
  console.log(JSON.stringify({ greeting, sent: sizes.length, bytes, bad }));
  s.end();
})();`;

function spawnInCgroup(cgroup: string, args: string[]): ChildProcess {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec ${quoted}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function runClientInCgroup(
  cgroup: string,
  port: number,
  sizes: number[],
): Promise<{ greeting: string; sent: number; bytes: number; bad: number }> {
  const quoted = [process.execPath, '-e', CLIENT, String(port), JSON.stringify(sizes)]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  const r = await run('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec ${quoted}`], { timeoutMs: 15_000 });
  assert.equal(r.code, 0, `client: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const SIZES = [1, 2, 17, 100, 512, 1000, 1460, 1500, 2048, 3000, 4000, 64, 7, 333, 4096, 9];
const framed = (n: number) => n + 4;

test('sock_ops + sk_msg redirect local TCP messages through a sockhash, both ways', async (t) => {
  const made = madeIds();
  const cg = makeCgroup(t);

  // the server (in the cgroup) listens first: its port is a const volatile of the object
  const server = spawnInCgroup(cg, ['-e', SERVER]);
  t.after(() => {
    server.kill('SIGKILL');
  });
  const lines = createInterface({ input: server.stdout! })[Symbol.asyncIterator]();
  let serverErr = '';
  server.stderr!.on('data', (d) => (serverErr += d));
  const nextLine = async (): Promise<Record<string, unknown>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<IteratorResult<string>>((resolve) => {
      timer = setTimeout(() => resolve({ done: true, value: undefined }), 10_000);
    });
    const r = await Promise.race([lines.next(), timeout]);
    clearTimeout(timer);
    assert.ok(!r.done, `server said nothing: ${serverErr}`);
    return JSON.parse(r.value as string);
  };
  const { port } = (await nextLine()) as { port: number };
  assert.ok(port > 0);

  const obj = BpfObject.open(objectPath(import.meta.url, 'sockmap.bpf.o'));
  const links: Link[] = [];
  try {
    obj.setGlobal('server_port', port);
    obj.load();
    idsOfObject(made, obj);
    const stats = obj.map('sockmap_stats');
    const read = (): Stats => Object.fromEntries(STATS.map((k, i) => [k, Number(stats.lookup(i))])) as Stats;
    const pairs = obj.map('sock_pairs');
    assert.equal(pairs.type, 'sockhash');
    const sockops = obj.program('sockops_add');
    const msg = obj.program('msg_redirect');
    assert.equal(sockops.type, 'sock_ops');
    assert.equal(msg.type, 'sk_msg');

    const opsLink = attachCgroup(sockops, cg);
    links.push(opsLink);
    made.link.push(opsLink.id);
    assert.equal(opsLink.info().attachType, 'cgroup_sock_ops');
    const msgLink = attachSockmap(msg, pairs);
    links.push(msgLink);
    made.link.push(msgLink.id);
    const info = msgLink.info();
    assert.deepEqual(
      [info.type, info.attachType, info.mapId, info.progId],
      ['sockmap', 'sk_msg_verdict', pairs.id, msg.id],
    );
    const listed = bpftoolLink(msgLink.id);
    assert.ok(listed, 'bpftool lists the sockmap link');
    assert.ok(['sockmap', 14].includes(listed.type as string), `bpftool link type: ${String(listed.type)}`);
    assert.equal(listed.prog_id, msg.id);

    // 1. through the redirect: every write of either side goes socket to socket
    const res = await runClientInCgroup(cg, port, SIZES);
    assert.equal(res.greeting, 'hello from the server');
    assert.equal(res.bad, 0, 'every reply is the reversed message: bytes intact both ways');
    assert.equal(res.sent, SIZES.length);
    const srvRes = await nextLine();
    const total = SIZES.reduce((a, n) => a + n, 0);
    assert.deepEqual(srvRes, { frames: SIZES.length, bytes: total }, 'the server got every message intact');
    const s = read();
    assert.equal(s.addedActive, 1, 'sock_ops added the client socket');
    assert.equal(s.addedPassive, 1, 'sock_ops added the server socket');
    assert.equal(s.toServer, SIZES.length, 'every client message was redirected');
    assert.equal(s.toClient, SIZES.length + 1, 'every server message (greeting + replies) was redirected');
    assert.equal(s.missed, 0);
    const greetingLen = Buffer.byteLength('hello from the server');
    assert.equal(
      s.bytes,
      2 * SIZES.reduce((a, n) => a + framed(n), 0) + framed(greetingLen),
      'redirected bytes = all bytes sent',
    );

    // closed sockets leave the sockhash by themselves
    const deadline = Date.now() + 3000;
    while ([...pairs.keys()].length > 0 && Date.now() < deadline) await sleep(20);
    assert.equal([...pairs.keys()].length, 0, 'closed sockets are removed from the sockhash');

    // 2. detached: the same exchange is carried by TCP, nothing is redirected
    for (const l of links.splice(0)) l.detach();
    assert.equal(bpftoolLink(info.id), undefined, 'bpftool no longer lists the sockmap link');
    const before = read();
    const plain = await runClientInCgroup(cg, port, [10, 2000]);
    assert.equal(plain.bad, 0);
    assert.deepEqual(await nextLine(), { frames: 2, bytes: 2010 });
    assert.deepEqual(read(), before, 'no redirect, no socket added after detach');
  } finally {
    for (const l of links) l.close();
    obj.close();
    server.kill('SIGKILL');
  }
  assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] }, 'bpftool lists nothing this test made');
});
