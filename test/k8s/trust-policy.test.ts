// The cluster's trust policy (ConfigMap kbpf-trust-policy): the controller checks a deployment's
// package against it in the registry before any node is asked to run it, says
// `Untrusted: signature missing for sha256:…` on the deployment and creates no node instance;
// once a trusted key signed the package the rollout goes on. A policy that cannot be read trusts
// nothing. Skipped without docker-registry.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentPaths } from '../../src/agent/paths.js';
import { API_VERSION, type BpfDeployment, PLURAL } from '../../src/k8s/api.js';
import { Controller } from '../../src/k8s/controller/controller.js';
import { NodeReconciler } from '../../src/k8s/node/node-reconciler.js';
import { parseClusterTrustPolicy, TRUST_POLICY_CONFIGMAP } from '../../src/k8s/trust-policy.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { RegistryClient } from '../../src/package/registry-client.js';
import { loadPrivateKey, registrySignatures, signPackage, writeKeyPair } from '../../src/package/trust/index.js';
import { uniqueName } from '../../testbed/kernel.js';
import { missingRegistryTools, samplePackage, startRegistry } from '../package/helpers.js';
import { TestCluster } from './harness.js';

const missing = missingRegistryTools().filter((m) => m !== 'skopeo');

test('the controller refuses a package the cluster trust policy does not trust', {
  skip: missing.length ? `needs ${missing.join(', ')}` : false,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-trust-k8s-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const registry = await startRegistry();
  t.after(() => registry.stop());
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  await c.kube.core.createNode({ body: { metadata: { name: 'n1' } } });

  const key = await writeKeyPair('release', dir);
  const store = new LayoutStore(join(dir, 'store'));
  const stored = await store.putPackage(samplePackage('snoop', '1.0'));
  const client = new RegistryClient({ credentials: {} });
  const remote = `${registry.host}/kbpf/snoop:1.0`;
  await client.push(store, 'snoop:1.0', remote);

  const policyText = `keys:\n  release: |\n${readFileSync(key.publicPath, 'utf8').replace(/^/gm, '    ')}\nrules:\n  - match: "${registry.host}/kbpf/*"\n    keys: [release]\n`;
  await parseClusterTrustPolicy(policyText, 'test'); // the text is a valid policy
  await c.kube.core.createNamespacedConfigMap({
    namespace: 'kbpf-system',
    body: { metadata: { name: TRUST_POLICY_CONFIGMAP }, data: { 'policy.yaml': policyText } },
  });
  const controller = new Controller({ kube: c.kube, namespace: 'kbpf-system', resyncMs: 200, log: () => {} });
  await controller.start();
  t.after(() => controller.stop());
  const d: BpfDeployment = {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name: 'snoop' },
    spec: { package: { image: `${remote.replace(':1.0', '')}@${stored.digest}` } },
  };
  await c.api.create(PLURAL.deployments, d);

  const untrusted = async () => {
    for (let i = 0; i < 100; i++) {
      const got = await c.api.get(PLURAL.deployments, 'snoop');
      const cond = got?.status?.conditions?.find((x) => x.type === 'Untrusted');
      if (cond) return cond;
      await sleep(50);
    }
    assert.fail('no Untrusted condition');
  };
  const cond = await untrusted();
  assert.equal(cond.status, 'True');
  assert.match(
    cond.message ?? '',
    new RegExp(`^signature missing for ${stored.digest} .*keys tried: release \\(sha256:`),
  );
  const instances = async () => (await c.api.list(PLURAL.nodeInstances)).items;
  assert.deepEqual(await instances(), [], 'no node was asked to run it');

  // signed in the registry by the trusted key: the rollout goes on
  await signPackage(registrySignatures(client, remote), stored.digest, await loadPrivateKey(key.privatePath));
  for (let i = 0; i < 100 && (await instances()).length === 0; i++) await sleep(50);
  assert.equal((await instances()).length, 1);
  const after = (await c.api.get(PLURAL.deployments, 'snoop'))?.status?.conditions?.find((x) => x.type === 'Untrusted');
  assert.equal(after?.status, 'False');

  // a policy that cannot be read trusts nothing
  await c.kube.core.replaceNamespacedConfigMap({
    name: TRUST_POLICY_CONFIGMAP,
    namespace: 'kbpf-system',
    body: { metadata: { name: TRUST_POLICY_CONFIGMAP }, data: { 'policy.yaml': 'rules: [' } },
  });
  await c.api.update(PLURAL.deployments, 'snoop', (o) => ({ ...o, spec: { ...o.spec, config: { target_pid: 1 } } }));
  for (let i = 0; i < 100; i++) {
    const s = (await c.api.get(PLURAL.deployments, 'snoop'))?.status?.conditions?.find((x) => x.type === 'Untrusted');
    if (s?.status === 'True') {
      assert.match(s.message ?? '', /trust policy cannot be read/);
      return;
    }
    await sleep(50);
  }
  assert.fail('an unreadable policy did not refuse');
});

test('a node agent applies the cluster trust policy, and trusts nothing when it cannot read it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-trust-node-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const key = await writeKeyPair('release', dir);
  const policyText = `mode: enforce\nkeys:\n  release: |\n${readFileSync(key.publicPath, 'utf8').replace(/^/gm, '    ')}\nrules:\n  - match: "**"\n    keys: [release]\n`;
  await c.kube.core.createNamespacedConfigMap({
    namespace: 'kbpf-system',
    body: { metadata: { name: TRUST_POLICY_CONFIGMAP }, data: { 'policy.yaml': policyText } },
  });
  const start = async (name: string) => {
    const r = new NodeReconciler({
      nodeName: name,
      kube: c.kube,
      namespace: 'kbpf-system',
      paths: agentPaths(join(dir, name), `/sys/fs/bpf/${uniqueName('kbpf-trust')}`),
      log: () => {},
    });
    await r.start();
    t.after(async () => {
      await r.stop();
      rmSync(r.opts.paths.bpffsDir, { recursive: true, force: true });
    });
    return r;
  };
  const n1 = await start('n1');
  const trust = n1.agent.trust;
  assert.equal(trust?.policy.rules[0]?.keys[0]?.name, 'release');
  assert.equal(trust?.nodeKey?.name, 'node', 'the node has its own key for packages built on it');

  await c.kube.core.replaceNamespacedConfigMap({
    name: TRUST_POLICY_CONFIGMAP,
    namespace: 'kbpf-system',
    body: { metadata: { name: TRUST_POLICY_CONFIGMAP }, data: { 'policy.yaml': 'keys: {a: /etc/key.pub}\nrules: []' } },
  });
  const n2 = await start('n2');
  assert.deepEqual(n2.agent.trust?.policy.rules, [], 'an unreadable policy: no rule, every package refused');
});
