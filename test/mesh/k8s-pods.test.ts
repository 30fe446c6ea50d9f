// mesh-accel in cluster mode: pods learnt from the (test) Kubernetes API server through
// @kubernetes/client-node, declared into a real instance's maps, with real test bed pods.
//
// How a test pod maps to its cgroup: as kubelet's cgroupfs layout does, by uid — the Pod object
// is created first (the API server gives it its uid), then the test bed makes the pod's cgroup
// as <parent cgroup>/pod<uid> (kubelet's <kubepods>/[qos/]pod<uid>) and the watcher finds it with
// kubeletCgroupResolver([parent cgroup]). The pod's IP reaches the API server the way kubelet
// reports it, in status.podIP(s), once the pod's network namespace has its address; only then,
// and once the watcher has declared it, does anything start in the pod.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  kubeletCgroupResolver,
  MeshPodWatcher,
  meshOfPod,
  type PodObject,
  parsePorts,
  podSettingsOf,
} from '../../apps/mesh-accel/k8s-pods.js';
import { cgroupId, ipNet } from '../../apps/mesh-accel/mesh.js';
import { connect, type Kube } from '../../src/k8s/kube.js';
import { TestApiServer } from '../../testbed/apiserver/server.js';
import { type MeshInstance, runMesh } from '../../testbed/mesh/mesh-node.js';
import {
  APP_PORT,
  APP_PORT_2,
  type Cleanup,
  type MeshModeName,
  type Pod,
  Testbed,
  type TestbedOptions,
} from '../../testbed/mesh/testbed.js';

const NODE = 'node-1';
const NS = 'shop';

async function apiServer(t: Cleanup): Promise<Kube> {
  const server = new TestApiServer({ bookmarkIntervalMs: 500 }); // Pods are a built-in kind (spec.nodeName selectable)
  await server.start();
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-mesh-k8s-'));
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const kube = connect(server.writeKubeconfig(join(dir, 'kubeconfig')));
  await kube.core.createNamespace({ body: { metadata: { name: NS } } });
  return kube;
}

interface PodDef {
  name: string;
  annotations?: Record<string, string>;
  sidecarContainer?: string;
  mode?: MeshModeName;
}

/** Creates the Pod object, then the test bed pod (cgroup pod<uid>), reporting its IP like kubelet. */
async function schedulePod(
  kube: Kube,
  tb: Testbed,
  w: MeshPodWatcher,
  def: PodDef,
): Promise<{ pod: Pod; uid: string }> {
  const containers = [
    { name: 'app', image: 'app' },
    ...(def.sidecarContainer ? [{ name: def.sidecarContainer, image: 'proxy' }] : []),
  ];
  const created = await kube.core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { name: def.name, annotations: def.annotations }, spec: { nodeName: NODE, containers } },
  });
  const uid = created.metadata!.uid!;
  const meshed = meshOfPod(created as PodObject) !== null;
  const pod = await tb.addPod({
    mode: def.mode ?? 'istio',
    cgroupName: `pod${uid}`,
    beforeStart: async (p) => {
      const cur = await kube.core.readNamespacedPod({ name: def.name, namespace: NS });
      // what kubelet reports: the pod's addresses, IPv4 first (an IPv6-only pod has only its IPv6 one)
      const ips = [...(p.ipv6Only ? [] : [p.ip]), ...(p.ip6 ? [p.ip6] : [])];
      await kube.core.replaceNamespacedPodStatus({
        name: def.name,
        namespace: NS,
        body: { ...cur, status: { phase: 'Pending', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } },
      });
      // the agent's promise: a meshed pod is declared before its first connection
      if (meshed) await w.until((x) => x.declared.has(`${NS}/${def.name}`), 10_000, `${NS}/${def.name} declared`);
    },
  });
  return { pod, uid };
}

/** A node in cluster mode: the test API server, a test bed node, mesh-accel on it and a pod watcher. */
async function clusterNode(
  t: Cleanup,
  opts: TestbedOptions = {},
): Promise<{ kube: Kube; tb: Testbed; mesh: MeshInstance; w: MeshPodWatcher }> {
  const kube = await apiServer(t);
  const tb = await Testbed.create(t, 'kbpfmesh', opts);
  const mesh = await runMesh(t, tb);
  const w = new MeshPodWatcher({
    kube,
    nodeName: NODE,
    maps: mesh.maps,
    resolveCgroup: kubeletCgroupResolver([tb.parentCgroup]),
    retryMs: 50,
  });
  await w.start();
  t.after(() => w.stop());
  return { kube, tb, mesh, w };
}

