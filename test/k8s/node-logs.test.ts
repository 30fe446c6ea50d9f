// kubectl bpf logs and what a node writes. A node's BpfNode advertises its log endpoint (URL and
// certificate); the client reads it only over TLS, only on one of the Node's addresses, only
// from the holder of exactly that certificate, and sends only a token requested for that one
// node (TokenRequest of kbpf-logs-reader, audience = the node), which the node's endpoint checks
// with a TokenReview. So a compromised node can neither choose where a credential goes nor use
// what it is sent anywhere else; and an endpoint refuses other nodes' tokens, the admin's own
// token and other accounts' tokens.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogRecord } from '../../src/agent/log-store.js';
import { API_VERSION, type BpfNodeInstance, logsAudience, nodeInstanceName, PLURAL } from '../../src/k8s/api.js';
import { checkEndpoint, logsAccess, nodeLogs, pinnedGet, tokenFor } from '../../src/k8s/kubectl/node-logs.js';
import { LogsAuthenticator } from '../../src/k8s/node/logs-auth.js';
import { NodeLogsServer } from '../../src/k8s/node/logs-server.js';
import { selfSignedCertificate } from '../../src/k8s/node/serving-cert.js';
import { specAt } from './fixtures.js';
import { TestCluster } from './harness.js';
import { advertise, fakeEndpoint } from './node-endpoint.js';

const READER = 'system:serviceaccount:kbpf-system:kbpf-logs-reader';

