// mesh-accel and service-lb on one node, both on the pods' parent cgroup, mesh-accel attached
// first (cgroup programs run in attach order): a meshed pod's connection to a service goes to its
// sidecar (which sees the VIP as the original destination and connects to it; that connection is
// the sidecar's, and socket LB balances it), an unmeshed pod's connection is balanced at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runMesh } from '../../testbed/mesh/mesh-node.js';
import { Testbed } from '../../testbed/mesh/testbed.js';
import { runServiceLb } from '../../testbed/service-lb/svclb-node.js';

test('mesh-accel + service-lb on one node: meshed pods reach services through their sidecar, unmeshed pods are balanced directly', async (t) => {
  const tb = await Testbed.create(t, 'kbpfslbm');
  const mesh = await runMesh(t, tb);
  const lb = await runServiceLb(t, tb, { agent: { ta: mesh.ta } });
  const b0 = await tb.addPod({ sidecar: false });
  const b1 = await tb.addPod({ sidecar: false });
  const meshed = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const plain = await tb.addPod({ sidecar: false });
  const vip = '10.96.200.9';
  lb.apply({
    services: [
      { name: 'web', vip, ports: [{ port: 80 }], policy: 'round-robin', backends: [{ ip: b0.ip }, { ip: b1.ip }] },
    ],
  });

  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await tb.get(meshed, `http://${vip}/`);
    assert.ok(r.ok, `${r.code} ${r.err}`);
    // the sidecar saw the VIP (mesh-accel ran first), and its own connection was balanced
    assert.match(
      r.body,
      new RegExp(`^app=(pod0|pod1) port=80 outbound=${vip.replace(/\./g, '\\.')}:80 inbound=$`, 'm'),
    );
    seen.add(/app=(\S+)/.exec(r.body)![1]!);
  }
  assert.deepEqual(seen, new Set(['pod0', 'pod1']), 'round-robin over the sidecar connections');
  const direct = await tb.get(plain, `http://${vip}/`);
  assert.ok(direct.ok, direct.err);
  assert.match(direct.body, /^app=pod[01] port=80 outbound= inbound=$/m, 'no sidecar on the unmeshed pod');
  assert.ok(mesh.maps.stats().connect_out >= 4n);
  const origins = lb.maps.origins().filter((o) => o.vip === vip);
  assert.equal(origins.length, 5, 'four sidecar connections and one of the unmeshed pod');
});