test('cluster mode: meshed pods from the API server are declared before their first request; annotations exclude ports; deleting a pod unmeshes it', async (t) => {
  const { kube, tb, mesh, w } = await clusterNode(t);

  // a pod on another node and a pod without a sidecar are never declared
  await kube.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'elsewhere', annotations: { 'sidecar.istio.io/status': '{}' } },
      spec: { nodeName: 'node-2', containers: [{ name: 'app', image: 'app' }] },
      status: { podIP: '10.99.0.1' },
    },
  });

  // b: meshed by its istio-proxy container alone
  const { pod: b } = await schedulePod(kube, tb, w, { name: 'b', sidecarContainer: 'istio-proxy' });
  // a: meshed by istio's status annotation, with istio's exclude annotations
  const { pod: a, uid: aUid } = await schedulePod(kube, tb, w, {
    name: 'a',
    annotations: {
      'sidecar.istio.io/status': '{"initContainers":["istio-init"],"containers":["istio-proxy"]}',
      'traffic.sidecar.istio.io/excludeOutboundPorts': `${APP_PORT_2}`,
      'traffic.sidecar.istio.io/excludeOutboundIPRanges': '192.168.250.0/24',
      'traffic.sidecar.istio.io/excludeInboundPorts': '9090',
    },
  });
  const { pod: plain } = await schedulePod(kube, tb, w, { name: 'plain' });
  assert.deepEqual([...w.declared.keys()].sort(), [`${NS}/a`, `${NS}/b`]);
  assert.equal(w.declared.get(`${NS}/a`)!.cgroup, join(tb.parentCgroup, `pod${aUid}`));

  // what reached the kernel: a's settings under its IP and its cgroup id
  const pods = new Map(mesh.maps.pods().map((p) => [p.ip, p.settings]));
  assert.deepEqual([...pods.keys()].sort(), [a.ip, b.ip].sort());
  const sa = pods.get(a.ip)!;
  assert.equal((sa.exclude_out_ports as number[])[0], APP_PORT_2);
  assert.equal((sa.exclude_in_ports as number[])[0], 9090);
  assert.equal((sa.exclude_out_cidrs as { addr: number }[])[0]!.addr, ipNet('192.168.250.0'));
  assert.equal(sa.dns_port, 0, 'istio without ISTIO_META_DNS_CAPTURE: no DNS capture');
  assert.ok(mesh.maps.hasCgroup(cgroupId(a.cgroup)));

  // the very first request of the new pod goes through both sidecars
  const first = await tb.get(a, `http://${b.ip}:${APP_PORT}/`);
  assert.ok(first.ok, `${first.code} ${first.err}`);
  assert.match(
    first.body,
    new RegExp(`^app=pod0 port=${APP_PORT} outbound=${b.ip}:${APP_PORT} inbound=${b.ip}:${APP_PORT}$`, 'm'),
  );
  // and the other way, b's first request to a
  const back = await tb.get(b, `http://${a.ip}/`);
  assert.match(back.body, new RegExp(`^app=pod1 port=80 outbound=${a.ip}:80 inbound=${a.ip}:80$`, 'm'));
  // the port excluded by a's annotation bypasses a's sidecar
  const excluded = await tb.get(a, `http://${b.ip}:${APP_PORT_2}/`);
  assert.ok(excluded.ok, excluded.err);
  assert.match(excluded.body, new RegExp(`^app=pod0 port=${APP_PORT_2} outbound= inbound=$`, 'm'));
  // the pod without a sidecar is not captured
  const fromPlain = await tb.get(plain, `http://${b.ip}/`);
  assert.match(fromPlain.body, /^app=pod0 port=80 outbound= inbound=$/m);

  // deleting the pod takes it out of the maps (IP and cgroup); its app's connections go direct
  await kube.core.deleteNamespacedPod({ name: 'a', namespace: NS });
  await w.until((x) => !x.declared.has(`${NS}/a`), 10_000, 'a removed');
  assert.deepEqual(
    mesh.maps.pods().map((p) => p.ip),
    [b.ip],
  );
  assert.ok(!mesh.maps.hasCgroup(cgroupId(a.cgroup)));
  const after = await tb.get(a, `http://${b.ip}/`);
  assert.ok(after.ok, after.err);
  assert.match(after.body, /^app=pod0 port=80 outbound= inbound=$/m);
  // b, still meshed, now reaches a's app directly at its inbound side (a's pod is no peer any more)
  const toA = await tb.get(b, `http://${a.ip}/`);
  assert.match(toA.body, new RegExp(`^app=pod1 port=80 outbound=${a.ip}:80 inbound=$`, 'm'));
});

