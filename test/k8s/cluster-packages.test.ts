// Packages stored in the cluster (BpfPackage): a package and its signatures into an object and
// back into a node's store, every digest checked (a tampered object is refused); the
// controller resolves bpfpackage://NAME:VERSION to the object's digest and checks the cluster
// trust policy against the object's signatures (rule bpfpackage.kbpf.io/*): unsigned is
// Untrusted and no node is asked to run it; signed by the trusted key, the rollout goes on.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_VERSION, PLURAL } from '../../src/k8s/api.js';
import {
  clusterStoreName,
  importPackageObject,
  MAX_PACKAGE_BYTES,
  packageObject,
  parseClusterRef,
} from '../../src/k8s/cluster-packages.js';
import { Controller } from '../../src/k8s/controller/controller.js';
import { TRUST_POLICY_CONFIGMAP } from '../../src/k8s/trust-policy.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import {
  loadPrivateKey,
  loadPublicKey,
  signPackage,
  storeSignatures,
  verifyPackage,
  writeKeyPair,
} from '../../src/package/trust/index.js';
import { samplePackage } from '../package/helpers.js';
import { TestCluster } from './harness.js';

function tmp(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-cluster-pkg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('bpfpackage:// references', () => {
  assert.equal(parseClusterRef('registry.example.com/x:1'), undefined);
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseClusterRef(`bpfpackage://snoop@${d}`), { name: 'snoop', digest: d });
  assert.deepEqual(parseClusterRef('bpfpackage://snoop:1.0'), { name: 'snoop', version: '1.0' });
  assert.throws(() => parseClusterRef('bpfpackage://Snoop/x'), /bpfpackage:\/\/NAME\[:VERSION\]\[@sha256:…\]/);
});

test('a package with its signatures into a BpfPackage and back into a node store, digests checked', async (t) => {
  const dir = tmp(t);
  const key = await writeKeyPair('release', dir);
  const store = new LayoutStore(join(dir, 'a'));
  const stored = await store.putPackage(samplePackage('snoop', '1.0'), 'snoop:1.0');
  await signPackage(storeSignatures(store, 'snoop'), stored.digest, await loadPrivateKey(key.privatePath));
  const obj = await packageObject(store, 'snoop:1.0', 'snoop');
  assert.equal(obj.metadata.name, `snoop.${stored.digest.slice(7, 19)}`);
  assert.equal(obj.spec.digest, stored.digest);
  assert.equal(obj.spec.signatures?.length, 1, 'the signature goes along');
  assert.ok(obj.spec.size < MAX_PACKAGE_BYTES);

  const node = new LayoutStore(join(dir, 'node'));
  await importPackageObject(obj, node, stored.digest);
  const name = clusterStoreName('snoop');
  assert.equal((await node.resolve(`${name}@${stored.digest}`)).digest, stored.digest);
  const v = await verifyPackage(storeSignatures(node, name), stored.digest, [await loadPublicKey(key.publicPath)]);
  assert.deepEqual(
    v.signers.map((s) => s.name),
    ['release'],
    'the node verifies the signature it imported',
  );

  const tampered = structuredClone(obj);
  tampered.spec.blobs[1]!.data = Buffer.from('not the object').toString('base64');
  await assert.rejects(importPackageObject(tampered, new LayoutStore(join(dir, 'n2')), stored.digest), /sha256/);
  await assert.rejects(
    importPackageObject(obj, new LayoutStore(join(dir, 'n3')), `sha256:${'0'.repeat(64)}`),
    /holds sha256:[a-f0-9]{64}, not sha256:0+/,
  );
});

test('the controller resolves bpfpackage://NAME:VERSION and checks the trust policy against the object', async (t) => {
  const dir = tmp(t);
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  await c.kube.core.createNode({ body: { metadata: { name: 'n1' } } });
  const key = await writeKeyPair('release', dir);
  const store = new LayoutStore(join(dir, 'store'));
  const stored = await store.putPackage(samplePackage('snoop', '1.0'), 'snoop:1.0');
  await c.api.create(PLURAL.packages, await packageObject(store, 'snoop:1.0', 'snoop'));
  const policyText = `keys:\n  release: |\n${readFileSync(key.publicPath, 'utf8').replace(/^/gm, '    ')}\nrules:\n  - match: "bpfpackage.kbpf.io/*"\n    keys: [release]\n`;
  await c.kube.core.createNamespacedConfigMap({
    namespace: 'kbpf-system',
    body: { metadata: { name: TRUST_POLICY_CONFIGMAP }, data: { 'policy.yaml': policyText } },
  });
  const controller = new Controller({ kube: c.kube, namespace: 'kbpf-system', resyncMs: 200, log: () => {} });
  await controller.start();
  t.after(() => controller.stop());
  await c.api.create(PLURAL.deployments, {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name: 'snoop' },
    spec: { package: { image: 'bpfpackage://snoop:1.0' } },
  });
  const cond = await c.until('Untrusted', async () =>
    (await c.deployment('snoop'))?.status?.conditions?.find((x) => x.type === 'Untrusted' && x.status === 'True'),
  );
  assert.match(cond.message ?? '', new RegExp(`signature missing for ${stored.digest}.*keys tried: release`));
  assert.equal((await c.deployment('snoop'))!.status!.packageDigest, stored.digest, 'resolved to the object');
  assert.deepEqual((await c.api.list(PLURAL.nodeInstances)).items, [], 'no node was asked to run it');

  // the same package, signed: stored again (a BpfPackage is immutable), the rollout goes on
  await signPackage(storeSignatures(store, 'snoop'), stored.digest, await loadPrivateKey(key.privatePath));
  const signed = await packageObject(store, 'snoop:1.0', 'snoop');
  await c.api.delete(PLURAL.packages, signed.metadata.name);
  await c.until('old object gone', async () => !(await c.api.get(PLURAL.packages, signed.metadata.name)));
  await c.api.create(PLURAL.packages, signed);
  const ni = await c.until('an instance for n1', async () => (await c.api.list(PLURAL.nodeInstances)).items[0]);
  assert.equal(ni.spec.image, `bpfpackage://snoop@${stored.digest}`);
  assert.equal(ni.spec.digest, stored.digest);
});
