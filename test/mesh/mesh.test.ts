// mesh-accel on a real kernel with real HAProxy sidecars, run through the real agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed, APP_PORT, APP_PORT_2 } from './testbed.js';
import { runMesh } from './mesh-node.js';
import { stillListed } from '../helpers/netns.js';

test('app to app through both sidecars on the eBPF path: no iptables rule, sidecars see the original destination, bytes go through the sockhash', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  assert.deepEqual(await tb.natRules(a), []);
  assert.deepEqual(await tb.natRules(b), []);

  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://${b.ip}:${APP_PORT}/`);
  assert.ok(r.ok, `request failed: ${r.code} ${r.err}`);
  // A's sidecar (outbound) and B's sidecar (inbound) both saw B's address as the destination
  assert.match(r.body, new RegExp(`^app=pod1 port=${APP_PORT} outbound=${b.ip}:${APP_PORT} inbound=${b.ip}:${APP_PORT}$`, 'm'));
  const s = mesh.maps.stats();
  assert.ok(s.connect_out > before.connect_out, 'app connection went to the local sidecar');
  assert.ok(s.connect_peer > before.connect_peer, 'sidecar connection went to the peer inbound port');
  assert.ok(s.origdst - before.origdst >= 2n, `both sidecars got SO_ORIGINAL_DST from the map (${s.origdst - before.origdst})`);
  assert.ok(s.msg_redirect_peer > before.msg_redirect_peer, 'sidecar-to-sidecar bytes went through the sockhash redirect');
  assert.ok(s.msg_redirect - s.msg_redirect_peer > before.msg_redirect - before.msg_redirect_peer, 'app<->sidecar bytes went through the sockhash redirect');
  assert.ok(s.sock_added - before.sock_added >= 6n, `sockets in the sockhash: ${s.sock_added - before.sock_added}`);

  // many requests, each on a new connection: all go through, none is dropped
  for (let i = 0; i < 20; i++) {
    const x = await tb.get(a, `http://${b.ip}/r${i}`);
    assert.ok(x.ok && x.body.includes(`inbound=${b.ip}:80`), `request ${i}: ${x.code} ${x.err}`);
  }
  // and back, B to A
  const back = await tb.get(b, `http://${a.ip}/`);
  assert.match(back.body, new RegExp(`app=pod0 port=80 outbound=${a.ip}:80 inbound=${a.ip}:80`));
});

test('the first request to a newly declared pod succeeds, both ways', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const c = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  // no warm-up, no retry: the very first connection from and to the new pod
  const first = await tb.get(c, `http://${a.ip}/`);
  assert.ok(first.ok, `${first.code} ${first.err}`);
  assert.match(first.body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));
  const d = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const toNew = await tb.get(a, `http://${d.ip}/`);
  assert.ok(toNew.ok, `${toNew.code} ${toNew.err}`);
  assert.match(toNew.body, new RegExp(`app=pod2 port=80 outbound=${d.ip}:80 inbound=${d.ip}:80`));
});

test('excluded ports and CIDRs bypass the sidecar; include lists limit what is captured', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { excludeOutboundPorts: [APP_PORT_2] }) });
  const c = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { excludeOutboundCidrs: [`${b.ip}/32`] }) });
  const d = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { includeOutboundCidrs: [`${tb.subnet}.128/25`] }) });

  const meshed = await tb.get(a, `http://${b.ip}:${APP_PORT}/`);
  assert.match(meshed.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const excludedPort = await tb.get(a, `http://${b.ip}:${APP_PORT_2}/`);
  assert.ok(excludedPort.ok, excludedPort.err);
  assert.match(excludedPort.body, new RegExp(`^app=pod0 port=${APP_PORT_2} outbound= inbound=$`, 'm'));

  const excludedCidr = await tb.get(c, `http://${b.ip}/`);
  assert.match(excludedCidr.body, /^app=pod0 port=80 outbound= inbound=$/m);
  const notExcluded = await tb.get(c, `http://${a.ip}/`);
  assert.match(notExcluded.body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));

  // d only captures 10.x.y.128/25: the pods (.10-.13) are outside it
  const notIncluded = await tb.get(d, `http://${b.ip}/`);
  assert.match(notIncluded.body, /^app=pod0 port=80 outbound= inbound=$/m);
  assert.ok(mesh.maps.stats().connect_excluded >= 3n);
});

test('rm of the instance restores direct traffic at once and leaves no program, map or link', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.match(r.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const ids = mesh.ids();
  assert.ok(ids.prog.length >= 8 && ids.map.length >= 6 && ids.link.length >= 8, `pinned: ${JSON.stringify(ids)}`);

  await mesh.remove();
  const direct = await tb.get(a, `http://${b.ip}/`);
  assert.ok(direct.ok, direct.err);
  assert.match(direct.body, /^app=pod1 port=80 outbound= inbound=$/m);
  assert.deepEqual(await stillListed(ids), { prog: [], map: [], link: [] });
});