test('cluster mode: linkerd pods by proxy-version annotation, skip-outbound-ports honoured; annotation changes are applied', async (t) => {
  const { kube, tb, mesh, w } = await clusterNode(t);
  const { pod: b } = await schedulePod(kube, tb, w, { name: 'b', sidecarContainer: 'istio-proxy' });
  const { pod: l } = await schedulePod(kube, tb, w, {
    name: 'l',
    mode: 'linkerd',
    annotations: {
      'linkerd.io/proxy-version': 'stable-2.14.10',
      'config.linkerd.io/skip-outbound-ports': `${APP_PORT_2}`,
    },
  });
  const s = mesh.maps.pods().find((p) => p.ip === l.ip)!.settings;
  assert.deepEqual([s.outbound_port, s.inbound_port, s.sidecar_uid], [4140, 4143, 2102]);
  const r = await tb.get(l, `http://${b.ip}/`);
  assert.ok(r.ok, `${r.code} ${r.err}`);
  assert.match(r.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const skipped = await tb.get(l, `http://${b.ip}:${APP_PORT_2}/`);
  assert.match(skipped.body, new RegExp(`^app=pod0 port=${APP_PORT_2} outbound= inbound=$`, 'm'));

  // b's annotation gains excludeOutboundPorts 80: the watcher re-declares b with it
  const cur = await kube.core.readNamespacedPod({ name: 'b', namespace: NS });
  cur.metadata!.annotations = {
    ...(cur.metadata!.annotations ?? {}),
    'traffic.sidecar.istio.io/excludeOutboundPorts': '80',
  };
  await kube.core.replaceNamespacedPod({ name: 'b', namespace: NS, body: cur });
  await w.until(
    (x) => (x.declared.get(`${NS}/b`)?.spec.excludeOutboundPorts ?? []).includes(80),
    10_000,
    'b re-declared',
  );
  const direct = await tb.get(b, `http://${l.ip}/`);
  assert.match(direct.body, /^app=pod1 port=80 outbound= inbound=$/m);
});

test('annotations to settings: istio include/exclude, linkerd ranges and uid, refusals name the annotation', () => {
  const pod = (annotations: Record<string, string>, containers: string[] = []): PodObject => ({
    metadata: { annotations },
    spec: { containers: containers.map((name) => ({ name })) },
  });
  assert.equal(meshOfPod(pod({}, ['istio-proxy'])), 'istio');
  assert.equal(meshOfPod(pod({ 'linkerd.io/proxy-version': 'x' })), 'linkerd');
  assert.equal(meshOfPod(pod({ 'kuma.io/sidecar-injected': 'true' })), 'kuma');
  assert.equal(meshOfPod(pod({ 'sidecar.istio.io/inject': 'true' })), null, 'the inject request alone is no sidecar');
  assert.deepEqual(
    podSettingsOf(
      pod({
        'traffic.sidecar.istio.io/includeOutboundIPRanges': '*',
        'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.96.0.0/12, fd00::/8',
        'traffic.sidecar.istio.io/includeInboundPorts': '80,8080',
        'proxy.istio.io/config': 'proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: "true"\n',
      }),
      'istio',
    ),
    {
      mode: 'istio',
      excludeOutboundCidrs: ['10.96.0.0/12', 'fd00::/8'],
      includeInboundPorts: [80, 8080],
      captureDns: true,
    },
  );
  assert.deepEqual(podSettingsOf(pod({ 'traffic.sidecar.istio.io/includeOutboundIPRanges': '' }), 'istio').settings, {
    outboundPort: 0,
  });
  assert.deepEqual(podSettingsOf(pod({ 'traffic.sidecar.istio.io/includeInboundPorts': '' }), 'istio').settings, {
    inboundPort: 0,
  });
  assert.deepEqual(
    podSettingsOf(
      pod({
        'config.linkerd.io/skip-outbound-ports': '25,3306-3308',
        'config.linkerd.io/skip-subnets': '10.0.0.0/8',
        'config.linkerd.io/proxy-uid': '2103',
      }),
      'linkerd',
    ),
    {
      mode: 'linkerd',
      excludeOutboundPorts: [25, 3306, 3307, 3308],
      excludeOutboundCidrs: ['10.0.0.0/8'],
      settings: { sidecarUid: 2103 },
    },
  );
  assert.throws(
    () => podSettingsOf(pod({ 'config.linkerd.io/skip-inbound-ports': '1-1024' }), 'linkerd'),
    /config\.linkerd\.io\/skip-inbound-ports: .*at most 8/,
  );
  assert.throws(() => parsePorts('80,http', 'x'), /not a port/);
});

test('cluster mode, dual-stack: both addresses of status.podIPs are declared; the first IPv6 request goes through both sidecars; deleting the pod removes its IPv6 entry', async (t) => {
  const { kube, tb, mesh, w } = await clusterNode(t, { ipv6: true });
  const { pod: a } = await schedulePod(kube, tb, w, { name: 'a', sidecarContainer: 'istio-proxy' });
  const { pod: b } = await schedulePod(kube, tb, w, {
    name: 'b',
    sidecarContainer: 'istio-proxy',
    annotations: { 'traffic.sidecar.istio.io/excludeOutboundIPRanges': `${a.ip6}/128` },
  });
  assert.deepEqual(
    mesh.maps
      .pods6()
      .map((p) => p.ip6)
      .sort(),
    [a.ip6, b.ip6].sort(),
  );
  const first = await tb.get(a, `http://[${b.ip6}]/`);
  assert.ok(first.ok, `${first.code} ${first.err}`);
  assert.match(first.body, new RegExp(`^app=pod1 port=80 outbound=\\[${b.ip6}\\]:80 inbound=\\[${b.ip6}\\]:80$`, 'm'));
  // b's annotation excludes a's IPv6 address (an IPv6 range from istio's annotation), not its IPv4 one
  assert.match((await tb.get(b, `http://[${a.ip6}]/`)).body, /^app=pod0 port=80 outbound= inbound=$/m);
  assert.match((await tb.get(b, `http://${a.ip}/`)).body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));
  await kube.core.deleteNamespacedPod({ name: 'b', namespace: NS });
  await w.until((x) => !x.declared.has(`${NS}/b`), 10_000, 'b removed');
  assert.deepEqual(
    mesh.maps.pods6().map((p) => p.ip6),
    [a.ip6],
  );
});

