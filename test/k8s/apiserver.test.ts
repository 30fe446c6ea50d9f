// The test API server's semantics, exercised through the real @kubernetes/client-node: the kbpf
// CRDs install, objects are validated against their schemas and CEL rules, stale updates get
// 409, the status subresource, selectors, watch with bookmarks, 410 Gone and the watcher's
// relist, finalizers and garbage collection of owned objects.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { API_VERSION, type BpfDeployment, type BpfNodeInstance, PLURAL } from '../../src/k8s/api.js';
import { errorText, statusCode } from '../../src/k8s/kube.js';
import { Store } from '../../src/k8s/runtime/store.js';
import { apiListWatch, Watcher } from '../../src/k8s/runtime/watcher.js';
import { TestCluster } from './harness.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

function deployment(name: string, spec: Partial<BpfDeployment['spec']> = {}): BpfDeployment {
  return {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name },
    spec: { package: { image: `127.0.0.1:5000/kbpf/opensnoop:1.0.0` }, ...spec },
  };
}

async function rejected(p: Promise<unknown>): Promise<{ code?: number; text: string }> {
  try {
    await p;
  } catch (e) {
    return { code: statusCode(e), text: errorText(e) };
  }
  assert.fail('expected the API server to refuse');
}

test('test API server: discovery, CRD schemas, CEL rules, conflicts, status, selectors', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();

  // discovery, as kubectl and the client see it
  const groups = (await c.kube.kc.makeApiClient(k8s.ApisApi).getAPIVersions()).groups.map((g) => g.name);
  assert.ok(groups.includes('kbpf.io') && groups.includes('coordination.k8s.io'));
  const res = await c.kube.custom.getAPIResources({ group: 'kbpf.io', version: 'v1alpha1' });
  assert.deepEqual(res.resources.map((r) => r.name).sort(), [
    'bpfdeployments',
    'bpfdeployments/status',
    'bpfnodeinstances',
    'bpfnodeinstances/status',
    'bpfnodes',
    'bpfnodes/status',
    'bpfpackages',
    'bpfrevisions',
  ]);

  // defaults applied, unknown fields pruned with a warning
  const created = await c.api.create(PLURAL.deployments, {
    ...deployment('snoop'),
    spec: { ...deployment('snoop').spec, bogus: 1 } as never,
  });
  assert.equal(created.spec.revisionHistoryLimit, 10);
  assert.equal(created.spec.paused, false);
  assert.equal((created.spec as unknown as Record<string, unknown>).bogus, undefined);
  assert.ok(c.server.warnings.some((w) => w.includes('spec.bogus')));
  assert.equal(created.metadata.generation, 1);

  // schema and CEL refusals say which field and why
  let r = await rejected(
    c.api.create(
      PLURAL.deployments,
      deployment('both', { nodeNames: ['a'], nodeSelector: { matchLabels: { x: 'y' } } }),
    ),
  );
  assert.equal(r.code, 422);
  assert.match(r.text, /nodeSelector and nodeNames are mutually exclusive/);
  r = await rejected(c.api.create(PLURAL.deployments, deployment('badimg', { package: { image: 'Not A Ref' } })));
  assert.match(r.text, /spec\.package\.image in body should match/);
  r = await rejected(
    c.api.create(
      PLURAL.deployments,
      deployment('mu', { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '0%' } } }),
    ),
  );
  assert.match(r.text, /maxUnavailable is a positive number of nodes or a percentage/);
  r = await rejected(
    c.api.create(
      PLURAL.deployments,
      deployment('ondelete', { strategy: { type: 'OnDelete', rollingUpdate: { maxUnavailable: 1 } } }),
    ),
  );
  assert.match(r.text, /rollingUpdate applies only to the RollingUpdate strategy/);
  r = await rejected(
    c.api.create(
      PLURAL.deployments,
      deployment('expr', { nodeSelector: { matchExpressions: [{ key: 'k', operator: 'In' }] } }),
    ),
  );
  assert.match(r.text, /operators In and NotIn need values/);
  r = await rejected(c.api.create(PLURAL.deployments, deployment('x'.repeat(64))));
  assert.match(r.text, /at most 63 characters/);
  r = await rejected(c.api.create(PLURAL.deployments, deployment('cfg', { config: { v: true as never } })));
  assert.match(r.text, /spec\.config\.v in body must be of type integer or string/);

  // 409 on a stale update; generation moves with spec only
  const stale = structuredClone(created);
  const updated = await c.api.replace(PLURAL.deployments, { ...created, spec: { ...created.spec, paused: true } });
  assert.equal(updated.metadata.generation, 2);
  r = await rejected(c.api.replace(PLURAL.deployments, { ...stale, spec: { ...stale.spec, paused: false } }));
  assert.equal(r.code, 409);
  // status subresource: main updates ignore status, status updates ignore spec
  const withStatus = await c.api.replaceStatus(PLURAL.deployments, {
    ...updated,
    spec: { ...updated.spec, paused: false },
    status: { desiredNodes: 3 },
  });
  assert.equal(withStatus.status?.desiredNodes, 3);
  assert.equal(withStatus.spec.paused, true);
  assert.equal(withStatus.metadata.generation, 2);
  const ignored = await c.api.replace(PLURAL.deployments, { ...withStatus, status: { desiredNodes: 9 } });
  assert.equal(ignored.status?.desiredNodes, 3);

  // node instances: transition rule, status rule, field and label selectors
  const ni = (node: string): BpfNodeInstance => ({
    apiVersion: API_VERSION,
    kind: 'BpfNodeInstance',
    metadata: {
      name: `snoop.${node}`,
      labels: { 'kbpf.io/node': node },
      ownerReferences: [
        { apiVersion: API_VERSION, kind: 'BpfDeployment', name: 'snoop', uid: created.metadata.uid!, controller: true },
      ],
      finalizers: ['kbpf.io/node-cleanup'],
    },
    spec: {
      deployment: 'snoop',
      nodeName: node,
      revision: 1,
      image: `127.0.0.1:5000/kbpf/opensnoop@${DIGEST}`,
      digest: DIGEST,
    },
  });
  const a = await c.api.create(PLURAL.nodeInstances, ni('node-a'));
  await c.api.create(PLURAL.nodeInstances, ni('node-b'));
  r = await rejected(c.api.replace(PLURAL.nodeInstances, { ...a, spec: { ...a.spec, nodeName: 'node-z' } }));
  assert.match(r.text, /nodeName and deployment are immutable/);
  r = await rejected(c.api.replaceStatus(PLURAL.nodeInstances, { ...a, status: { phase: 'Failed' } }));
  assert.match(r.text, /a Failed instance says why/);
  assert.deepEqual(
    (await c.api.list(PLURAL.nodeInstances, { fieldSelector: 'spec.nodeName=node-b' })).items.map(
      (x) => x.metadata.name,
    ),
    ['snoop.node-b'],
  );
  assert.deepEqual(
    (await c.api.list(PLURAL.nodeInstances, { labelSelector: 'kbpf.io/node in (node-a,node-q)' })).items.map(
      (x) => x.metadata.name,
    ),
    ['snoop.node-a'],
  );
  assert.deepEqual(
    (await c.api.list(PLURAL.nodeInstances, { labelSelector: 'kbpf.io/node!=node-a' })).items.map(
      (x) => x.metadata.name,
    ),
    ['snoop.node-b'],
  );
  r = await rejected(c.api.list(PLURAL.nodeInstances, { fieldSelector: 'spec.image=x' }));
  assert.equal(r.code, 400);

  // a watcher feeding a store sees changes, bookmarks keep it current, and 410 Gone makes it list again
  let changes = 0;
  const cache = new Store<BpfNodeInstance>();
  const watcher = new Watcher<BpfNodeInstance>(
    apiListWatch(c.kube, {
      path: '/apis/kbpf.io/v1alpha1/bpfnodeinstances',
      list: () => c.api.list(PLURAL.nodeInstances, { fieldSelector: 'spec.nodeName=node-a' }),
      fieldSelector: 'spec.nodeName=node-a',
    }),
    (e) => {
      changes += cache.apply(e).length;
    },
    { what: 'bpfnodeinstances' },
  );
  t.after(() => watcher.stop());
  await watcher.start();
  assert.deepEqual([...cache.keys()], ['snoop.node-a']);
  await c.until(
    'a watch event',
    async () => {
      await c.api.update(
        PLURAL.nodeInstances,
        'snoop.node-a',
        (o) => ({ ...o, status: { phase: 'Running', revision: 1 } }),
        { status: true },
      );
      return cache.get('snoop.node-a')?.status?.phase === 'Running';
    },
    5000,
  );
  c.server.compact();
  c.server.dropWatches();
  const relists = watcher.relists;
  await c.api.update(
    PLURAL.nodeInstances,
    'snoop.node-a',
    (o) => ({ ...o, status: { phase: 'Loading', revision: 1 } }),
    { status: true },
  );
  await c.until(
    'a relist after 410 Gone',
    () => watcher.relists > relists && cache.get('snoop.node-a')?.status?.phase === 'Loading',
    5000,
  );
  assert.ok(changes >= 3);

  // deleting the owner: dependents get deletionTimestamp (finalizer) and go once it is released
  await c.api.delete(PLURAL.deployments, 'snoop');
  const dying = await c.until(
    'garbage collection of the node instances',
    async () => {
      const items = (await c.api.list(PLURAL.nodeInstances)).items;
      return items.length === 2 && items.every((x) => x.metadata.deletionTimestamp) && items;
    },
    5000,
  );
  for (const d of dying)
    await c.api.update(PLURAL.nodeInstances, d.metadata.name, (o) => ({
      ...o,
      metadata: { ...o.metadata, finalizers: [] },
    }));
  assert.equal((await c.api.list(PLURAL.nodeInstances)).items.length, 0);
  await c.until('the store sees the deletion', () => cache.size === 0, 5000);
});