test('node logs: TLS pinned to the BpfNode certificate, per-node tokens reviewed by the API server', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  for (const n of ['n1', 'n2'])
    await c.kube.core.createNode({
      body: { metadata: { name: n }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } },
    });
  await c.api.create(PLURAL.nodeInstances, {
    apiVersion: API_VERSION,
    kind: 'BpfNodeInstance',
    metadata: { name: nodeInstanceName('conn', 'n1') },
    spec: specAt('conn', 'n1', 1),
  } satisfies BpfNodeInstance);

  // n1's endpoint as its agent runs it: its own certificate, tokens reviewed for n1's audience
  const tls = selfSignedCertificate('kbpf-node-logs n1', ['127.0.0.1']);
  const records = [1, 2, 3].map((seq) => ({ ts: '2026-01-01T00:00:00Z', seq, event: { ok: seq } }) as LogRecord);
  const auth = new LogsAuthenticator({ kube: c.kube, node: 'n1', users: [READER], cacheMs: 0 });
  const server = new NodeLogsServer({
    host: '127.0.0.1',
    port: 0,
    tls,
    authenticate: (h) => auth.check(h),
    source: {
      has: (n) => n === 'conn',
      read: () => records,
      async *followBatches() {},
    },
  });
  const url = await server.start();
  t.after(() => server.close());
  assert.match(url, /^https:/);
  await advertise(c.kube, 'n1', url, tls.cert);

  const read = async (access = logsAccess()) => {
    const out: Record<string, unknown>[] = [];
    await nodeLogs(c.api, 'conn', 'n1', {}, (r) => void out.push(r), access, AbortSignal.timeout(5000));
    return out;
  };
  const tokenRequests = () =>
    c.server.requests.filter((r) => r.path.endsWith('/serviceaccounts/kbpf-logs-reader/token'));

  // the right way: a token for n1 only, reviewed by the API server, records read
  assert.deepEqual(
    (await read()).map((r) => r.seq),
    [1, 2, 3],
  );
  assert.equal(tokenRequests().length, 1);
  const review = c.server.tokens.reviews.at(-1)!;
  assert.deepEqual(review, { audiences: [logsAudience('n1')], authenticated: true, username: READER });

  // what the endpoint refuses, each with the API server's or its own reason
  const ep = await checkEndpoint(c.kube, 'n1', { url, certificate: tls.cert }, logsAccess());
  const status = async (token: string) => {
    const res = await pinnedGet('n1', ep, '/v1/logs/conn', token, AbortSignal.timeout(5000));
    let body = '';
    for await (const chunk of res) body += chunk;
    return res.statusCode === 200 ? '200' : `${res.statusCode} ${JSON.parse(body).error}`;
  };
  const forN2 = await tokenFor(c.kube, 'n2', logsAccess());
  assert.match(
    await status(forN2),
    /^401 the API server did not authenticate the token for kbpf\.io\/node-logs\/n1: .*audiences/,
  );
  assert.match(await status('test-token'), /^401 .*audiences/, "the admin's own token is not good on a node");
  assert.match(await status('made-up'), /^401 .*invalid bearer token/);
  await c.kube.core.createNamespacedServiceAccount({
    namespace: 'kbpf-system',
    body: { metadata: { name: 'kbpf-agent', namespace: 'kbpf-system' } },
  });
  const agentToken = await tokenFor(c.kube, 'n1', logsAccess('kbpf-system', 'kbpf-agent'));
  assert.match(
    await status(agentToken),
    /^403 system:serviceaccount:kbpf-system:kbpf-agent may not read this node's logs/,
    "another account's token, even for this node's audience",
  );
  // a token is no good once its account is gone
  const readerToken = await tokenFor(c.kube, 'n1', logsAccess());
  assert.match(await status(readerToken), /^200/);
  await c.kube.core.deleteNamespacedServiceAccount({ name: 'kbpf-logs-reader', namespace: 'kbpf-system' });
  assert.match(await status(readerToken), /^401 .*deleted/);
  await c.kube.core.createNamespacedServiceAccount({
    namespace: 'kbpf-system',
    body: { metadata: { name: 'kbpf-logs-reader', namespace: 'kbpf-system' } },
  });

  // a stand-in that records what reaches it, for what the client must never send
  const fake = await fakeEndpoint((_req, res) => res.end('{}\n'));
  t.after(() => fake.close());
  const before = tokenRequests().length;

  // the old attack: an address that is not the node's — nothing sent, no token even requested
  await advertise(c.kube, 'n1', `https://127.0.0.2:${fake.port}`, fake.tls.cert);
  await assert.rejects(
    read(),
    /advertises the log endpoint https:\/\/127\.0\.0\.2:\d+, which is not on one of its addresses \(127\.0\.0\.1\)/,
  );
  for (const bad of [`https://user:pw@127.0.0.1:${fake.port}`, `https://n1.evil.example:${fake.port}`]) {
    await advertise(c.kube, 'n1', bad, fake.tls.cert);
    await assert.rejects(read(), /advertises/);
  }
  // plain HTTP: the BpfNode schema does not take it, nor does the client (it sends nothing)
  await assert.rejects(
    advertise(c.kube, 'n1', `http://127.0.0.1:${fake.port}`, fake.tls.cert),
    /should match '\^https:\/\/'/,
  );
  await assert.rejects(
    checkEndpoint(c.kube, 'n1', { url: `http://127.0.0.1:${fake.port}`, certificate: fake.tls.cert }, logsAccess()),
    /advertises the log endpoint http:\/\/127\.0\.0\.1:\d+ without TLS/,
  );
  // the node's address and port, but a certificate other than the published one (a process
  // that took the port, a man in the middle): refused in the handshake, no token sent
  await advertise(c.kube, 'n1', fake.url, tls.cert);
  await assert.rejects(
    read(),
    /node n1's log endpoint https:\/\/127\.0\.0\.1:\d+ presented a certificate that is not the one its BpfNode publishes \(sha256 [0-9a-f]{16}…\): not sending it a token/,
  );
  assert.equal(fake.seen.length, 0, 'the impostor got no request (and so no token)');
  assert.equal(tokenRequests().length - before, 1, 'one token, for the certificate check that failed');
  // and a certificate that is not one
  await advertise(c.kube, 'n1', fake.url, 'not a certificate');
  await assert.rejects(read(), /without a usable certificate/);
  // the publication names the impostor's own certificate: then it is read (pinning trusts the BpfNode)
  await advertise(c.kube, 'n1', fake.url, fake.tls.cert);
  await read();
  assert.equal(fake.seen.length, 1);
  assert.match(
    String(fake.seen[0]!.headers.authorization),
    /^Bearer kbpf-test-sa\./,
    'a service account token, not the admin’s',
  );
});
