// service-lb on a real kernel: pods in network namespaces (testbed/mesh/testbed.ts, HAProxy apps
// answering "app=podN"), the package run by a real agent on the pods' parent cgroup, real
// sockets from a client pod to service VIPs.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { run, stillListed } from '../../testbed/netns.js';
import { client, holdConnections, runServiceLb } from '../../testbed/service-lb/svclb-node.js';

function vip(): string {
  return `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}

async function bed(t: Parameters<typeof Testbed.create>[0], backends: number) {
  const tb = await Testbed.create(t, 'kbpfslb');
  const lb = await runServiceLb(t, tb);
  const pods: Pod[] = [];
  for (let i = 0; i < backends; i++) pods.push(await tb.addPod({ sidecar: false }));
  const cl = await tb.addPod({ sidecar: false });
  return { tb, lb, pods, cl };
}

function svc(
  name: string,
  address: string,
  pods: Pod[],
  extra: Record<string, unknown> = {},
  bextra: Record<string, unknown>[] = [],
) {
  return {
    name,
    vip: address,
    ports: [{ port: 80 }],
    backends: pods.map((p, i) => ({ ip: p.ip, ...bextra[i] })),
    ...extra,
  };
}

test('round-robin cycles over the backends, once per connection; getpeername shows the VIP; svc_origin records each translation', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 3);
  const v = vip();
  lb.apply({ services: [svc('web', v, pods, { policy: 'round-robin' })] });
  const got = await client(tb, cl, 'tcp', v, 80, 9);
  for (const g of got) assert.equal(g.err, undefined, JSON.stringify(got));
  const apps = got.map((g) => g.app);
  assert.deepEqual(new Set(apps.slice(0, 3)), new Set(['pod0', 'pod1', 'pod2']), apps.join(' '));
  for (let i = 3; i < 9; i++) assert.equal(apps[i], apps[i - 3], `cycle: ${apps.join(' ')}`);
  for (const g of got) {
    assert.equal(g.peer, v, 'getpeername answers the VIP');
    assert.equal(g.peerPort, 80);
  }
  const origins = lb.maps.origins().filter((o) => o.vip === v);
  assert.ok(origins.length >= 9, `svc_origin entries: ${origins.length}`);
  for (const o of origins) {
    assert.equal(o.vipPort, 80);
    assert.equal(o.family, 4);
    assert.equal(o.policy, 'round-robin');
    assert.ok(pods.some((p) => p.ip === o.backend) && o.backendPort === 80, `${o.backend}:${o.backendPort}`);
  }
  assert.ok(lb.maps.stats().translated >= 9n);
});

test('no backend: connect fails with ECONNREFUSED, never reaching the VIP; rm leaves nothing and traffic falls back to plain routing', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 1);
  const v = vip();
  lb.apply({ services: [svc('empty', v, [])] });
  const [r] = await client(tb, cl, 'tcp', v, 80);
  assert.equal(r!.err, 'ECONNREFUSED');
  assert.equal(lb.maps.stats().no_backend, 1n);
  lb.apply({ services: [svc('empty', v, pods)] });
  const [ok] = await client(tb, cl, 'tcp', v, 80);
  assert.equal(ok!.app, 'pod0');

  const ids = lb.ids();
  assert.ok(ids.prog.length >= 10 && ids.link.length >= 10, JSON.stringify(ids));
  await lb.stop();
  const left = await stillListed(ids);
  assert.deepEqual(left, { prog: [], map: [], link: [] });
  // plain routing again: the pod has no route to the VIP, the backend is reached directly
  const [after] = await client(tb, cl, 'tcp', v, 80);
  assert.equal(after!.err, 'ENETUNREACH');
  const [direct] = await client(tb, cl, 'tcp', pods[0]!.ip, 80);
  assert.equal(direct!.app, 'pod0');
});

test('locality strict never leaves the zone and fails when the zone is empty', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 3);
  const v = vip();
  const node = { name: 'n1', zone: 'z1', region: 'r1' };
  const zones = [
    { node: 'n2', zone: 'z1' },
    { node: 'n3', zone: 'z2', region: 'r1' },
    { node: 'n1', zone: 'z2' },
  ];
  // pod2 is on this node's name but in another zone: strict (zone scope) accepts only pod0
  lb.apply({
    node,
    services: [svc('strict', v, pods, { locality: 'strict' }, [{ ...zones[0] }, { ...zones[1] }, { priority: 3 }])],
  });
  const got = await client(tb, cl, 'tcp', v, 80, 12);
  assert.deepEqual(new Set(got.map((g) => g.app)), new Set(['pod0']), JSON.stringify(got));
  // the zone's only backend leaves: nothing else is acceptable
  lb.apply({
    node,
    services: [svc('strict', v, pods.slice(1), { locality: 'strict' }, [{ ...zones[1] }, { priority: 3 }])],
  });
  const [r] = await client(tb, cl, 'tcp', v, 80);
  assert.equal(r!.err, 'ECONNREFUSED');
});

test('locality failover moves to the next level only when the current one is empty', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 3);
  const v = vip();
  const spec = (ps: Pod[], prio: number[]) =>
    svc(
      'fo',
      v,
      ps,
      { locality: 'failover', policy: 'round-robin' },
      prio.map((p) => ({ priority: p })),
    );
  // levels 1 (pod0, pod1) and 4 (pod2); level 0 is empty
  lb.apply({ services: [spec(pods, [1, 1, 4])] });
  const first = await client(tb, cl, 'tcp', v, 80, 8);
  assert.deepEqual(new Set(first.map((g) => g.app)), new Set(['pod0', 'pod1']), JSON.stringify(first));
  assert.ok(lb.maps.origins().every((o) => o.vip !== v || o.level === 1));
  lb.apply({ services: [spec(pods.slice(1), [1, 4])] });
  const one = await client(tb, cl, 'tcp', v, 80, 4);
  assert.deepEqual(new Set(one.map((g) => g.app)), new Set(['pod1']), 'level 1 still has pod1');
  lb.apply({ services: [spec(pods.slice(2), [4])] });
  const moved = await client(tb, cl, 'tcp', v, 80, 4);
  assert.deepEqual(new Set(moved.map((g) => g.app)), new Set(['pod2']));
});

test('least-connections (sockops counts established connections per backend) prefers the idle backend', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2);
  const v = vip();
  lb.apply({ services: [svc('lc', v, pods, { policy: 'least-conn' })] });
  const held = await holdConnections(tb, cl, v, 80, 1);
  t.after(() => held.close());
  const busy = held.lines[0]!.app!;
  const idle = busy === 'pod0' ? 'pod1' : 'pod0';
  const busyIp = pods[busy === 'pod0' ? 0 : 1]!.ip;
  assert.equal(lb.maps.connections().get(`${busyIp}:80`), 1);
  const next = await client(tb, cl, 'tcp', v, 80, 6);
  assert.deepEqual(new Set(next.map((g) => g.app)), new Set([idle]), JSON.stringify(next));
  // two held on the idle one: now the first is the less loaded
  const held2 = await holdConnections(tb, cl, v, 80, 2);
  t.after(() => held2.close());
  assert.equal(held2.lines[0]!.app, idle, 'idle (0) before busy (1)');
  await held.close();
  await held2.close();
  await sleep(200);
  const s = lb.maps.stats();
  assert.equal(s.conn_open, s.conn_close, `every counted connection was uncounted: ${s.conn_open} ${s.conn_close}`);
  for (const [k, n] of lb.maps.connections()) assert.equal(n, 0, k);
});

test('weighted and random policies use every backend, weighted in proportion', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2);
  const v = vip();
  lb.apply({ services: [svc('w', v, pods, { policy: 'weighted' }, [{ weight: 3 }, { weight: 1 }])] });
  const got = await client(tb, cl, 'tcp', v, 80, 120);
  const n0 = got.filter((g) => g.app === 'pod0').length;
  assert.equal(got.filter((g) => g.app === 'pod0' || g.app === 'pod1').length, 120);
  assert.ok(n0 > 70 && n0 < 108, `pod0 (weight 3) got ${n0} of 120`);
  lb.apply({ services: [svc('w', v, pods, { policy: 'weighted' }, [{ weight: 0 }, { weight: 1 }])] });
  const only = await client(tb, cl, 'tcp', v, 80, 10);
  assert.deepEqual(new Set(only.map((g) => g.app)), new Set(['pod1']), 'weight 0 is never chosen');
  lb.apply({ services: [svc('w', v, pods, { policy: 'random' })] });
  const rnd = await client(tb, cl, 'tcp', v, 80, 30);
  assert.deepEqual(new Set(rnd.map((g) => g.app)), new Set(['pod0', 'pod1']));
});

test('session affinity: a client keeps its backend, and chooses again once the timeout passed', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 3);
  const v = vip();
  lb.apply({ services: [svc('aff', v, pods, { policy: 'round-robin', affinity: { timeoutSeconds: 1 } })] });
  const got = await client(tb, cl, 'tcp', v, 80, 8);
  assert.equal(new Set(got.map((g) => g.app)).size, 1, JSON.stringify(got));
  assert.ok(lb.maps.stats().affinity_hit >= 7n);
  await sleep(1300);
  const before = new Set(lb.maps.origins().map((o) => o.cookie));
  await client(tb, cl, 'tcp', v, 80, 1);
  const fresh = lb.maps.origins().filter((o) => !before.has(o.cookie) && o.vip === v);
  assert.equal(fresh.length, 1);
  assert.equal(fresh[0]!.affinityHit, false, 'expired: chosen by the policy again');
  // another client pod has its own affinity
  const other = await tb.addPod({ sidecar: false });
  const o = await client(tb, other, 'tcp', v, 80, 3);
  assert.equal(new Set(o.map((g) => g.app)).size, 1);
});

test('service updates are atomic: under churn between backend sets of different sizes every connection succeeds to a backend of one set', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 4);
  const v = vip();
  const a = svc('churn', v, pods.slice(0, 1), { policy: 'round-robin' });
  const b = svc('churn', v, pods.slice(1, 4), { policy: 'round-robin' });
  lb.apply({ services: [a] });
  const run = client(tb, cl, 'tcp', v, 80, 300);
  let flips = 0;
  let done = false;
  void run.finally(() => {
    done = true;
  });
  while (!done) {
    lb.apply({ services: [flips % 2 ? a : b] }, { endRemoved: false });
    flips++;
    await sleep(2);
  }
  const got = await run;
  assert.ok(flips > 20, `flips: ${flips}`);
  const bad = got.filter((g) => !g.app || !pods.some((p) => p.name === g.app));
  assert.deepEqual(bad, [], `${bad.length} of ${got.length} failed`);
  assert.ok(new Set(got.map((g) => g.app)).size >= 3, 'both sets were used');
  assert.equal(lb.maps.list().length, 1);
});

test('a backend leaving a service ends its established connections (bpf_sock_destroy from the iter/tcp program); the others stay', async (t) => {
  const { tb, lb, pods, cl } = await bed(t, 2);
  const v = vip();
  lb.apply({ services: [svc('rm', v, pods, { policy: 'round-robin' })] });
  const held = await holdConnections(tb, cl, v, 80, 2);
  t.after(() => held.close());
  assert.deepEqual(new Set(held.lines.map((l) => l.app)), new Set(['pod0', 'pod1']));
  const established = async (ip: string) => {
    const r = await run('ip', ['netns', 'exec', cl.netns, 'ss', '-Htn', 'state', 'established']);
    return r.stdout.split('\n').filter((l) => l.includes(`${ip}:80`)).length;
  };
  assert.equal(await established(pods[0]!.ip), 1);
  const r = lb.apply({ services: [svc('rm', v, pods.slice(1), { policy: 'round-robin' })] }, { netns: [cl.netns] });
  assert.equal(r.destroyed, 1, 'the one connection to pod0 was ended');
  assert.equal(await established(pods[0]!.ip), 0);
  assert.equal(await established(pods[1]!.ip), 1, 'the connection to the remaining backend is untouched');
  const next = await client(tb, cl, 'tcp', v, 80, 3);
  assert.deepEqual(new Set(next.map((g) => g.app)), new Set(['pod1']));
});
