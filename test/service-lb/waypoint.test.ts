// A service with a waypoint on a real kernel: the client's connection to the VIP goes to the
// waypoint (the test bed's proxy, testbed/service-lb/waypoint.ts), whose first bytes are Kmesh's TLV
// with the original destination, written by service-lb's sk_msg program; the proxy strips it and
// connects to the VIP itself, and that connection (made where the waypoint listens) is balanced to
// a backend, which answers the client.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { client, runServiceLb, startWaypoint } from '../../testbed/service-lb/svclb-node.js';

const WP_PORT = 15019;

/** The TLV bytes Kmesh's format gives for an original destination (address bytes, port). */
function expectedTlv(addr: number[], port: number): string {
  const b = Buffer.alloc(1 + 4 + addr.length + 2 + 5);
  b[0] = 0x01;
  b.writeUInt32BE(addr.length + 2, 1);
  Buffer.from(addr).copy(b, 5);
  b.writeUInt16BE(port, 5 + addr.length);
  b[7 + addr.length] = 0xfe; // then a length of 0
  return b.toString('hex');
}

async function bed(t: Parameters<typeof Testbed.create>[0], ipv6: boolean) {
  const tb = await Testbed.create(t, 'kbpfslbw', { ipv6 });
  const lb = await runServiceLb(t, tb);
  const pods: Pod[] = [];
  for (let i = 0; i < 2; i++) pods.push(await tb.addPod({ sidecar: false }));
  const wp = await tb.addPod({ sidecar: false });
  const proxy = await startWaypoint(tb, wp, WP_PORT);
  const cl = await tb.addPod({ sidecar: false });
  return { tb, lb, pods, wp, proxy, cl };
}

test('waypoint (IPv4): connections go to the waypoint with the original destination as a TLV, and reach a backend through it', async (t) => {
  const { tb, lb, pods, wp, proxy, cl } = await bed(t, false);
  const vip = `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  lb.apply({
    services: [
      {
        name: 'wp',
        vip,
        ports: [{ port: 80 }],
        policy: 'round-robin',
        waypoint: `${wp.ip}:${WP_PORT}`,
        backends: pods.map((p) => ({ ip: p.ip })),
      },
    ],
  });
  assert.equal(lb.maps.list()[0]!.waypoint, `${wp.ip}:${WP_PORT}`);
  const got = await client(tb, cl, 'tcp', vip, 80, 4);
  for (const g of got) {
    assert.equal(g.err, undefined, JSON.stringify(got));
    assert.equal(g.peer, vip, 'getpeername still answers the VIP');
  }
  assert.deepEqual(new Set(got.map((g) => g.app)), new Set(['pod0', 'pod1']), 'the waypoint reached both backends');
  const lines = proxy.lines();
  assert.equal(lines.length, 4, JSON.stringify(lines));
  const tlv = expectedTlv(vip.split('.').map(Number), 80);
  assert.equal(
    tlv,
    `01000000060a60${vip
      .split('.')
      .slice(2)
      .map((x) => Number(x).toString(16).padStart(2, '0'))
      .join('')}0050fe00000000`,
  );
  for (const l of lines) {
    assert.equal(l.err, undefined, JSON.stringify(l));
    assert.equal(l.tlv, tlv, 'the first bytes are exactly the TLV');
    assert.equal(l.dst, vip);
    assert.equal(l.dstPort, 80);
  }
  const s = lb.maps.stats();
  assert.equal(s.waypoint, 4n, 'the clients went to the waypoint');
  assert.equal(s.tlv, 4n, 'one TLV per connection, on its first message only');
  assert.equal(s.waypoint_self, 4n, "the waypoint's own connections were balanced");
  assert.equal(s.translated, 4n);
  // the flow record of a client's connection names the waypoint as where it went
  const toWp = lb.maps.origins().filter((o) => o.backend === wp.ip);
  assert.equal(toWp.length, 4);
  for (const o of toWp) assert.equal(o.level, 255);
});

test('waypoint (IPv6): the TLV carries the 16-byte address', async (t) => {
  const { tb, lb, pods, wp, proxy, cl } = await bed(t, true);
  const vip = `fd00:96::${randomInt(1, 0xffff).toString(16)}`;
  lb.apply({
    services: [
      {
        name: 'wp6',
        vip,
        ports: [{ port: 80 }],
        waypoint: `[${wp.ip6}]:${WP_PORT}`,
        backends: pods.map((p) => ({ ip: p.ip6 })),
      },
    ],
  });
  const got = await client(tb, cl, 'tcp', vip, 80, 2);
  for (const g of got) assert.ok(g.app === 'pod0' || g.app === 'pod1', JSON.stringify(got));
  const lines = proxy.lines();
  assert.equal(lines.length, 2, JSON.stringify(lines));
  const words = vip.split('::');
  const head = words[0]!.split(':');
  const tail = words[1]!.split(':');
  const groups = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail].map((g) =>
    Number.parseInt(g, 16),
  );
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  for (const l of lines) {
    assert.equal(l.tlv, expectedTlv(bytes, 80));
    assert.equal(l.tlv!.length, 28 * 2);
  }
});
