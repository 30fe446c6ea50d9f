// mesh-accel and service-lb on one node, both on the pods' parent cgroup, mesh-accel's programs
// running first on every hook both use (service-lb's kbpf.yaml: programs.svc_*.order after mesh):
// a meshed pod's connection to a service goes to its sidecar (which sees the VIP as the original
// destination and connects to it; that connection is the sidecar's, and socket LB balances it), an
// unmeshed pod's connection is balanced at once. Whichever starts first: service-lb's own order
// places it after mesh-accel when mesh-accel runs first (even with another program after it), and
// `run --order` places mesh-accel before service-lb when service-lb runs first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MESH_APP_DIR, type MeshInstance, runMesh } from '../../testbed/mesh/mesh-node.js';
import { Testbed } from '../../testbed/mesh/testbed.js';
import { runServiceLb, type ServiceLbInstance } from '../../testbed/service-lb/svclb-node.js';

const ORDER_PKG = fileURLToPath(new URL('../../../test/agent/packages/order_rewrite/', import.meta.url));
const SHARED = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6', 'recvmsg4', 'recvmsg6', 'getpeername4', 'getpeername6'];

/** The instances' programs on each of the shared cgroup hooks, in run order (from inspect). */
function hookOrder(lb: ServiceLbInstance, hook: string): string[] {
  const h = lb.ta.agent.inspect(lb.name).hooks?.find((x) => x.attach.startsWith(`cgroup/${hook} `));
  assert.ok(
    h,
    `service-lb has no ${hook} hook in inspect: ${JSON.stringify(lb.ta.agent.inspect(lb.name).hooks?.map((x) => x.attach))}`,
  );
  return h.programs.map((p) => p.instance ?? p.name ?? '?');
}

async function traffic(tb: Testbed, mesh: MeshInstance, lb: ServiceLbInstance, vip: string): Promise<void> {
  const b0 = await tb.addPod({ sidecar: false });
  const b1 = await tb.addPod({ sidecar: false });
  const meshed = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const plain = await tb.addPod({ sidecar: false });
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
      new RegExp(`^app=(${b0.name}|${b1.name}) port=80 outbound=${vip.replace(/\./g, '\\.')}:80 inbound=$`, 'm'),
    );
    seen.add(/app=(\S+)/.exec(r.body)![1]!);
  }
  assert.deepEqual(seen, new Set([b0.name, b1.name]), 'round-robin over the sidecar connections');
  const direct = await tb.get(plain, `http://${vip}/`);
  assert.ok(direct.ok, direct.err);
  assert.match(direct.body, /^app=pod\d+ port=80 outbound= inbound=$/m, 'no sidecar on the unmeshed pod');
  assert.ok(mesh.maps.stats().connect_out >= 4n);
  const origins = lb.maps.origins().filter((o) => o.vip === vip);
  assert.equal(origins.length, 5, 'four sidecar connections and one of the unmeshed pod');
}

test('mesh-accel first: service-lb declares its place right after mesh-accel on every shared hook (before a program attached after mesh-accel); both pod kinds are served', async (t) => {
  const tb = await Testbed.create(t, 'kbpfslbm');
  const mesh = await runMesh(t, tb);
  // another instance's connect4 program after mesh-accel's (it rewrites a port nobody uses)
  const other = await mesh.ta.build(ORDER_PKG, 'order-rewrite:coexist');
  await mesh.ta.agent.run({
    image: other,
    name: 'other',
    config: { from_port: '9', to_port: '10' },
    attach: { cgroup: tb.parentCgroup },
  });
  t.after(() => mesh.ta.agent.remove('other', { force: true }).catch(() => {}));
  const lb = await runServiceLb(t, tb, { agent: { ta: mesh.ta } });
  assert.deepEqual(
    hookOrder(lb, 'connect4'),
    ['mesh', 'svclb', 'other'],
    'svclb goes right after mesh, not at the end',
  );
  for (const h of [...SHARED, 'sock_ops'])
    assert.deepEqual(
      hookOrder(lb, h).filter((n) => n !== 'other'),
      ['mesh', 'svclb'],
      h,
    );
  await traffic(tb, mesh, lb, '10.96.200.9');
});

test('service-lb first: run --order puts mesh-accel before it on every shared hook; both pod kinds are served', async (t) => {
  const tb = await Testbed.create(t, 'kbpfslbm');
  const lb = await runServiceLb(t, tb);
  const order = Object.fromEntries([...SHARED, 'sockops'].map((h) => [`mesh_${h}`, 'before:svclb']));
  const mesh = await runMesh(t, tb, 'mesh', { ta: lb.ta, ref: await lb.ta.build(MESH_APP_DIR) }, undefined, order);
  for (const h of [...SHARED, 'sock_ops']) assert.deepEqual(hookOrder(lb, h), ['mesh', 'svclb'], h);
  await traffic(tb, mesh, lb, '10.96.200.10');
});
