// kubectl bpf logs and what a node writes: the log endpoint a BpfNodeInstance's status advertises
// is read only when its host is one of the Node's addresses, and the bearer token comes from the
// client's configuration (the Secret it names), never from status.logs.tokenSecret — so a
// compromised node can neither choose the Secret an admin's kubectl reads nor where its token goes.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { API_VERSION, type BpfNodeInstance, nodeInstanceName, PLURAL } from '../../src/k8s/api.js';
import { logsAuth, nodeLogs } from '../../src/k8s/kubectl/node-logs.js';
import { specAt } from './fixtures.js';
import { TestCluster } from './harness.js';

test('kubectl bpf logs takes the token from its configuration and reads only endpoints on the node', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const seen: { host: string; headers: IncomingHttpHeaders }[] = [];
  const endpoint = createServer((req, res) => {
    seen.push({ host: String(req.socket.localAddress), headers: req.headers });
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    res.end(`${JSON.stringify({ ts: '2025-01-01T00:00:00Z', seq: 1, event: { ok: 1 } })}\n`);
  });
  await new Promise<void>((r) => endpoint.listen(0, '0.0.0.0', () => r()));
  t.after(() => new Promise<void>((r) => endpoint.close(() => r())));
  const port = (endpoint.address() as AddressInfo).port;

  await c.kube.core.createNode({
    body: { metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } },
  });
  await c.kube.core.createNamespace({ body: { metadata: { name: 'kube-system' } } });
  const secret = (namespace: string, name: string, token: string) =>
    c.kube.core.createNamespacedSecret({
      namespace,
      body: { metadata: { name, namespace }, data: { token: Buffer.from(token).toString('base64') } },
    });
  await secret('kube-system', 'admin-token', 'the-cluster-admin-token');
  await secret('kbpf-system', 'kbpf-logs-token', 'the-logs-token');

  const ni: BpfNodeInstance = {
    apiVersion: API_VERSION,
    kind: 'BpfNodeInstance',
    metadata: { name: nodeInstanceName('conn', 'n1') },
    spec: specAt('conn', 'n1', 1),
  };
  await c.api.create(PLURAL.nodeInstances, ni);
  const advertise = async (url: string) =>
    c.api.update(
      PLURAL.nodeInstances,
      ni.metadata.name,
      (o) => {
        o.status = { phase: 'Running', logs: { url, tokenSecret: 'kube-system/admin-token' } };
        return o;
      },
      { status: true },
    );
  const read = async () => {
    const out: Record<string, unknown>[] = [];
    await nodeLogs(
      c.api,
      'conn',
      'n1',
      {},
      (r) => void out.push(r),
      logsAuth(undefined, {}),
      AbortSignal.timeout(5000),
    );
    return out;
  };

  // a host that is not the node's: nothing is sent there, and no Secret is read for it
  await advertise(`http://127.0.0.2:${port}`);
  const before = c.server.requests.length;
  await assert.rejects(
    read(),
    /advertises the log endpoint http:\/\/127\.0\.0\.2:\d+, which is not on one of its addresses \(127\.0\.0\.1\)/,
  );
  assert.equal(seen.length, 0, 'the endpoint got no request');
  assert.equal(
    c.server.requests.slice(before).filter((r) => r.path.includes('/secrets/')).length,
    0,
    'no Secret was read',
  );
  for (const bad of [`http://user:pw@127.0.0.1:${port}`, `http://n1.evil.example:${port}`]) {
    await advertise(bad);
    await assert.rejects(read(), /advertises/);
  }
  assert.equal(seen.length, 0);

  // on the node's address: read, with the configured Secret's token (not the one the status names)
  await advertise(`http://127.0.0.1:${port}`);
  const recs = await read();
  assert.deepEqual(
    recs.map((r) => r.seq),
    [1],
  );
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.headers.authorization, 'Bearer the-logs-token');
  assert.ok(
    !c.server.requests.some((r) => r.path.includes('/namespaces/kube-system/secrets/')),
    'the kube-system Secret was never read',
  );

  // a Secret named by the user that does not exist is an error; the default one missing means no token
  await assert.rejects(
    nodeLogs(c.api, 'conn', 'n1', {}, () => {}, logsAuth('kbpf-system/nope', {}), AbortSignal.timeout(5000)),
    /Secret kbpf-system\/nope/,
  );
});
