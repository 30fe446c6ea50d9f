// netpol in cluster mode: NetworkPolicy objects, Pods and Namespaces from the (test) Kubernetes
// API server through @kubernetes/client-node, compiled into a real instance live, with real test
// bed pods (cgroup <parent>/pod<uid> as kubelet's cgroupfs layout, IP reported in status.podIP).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { kubeletCgroupResolver } from '../../apps/mesh-accel/k8s-pods.js';
import { NetpolWatcher } from '../../apps/netpol/k8s-policies.js';
import { connect, type Kube } from '../../src/k8s/kube.js';
import { TestApiServer } from '../../testbed/apiserver/server.js';
import { APP_PORT, APP_PORT_2, type Cleanup, type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { runNetpol } from '../../testbed/netpol/netpol-node.js';

const NODE = 'node-1';
const NS = 'shop';

async function apiServer(t: Cleanup): Promise<Kube> {
  const server = new TestApiServer({ bookmarkIntervalMs: 500 });
  await server.start();
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-netpol-k8s-'));
  t.after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const kube = connect(server.writeKubeconfig(join(dir, 'kubeconfig')));
  await kube.core.createNamespace({ body: { metadata: { name: NS } } });
  return kube;
}

/** netpol's Kubernetes watcher for this node, on the instance's maps, stopped with the test. */
async function watchPolicies(
  t: Cleanup,
  kube: Kube,
  tb: Testbed,
  np: Awaited<ReturnType<typeof runNetpol>>,
): Promise<NetpolWatcher> {
  const w = new NetpolWatcher({
    kube,
    nodeName: NODE,
    maps: np.maps,
    resolveCgroup: kubeletCgroupResolver([tb.parentCgroup]),
    retryMs: 50,
  });
  await w.start();
  t.after(() => w.stop());
  return w;
}

/** Creates the Pod object, then the test bed pod (cgroup pod<uid>), reporting its IP like kubelet. */
async function schedulePod(
  kube: Kube,
  tb: Testbed,
  name: string,
  labels: Record<string, string>,
  ports: k8s.V1ContainerPort[] = [],
): Promise<Pod> {
  const created = await kube.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name, labels },
      spec: { nodeName: NODE, containers: [{ name: 'app', image: 'app', ...(ports.length ? { ports } : {}) }] },
    },
  });
  return tb.addPod({
    sidecar: false,
    cgroupName: `pod${created.metadata!.uid!}`,
    beforeStart: async (p) => {
      const cur = await kube.core.readNamespacedPod({ name, namespace: NS });
      await kube.core.replaceNamespacedPodStatus({
        name,
        namespace: NS,
        body: { ...cur, status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] } },
      });
    },
  });
}

test('cluster mode: NetworkPolicy objects from the API server take effect live, and deleting them lifts them', async (t) => {
  const kube = await apiServer(t);
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const w = await watchPolicies(t, kube, tb, np);
  const web = await schedulePod(kube, tb, 'web', { app: 'web' });
  const client = await schedulePod(kube, tb, 'client', { app: 'client' });
  const other = await schedulePod(kube, tb, 'other', { app: 'other' });
  const reaches = async (from: Pod) => (await tb.get(from, `http://${web.ip}:${APP_PORT}/`, 0.7)).ok;
  await w.until((x) => x.pending.size === 0 && (x.applied?.gen ?? 0) > 0, 10_000, 'pods known');
  assert.ok(await reaches(other), 'no policy yet');

  const net = kube.kc.makeApiClient(k8s.NetworkingV1Api);
  await net.createNamespacedNetworkPolicy({
    namespace: NS,
    body: {
      metadata: { name: 'web-from-client' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        // @kubernetes/client-node's model calls `from` `_from` (it writes `from`)
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: APP_PORT }] }],
      },
    },
  });
  await w.until((x) => x.applied?.selected.has(`${NS}/web`) === true, 10_000, 'the policy applied');
  assert.ok(await reaches(client), 'client -> web is allowed');
  assert.ok(!(await reaches(other)), 'other -> web drops');
  assert.ok((np.maps.drops().get(`${NS}/web-from-client`) ?? 0n) > 0n, 'counted for the policy');

  // a label change on the pod moves it into the policy's peers, live
  const cur = await kube.core.readNamespacedPod({ name: 'other', namespace: NS });
  await kube.core.replaceNamespacedPod({
    name: 'other',
    namespace: NS,
    body: { ...cur, metadata: { ...cur.metadata, labels: { app: 'client' } } },
  });
  const gen = w.applied!.gen;
  await w.until((x) => (x.applied?.gen ?? 0) > gen, 10_000, 'the label change applied');
  assert.ok(await reaches(other), 'other, now labelled app=client, gets through');

  await net.deleteNamespacedNetworkPolicy({ name: 'web-from-client', namespace: NS });
  await w.until((x) => x.applied?.selected.size === 0, 10_000, 'the policy removed');
  const c = await kube.core.readNamespacedPod({ name: 'client', namespace: NS });
  await kube.core.replaceNamespacedPod({
    name: 'client',
    namespace: NS,
    body: { ...c, metadata: { ...c.metadata, labels: { app: 'nobody' } } },
  });
  await w.until((x) => (x.applied?.gen ?? 0) > gen + 2, 10_000, 'the relabel applied');
  assert.ok(await reaches(client), 'no policy selects web any more');
});

test("cluster mode: named ports resolve against the Pods' containerPorts — ingress the protected pod's, egress each peer's", async (t) => {
  const kube = await apiServer(t);
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const w = await watchPolicies(t, kube, tb, np);
  // web names :80 "http"; client names :8081 "http" (the same name, another number); other names nothing
  const web = await schedulePod(kube, tb, 'web', { app: 'web' }, [{ name: 'http', containerPort: APP_PORT }]);
  const client = await schedulePod(kube, tb, 'client', { app: 'client' }, [
    { name: 'http', containerPort: APP_PORT_2, protocol: 'TCP' },
  ]);
  const other = await schedulePod(kube, tb, 'other', { app: 'other' });
  await w.until((x) => x.pending.size === 0 && (x.applied?.gen ?? 0) > 0, 10_000, 'pods known');
  const net = kube.kc.makeApiClient(k8s.NetworkingV1Api);
  await net.createNamespacedNetworkPolicy({
    namespace: NS,
    body: {
      metadata: { name: 'web-http' },
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }] }] },
    },
  });
  await net.createNamespacedNetworkPolicy({
    namespace: NS,
    body: {
      metadata: { name: 'other-to-http' },
      spec: {
        podSelector: { matchLabels: { app: 'other' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: 'http' }] }],
      },
    },
  });
  await w.until((x) => x.applied?.selected.size === 2, 10_000, 'both policies applied');
  assert.deepEqual([...w.invalid], [], 'named ports are enforced, not failed closed');
  const reaches = async (from: Pod, to: Pod, port: number) => (await tb.get(from, `http://${to.ip}:${port}/`, 0.7)).ok;
  assert.ok(await reaches(client, web, APP_PORT), "web's ingress: http is web's :80");
  assert.ok(!(await reaches(client, web, APP_PORT_2)), "web's ingress: :8081 is no port web names http");
  assert.ok(await reaches(other, web, APP_PORT), "other's egress: http of web is :80");
  assert.ok(!(await reaches(other, web, APP_PORT_2)), "other's egress: web's :8081 is not its http");
  assert.ok(await reaches(other, client, APP_PORT_2), "other's egress: http of client is :8081");
  assert.ok(!(await reaches(other, client, APP_PORT)), "other's egress: client's :80 is not its http");
});