test('cluster mode, IPv6-only: a pod with only an IPv6 address in status.podIPs is declared by it and its first request goes through both sidecars', async (t) => {
  const { kube, tb, mesh, w } = await clusterNode(t, { ipv6Only: true });
  const { pod: a } = await schedulePod(kube, tb, w, { name: 'a', sidecarContainer: 'istio-proxy' });
  const { pod: b } = await schedulePod(kube, tb, w, { name: 'b', sidecarContainer: 'istio-proxy' });
  assert.deepEqual(mesh.maps.pods(), [], 'no IPv4 entry');
  assert.deepEqual(
    mesh.maps
      .pods6()
      .map((p) => p.ip6)
      .sort(),
    [a.ip6, b.ip6].sort(),
  );
  const first = await tb.get(a, `http://[${b.ip6}]/`);
  assert.ok(first.ok, `${first.code} ${first.err}`);
  assert.match(first.body, new RegExp(`^app=pod1 port=80 outbound=\\[${b.ip6}\\]:80 inbound=\\[${b.ip6}\\]:80$`, 'm'));
  await kube.core.deleteNamespacedPod({ name: 'b', namespace: NS });
  await w.until((x) => !x.declared.has(`${NS}/b`), 10_000, 'b removed');
  assert.deepEqual(
    mesh.maps.pods6().map((p) => p.ip6),
    [a.ip6],
  );
});

test('the test API server serves Pods as a built-in kind: spec.nodeName and status.phase field selectors, status only through the status subresource', async (t) => {
  const kube = await apiServer(t);
  for (const [name, node] of [
    ['p1', NODE],
    ['p2', 'node-2'],
  ] as const) {
    await kube.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name }, spec: { nodeName: node, containers: [{ name: 'app', image: 'app' }] } },
    });
  }
  const names = async (fieldSelector: string) =>
    (await kube.core.listNamespacedPod({ namespace: NS, fieldSelector })).items.map((p) => p.metadata!.name).sort();
  assert.deepEqual(await names(`spec.nodeName=${NODE}`), ['p1']);
  const cur = await kube.core.readNamespacedPod({ name: 'p2', namespace: NS });
  await kube.core.replaceNamespacedPodStatus({
    name: 'p2',
    namespace: NS,
    body: { ...cur, status: { phase: 'Running', podIP: '10.0.0.2' } },
  });
  assert.deepEqual(await names('status.phase=Running'), ['p2']);
  assert.deepEqual(await names('spec.nodeName!=node-2,status.phase!=Running'), ['p1']);
  // a PUT of the pod itself keeps the status kubelet reported
  const p2 = await kube.core.readNamespacedPod({ name: 'p2', namespace: NS });
  p2.metadata!.labels = { x: 'y' };
  const replaced = await kube.core.replaceNamespacedPod({
    name: 'p2',
    namespace: NS,
    body: { ...p2, status: { phase: 'Failed' } },
  });
  assert.equal(replaced.status?.phase, 'Running');
  await assert.rejects(
    kube.core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.hostname=x' }),
    /field label not supported|400/,
  );
});
