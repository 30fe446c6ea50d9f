// service-lb in cluster mode: Services and EndpointSlices from the test API server, watched live
// by ServiceWatcher and applied to a real instance; real connections from a test bed pod.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { type EndpointSliceObject, ServiceWatcher, servicesOf } from '../../apps/service-lb/k8s-services.js';
import { entriesOf } from '../../apps/service-lb/services.js';
import { connect } from '../../src/k8s/kube.js';
import { TestApiServer } from '../../testbed/apiserver/server.js';
import { type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { client, runServiceLb } from '../../testbed/service-lb/svclb-node.js';

const NS = 'shop';

function slice(
  name: string,
  pods: Pod[],
  ready: boolean[] = [],
): EndpointSliceObject & { apiVersion: string; kind: string } {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: pods.map((p, i) => ({ addresses: [p.ip], conditions: { ready: ready[i] ?? true }, nodeName: 'node-1' })),
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  };
}

test('servicesOf: one service per port, ready endpoints on the slice port of the same name, policy and affinity from the Service', () => {
  const svc = {
    metadata: { name: 'web', namespace: NS, annotations: { 'service-lb.kbpf.io/policy': 'least-conn' } },
    spec: {
      clusterIPs: ['10.96.1.1'],
      ports: [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'sctp', port: 9, protocol: 'SCTP' },
      ],
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } },
    },
  };
  const sl = {
    metadata: { name: 'web-a', namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
    endpoints: [
      { addresses: ['10.1.0.5'], conditions: { ready: true }, nodeName: 'n1', zone: 'z1' },
      { addresses: ['10.1.0.6'], conditions: { ready: false } },
    ],
    ports: [{ name: 'http', port: 8080 }],
  };
  const [s, ...rest] = servicesOf(svc, [sl]);
  assert.equal(rest.length, 0, 'SCTP is not balanced');
  assert.deepEqual(s!.backends, [{ ip: '10.1.0.5', port: 8080, node: 'n1', zone: 'z1' }]);
  assert.equal(s!.policy, 'least-conn');
  assert.equal(s!.affinityTimeoutS, 30);
  assert.deepEqual(
    servicesOf({ metadata: { name: 'h', namespace: NS }, spec: { clusterIP: 'None', ports: [{ port: 1 }] } }, []),
    [],
  );
});

test('servicesOf: the waypoint annotation (ADDRESS:PORT, [IPv6]:PORT) names the waypoint; one that does not parse is reported and left out', () => {
  const svc = (wp: string) => ({
    metadata: { name: 'web', namespace: NS, annotations: { 'service-lb.kbpf.io/waypoint': wp } },
    spec: { clusterIPs: ['10.96.1.1', 'fd00::1'], ports: [{ port: 80 }] },
  });
  assert.deepEqual(servicesOf(svc('10.1.0.9:15019'), [])[0]!.waypoint, { ip: '10.1.0.9', port: 15019 });
  assert.deepEqual(servicesOf(svc('[fd00::9]:15019'), [])[0]!.waypoint, { ip: 'fd00::9', port: 15019 });
  const warned: string[] = [];
  const [s] = servicesOf(svc('10.1.0.9'), [], (m) => warned.push(m));
  assert.equal(s!.waypoint, undefined);
  assert.match(warned[0]!, /Service shop\/web: annotation service-lb\.kbpf\.io\/waypoint: expected ADDRESS:PORT/);
  // a waypoint applies to the VIPs of its family only
  const entries = entriesOf(servicesOf(svc('10.1.0.9:15019'), [])[0]!);
  assert.deepEqual(
    entries.map((e) => e.waypoint !== undefined),
    [true, false],
  );
});

test('Services and EndpointSlices from the API server are balanced live: endpoints added, not ready, removed; the Service deleted', async (t) => {
  const server = new TestApiServer({ bookmarkIntervalMs: 500 });
  await server.start();
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-svclb-k8s-'));
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const kube = connect(server.writeKubeconfig(join(dir, 'kubeconfig')));
  const discovery = kube.kc.makeApiClient(k8s.DiscoveryV1Api);
  await kube.core.createNamespace({ body: { metadata: { name: NS } } });

  const tb = await Testbed.create(t, 'kbpfslbk');
  const lb = await runServiceLb(t, tb);
  const pods = [await tb.addPod({ sidecar: false }), await tb.addPod({ sidecar: false })];
  const cl = await tb.addPod({ sidecar: false });
  const w = new ServiceWatcher({ kube, maps: lb.maps });
  await w.start();
  t.after(() => w.stop());

  const vip = '10.96.77.7';
  await kube.core.createNamespacedService({
    namespace: NS,
    body: {
      metadata: { name: 'web', annotations: { 'service-lb.kbpf.io/policy': 'round-robin' } },
      spec: { clusterIP: vip, clusterIPs: [vip], ports: [{ name: 'http', port: 80, targetPort: 'http' as never }] },
    },
  });
  await w.until((x) => x.applied.has(`${NS}/web:http`), 10_000, 'the service');
  const none = await client(tb, cl, 'tcp', vip, 80);
  assert.equal(none[0]!.err, 'ECONNREFUSED', 'no endpoints yet');

  await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice('web-a', pods) as never });
  await w.until((x) => x.applied.get(`${NS}/web:http`)?.spec.backends.length === 2, 10_000, 'two endpoints');
  const both = await client(tb, cl, 'tcp', vip, 80, 4);
  assert.deepEqual(new Set(both.map((g) => g.app)), new Set(['pod0', 'pod1']), JSON.stringify(both));

  await discovery.replaceNamespacedEndpointSlice({
    name: 'web-a',
    namespace: NS,
    body: slice('web-a', pods, [false, true]) as never,
  });
  await w.until((x) => x.applied.get(`${NS}/web:http`)?.spec.backends.length === 1, 10_000, 'one ready endpoint');
  const one = await client(tb, cl, 'tcp', vip, 80, 4);
  assert.deepEqual(new Set(one.map((g) => g.app)), new Set(['pod1']));

  await kube.core.deleteNamespacedService({ name: 'web', namespace: NS });
  await w.until((x) => x.applied.size === 0, 10_000, 'the service gone');
  const gone = await client(tb, cl, 'tcp', vip, 80);
  assert.equal(gone[0]!.err, 'ENETUNREACH', 'plain routing again');
  assert.equal(lb.maps.list().length, 0);
});
