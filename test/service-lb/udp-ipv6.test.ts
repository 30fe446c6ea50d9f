// service-lb's datagram and IPv6 paths on a real kernel: unconnected UDP translated per datagram
// with the replies' source given back as the VIP (recvmsg), connected UDP and getpeername, the
// reverse map emptied when the socket is released; the same over IPv6.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { CLIENT, client, runServiceLb, serveUdp } from '../../testbed/service-lb/svclb-node.js';

const UDP_PORT = 5353;

async function bed(t: Parameters<typeof Testbed.create>[0], n: number, ipv6 = false) {
  const tb = await Testbed.create(t, 'kbpfslbu', { ipv6 });
  const lb = await runServiceLb(t, tb);
  const pods: Pod[] = [];
  for (let i = 0; i < n; i++) {
    const p = await tb.addPod({ sidecar: false });
    serveUdp(tb, p, UDP_PORT);
    pods.push(p);
  }
  const cl = await tb.addPod({ sidecar: false });
  for (const p of pods) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await tb.execInPod(p, 'ss', ['-Hlun']);
      if (r.stdout.includes(`:${UDP_PORT}`)) break;
      if (Date.now() > deadline) throw new Error(`${p.name}: no UDP server`);
    }
  }
  return { tb, lb, pods, cl };
}

function service(vip: string, pods: Pod[], family: 4 | 6, policy = 'round-robin') {
  return {
    services: [
      {
        name: 'dns',
        vip,
        ports: [
          { port: 53, targetPort: UDP_PORT, protocol: 'UDP' },
          { port: 80, protocol: 'TCP' },
        ],
        policy,
        backends: pods.map((p) => ({ ip: family === 4 ? p.ip : p.ip6 })),
      },
    ],
  };
}

test('unconnected UDP: each datagram goes to a backend, the replies come from the VIP; the reverse map is emptied at close', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 3);
  const vip = `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  lb.apply(service(vip, pods, 4));
  const got = await client(tb, cl, 'udp', vip, 53, 6);
  for (const g of got) {
    assert.equal(g.err, undefined, JSON.stringify(got));
    assert.equal(g.from, vip, 'recvmsg: the reply shows the VIP as its source');
    assert.equal(g.fromPort, 53);
  }
  const apps = got.map((g) => g.app);
  assert.deepEqual(new Set(apps), new Set(['pod0', 'pod1', 'pod2']), apps.join(' '));
  for (let i = 3; i < 6; i++) assert.equal(apps[i], apps[i - 3], 'round-robin per datagram');
  const s = lb.maps.stats();
  assert.equal(s.datagram, 6n);
  assert.equal(s.reverse, 6n);
  assert.ok(s.released >= 1n, 'sock_release forgot the socket');
  assert.equal(lb.maps.reverseCount(), 0, 'nothing left in svc_rev after the socket closed');
});

test('connected UDP: one backend for the socket, getpeername and the replies show the VIP', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2);
  const vip = `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  lb.apply(service(vip, pods, 4));
  const got = await client(tb, cl, 'udp-connected', vip, 53, 4);
  assert.equal(new Set(got.map((g) => g.app)).size, 1, JSON.stringify(got));
  for (const g of got) {
    assert.ok(g.app, JSON.stringify(g));
    assert.equal(g.peer, vip);
    assert.equal(g.peerPort, 53);
    assert.equal(g.from, vip);
  }
  assert.equal(lb.maps.reverseCount(), 0);
});

test('connected UDP whose backend is removed: the socket is ended (bpf_sock_destroy from iter/udp), the application connects again and reaches a live backend', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2);
  const vip = `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  lb.apply(service(vip, pods, 4));
  const log = join(tb.dir, 'udp-follow.log');
  const child = tb.spawnInPod(cl, process.execPath, [CLIENT, 'udp-follow', vip, '53'], { log });
  t.after(() => child.kill('SIGKILL'));
  const lines = () =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { app?: string; err?: string; connected?: string });
  const until = async (pred: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(lines())}`);
      await sleep(20);
    }
  };
  await until(() => lines().filter((l) => l.app).length >= 3, 'three replies');
  const first = lines().find((l) => l.app)!.app!;
  assert.ok(
    lines().every((l) => !l.app || l.app === first),
    'one backend for the connected socket',
  );
  assert.equal(lines()[0]!.connected, vip, 'getpeername: the VIP');
  const live = pods.find((p) => p.name !== first)!;
  const r = lb.apply(service(vip, [live], 4), { netns: [cl.netns] });
  assert.equal(r.destroyed, 1, 'the connected UDP socket to the removed backend was ended');
  await until(() => lines().filter((l) => l.app === live.name).length >= 3, `replies from ${live.name}`);
  const all = lines();
  const errAt = all.findIndex((l) => l.err);
  assert.ok(errAt > 0, JSON.stringify(all));
  assert.equal(all[errAt]!.err, 'ECONNABORTED', 'the application learns its socket was ended');
  const after = all.slice(errAt + 1).filter((l) => l.app);
  assert.ok(after.length >= 3);
  assert.ok(
    after.every((l) => l.app === live.name),
    `after reconnecting only the live backend answers: ${JSON.stringify(after)}`,
  );
  assert.equal(all.filter((l) => l.err).length, 1, 'ended once, then the new socket stays up');
});

test('IPv6: TCP and UDP to an IPv6 VIP, balanced over IPv6 backends, the VIP seen by getpeername and recvmsg', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2, true);
  const vip = `fd00:6b62:7066:ffff::${randomInt(1, 0xffff).toString(16)}`;
  lb.apply(service(vip, pods, 6));
  const tcp = await client(tb, cl, 'tcp', vip, 80, 4);
  assert.deepEqual(
    tcp.map((g) => g.app),
    [tcp[0]!.app, tcp[1]!.app, tcp[0]!.app, tcp[1]!.app],
  );
  assert.notEqual(tcp[0]!.app, tcp[1]!.app);
  for (const g of tcp) assert.equal(g.peer, vip, JSON.stringify(g));
  const udp = await client(tb, cl, 'udp', vip, 53, 4);
  assert.deepEqual(new Set(udp.map((g) => g.app)), new Set(['pod0', 'pod1']), JSON.stringify(udp));
  for (const g of udp) assert.equal(g.from, vip);
  const o = lb.maps.origins().find((x) => x.vip === vip);
  assert.equal(o?.family, 6);
  assert.ok(pods.some((p) => p.ip6 === o?.backend));
});
