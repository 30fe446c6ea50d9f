// kubectl bpf flows: each node's flow-monitor reports, read from that node's log endpoint, become
// flows naming their node, with pod identities from the cluster's Pods; merged by time; filtered.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { API_VERSION, type BpfNodeInstance, nodeInstanceName, PLURAL } from '../../src/k8s/api.js';
import { deployment, specAt } from './fixtures.js';
import { TestCluster } from './harness.js';
import { advertise, type FakeEndpoint, fakeEndpoint } from './node-endpoint.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const mapped = (ip: string): number[] => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...ip.split('.').map(Number)];

function report(src: string, dst: string, dport: number, cookie: number) {
  return {
    cookie,
    duration_ns: 1e6,
    closed: 1,
    flow: {
      cgroup_id: 0,
      laddr: mapped(src),
      raddr: mapped(dst),
      lport: 40000,
      rport: dport,
      family: 2,
      proto: 6,
      active: 1,
      tcp_state: 7,
      flags_tx: 0x1b,
      flags_rx: 0x1b,
      icmp_type: 0,
      icmp_code: 0,
      has_svc: 0,
      srtt_us: 80,
      min_rtt_us: 30,
      retransmits: 0,
      drops: 0,
      drop_reason: 0,
      bytes_tx: 12,
      bytes_rx: 7,
      packets_tx: 4,
      packets_rx: 4,
      ip_bytes_tx: 300,
      ip_bytes_rx: 280,
      svc: {
        vip: [0, 0, 0, 0],
        backend: [0, 0, 0, 0],
        vip_port: 0,
        backend_port: 0,
        family: 0,
        policy: 0,
        level: 0,
        affinity_hit: 0,
        service_id: 0,
      },
    },
  };
}

function plugin(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', 'kubectl-bpf'), ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('kubectl bpf flows merges the nodes’ streams by time, each flow naming its node and its pods', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const lines: Record<string, string> = {
    n1: [
      { ts: '2026-12-01T10:00:01.000Z', seq: 1, source: 'flow_events', event: report('10.1.0.5', '10.1.1.9', 80, 1) },
      { ts: '2026-12-01T10:00:03.000Z', seq: 2, source: 'flow_events', event: report('10.1.0.5', '10.1.1.9', 443, 2) },
    ]
      .map((r) => `${JSON.stringify(r)}\n`)
      .join(''),
    n2: `${JSON.stringify({ ts: '2026-12-01T10:00:02.000Z', seq: 1, source: 'flow_events', event: report('10.1.1.9', '10.1.0.5', 80, 9) })}\n`,
  };
  // one log endpoint per node (the URL's origin is what a node advertises)
  const endpoints: Record<string, FakeEndpoint> = {};
  for (const node of ['n1', 'n2']) {
    const endpoint = await fakeEndpoint((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
      res.end(lines[node]);
    });
    t.after(() => endpoint.close());
    endpoints[node] = endpoint;
  }
  await c.kube.core.createNamespace({ body: { metadata: { name: 'shop' } } });
  for (const [name, ip, node] of [
    ['web-7d4b9c6f5-x2x9k', '10.1.0.5', 'n1'],
    ['db-0', '10.1.1.9', 'n2'],
  ] as const)
    await c.kube.core.createNamespacedPod({
      namespace: 'shop',
      body: {
        metadata: { name, namespace: 'shop', labels: { app: name.split('-')[0]! } },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] },
        status: { podIP: ip },
      },
    });
  await c.api.create(PLURAL.deployments, deployment('flows'));
  for (const n of ['n1', 'n2']) {
    await c.kube.core.createNode({
      body: { metadata: { name: n }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } },
    });
    const ni: BpfNodeInstance = {
      apiVersion: API_VERSION,
      kind: 'BpfNodeInstance',
      metadata: { name: nodeInstanceName('flows', n) },
      spec: specAt('flows', n, 1),
    };
    await c.api.create(PLURAL.nodeInstances, ni);
    await c.api.update(
      PLURAL.nodeInstances,
      ni.metadata.name,
      (o) => {
        o.status = { phase: 'Running' };
        return o;
      },
      { status: true },
    );
    await advertise(c.kube, n, endpoints[n]!.url, endpoints[n]!.tls.cert);
  }
  const env = { KUBECONFIG: c.kubeconfig };
  const r = await plugin(['flows', 'flows', '-o', 'json'], env);
  assert.equal(r.code, 0, r.stderr);
  const flows = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).flow);
  assert.deepEqual(
    flows.map((f) => [f.node_name, f.l4.TCP.destination_port]),
    [
      ['n1', 80],
      ['n2', 80],
      ['n1', 443],
    ],
  );
  assert.equal(flows[0].source.pod_name, 'web-7d4b9c6f5-x2x9k');
  assert.equal(flows[0].destination.workload, 'db');
  const filtered = await plugin(['flows', 'flows', '-o', 'json', '--from-pod', 'shop/db'], env);
  assert.deepEqual(
    filtered.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).node_name),
    ['n2'],
  );
});
