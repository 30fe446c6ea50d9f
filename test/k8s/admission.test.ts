// The BpfDeployment admission policy (deploy/bpfdeployment-policy.yaml, default values) as the
// API server evaluates it: a package from outside the allowed registries, a tag not pinned by
// digest, a cgroup outside the permitted subtree, an interface off the pattern and a uprobe
// binary outside the allowed paths are refused; a deployment inside all of them is admitted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import type { KernelFeatures } from '../../src/bpf/features.js';
import { API_VERSION, type BpfDeployment, PLURAL } from '../../src/k8s/api.js';
import { connect, errorText, KbpfApi, statusCode } from '../../src/k8s/kube.js';
import { reportNode } from '../../src/k8s/node/node-report.js';
import { TestCluster } from './harness.js';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const DIGEST = `sha256:${'b'.repeat(64)}`;

test('the admission policy refuses deployments outside the allowed registries, paths and patterns', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const adm = c.kube.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const docs = k8s.loadAllYaml(readFileSync(join(DEPLOY, 'bpfdeployment-policy.yaml'), 'utf8'));
  await adm.createValidatingAdmissionPolicy({ body: docs[0] as k8s.V1ValidatingAdmissionPolicy });
  await adm.createValidatingAdmissionPolicyBinding({ body: docs[1] as k8s.V1ValidatingAdmissionPolicyBinding });

  let n = 0;
  const create = async (spec: Partial<BpfDeployment['spec']> & { package: { image: string } }) => {
    const d: BpfDeployment = { apiVersion: API_VERSION, kind: 'BpfDeployment', metadata: { name: `d${n++}` }, spec };
    try {
      await c.api.create(PLURAL.deployments, d);
      return 'admitted';
    } catch (e) {
      assert.equal(statusCode(e), 422, errorText(e));
      return errorText(e);
    }
  };
  const ok = `127.0.0.1:5000/kbpf/tcpconnect@${DIGEST}`;

  assert.match(
    await create({ package: { image: `registry.evil.example/kbpf/tcpconnect@${DIGEST}` } }),
    /ValidatingAdmissionPolicy 'kbpf-bpfdeployment-limits' with binding 'kbpf-bpfdeployment-limits' denied request: spec\.package\.image registry\.evil\.example\/kbpf\/tcpconnect@sha256:b+ is not from an allowed registry/,
  );
  assert.match(
    await create({ package: { image: `localhost.evil.example/x@${DIGEST}` } }),
    /not from an allowed registry/,
    'a host that only starts like an allowed one',
  );
  assert.match(
    await create({ package: { image: '127.0.0.1:5000/kbpf/tcpconnect:1.0.0' } }),
    /must be pinned by digest/,
  );
  assert.match(
    await create({ package: { image: ok }, attach: { cgroup: '/sys/fs/cgroup/kubepods.slice/../system.slice' } }),
    /spec\.attach\.cgroup .* is outside the permitted cgroup subtree/,
  );
  assert.match(
    await create({ package: { image: ok }, attach: { cgroup: '/' } }),
    /outside the permitted cgroup subtree/,
  );
  assert.match(
    await create({ package: { image: ok }, attach: { iface: 'lo' } }),
    /spec\.attach\.iface lo is not an allowed interface/,
  );
  assert.match(
    await create({ package: { image: ok }, attach: { programs: { probe: '/tmp/evil:main' } } }),
    /a path target must be a uprobe binary in an allowed path/,
  );
  assert.match(
    await create({ package: { image: ok }, attach: { programs: { probe: '/usr/lib/../../tmp/evil:main' } } }),
    /a path target must be/,
  );

  assert.equal(await create({ package: { image: ok } }), 'admitted');
  assert.equal(
    await create({
      package: { image: ok },
      attach: {
        cgroup: 'kubepods.slice/kubepods-burstable.slice',
        iface: 'eth0',
        programs: { probe: '/usr/lib/x86_64-linux-gnu/libc.so.6:malloc', sys: 'syscalls/sys_enter_openat' },
      },
    }),
    'admitted',
  );
  // an update is held to the same rules
  await assert.rejects(
    c.api.update(PLURAL.deployments, 'd9', (o) => ({
      ...o,
      spec: { ...o.spec, package: { image: 'docker.io/x/y:latest' } },
    })),
    /not from an allowed registry/,
  );
});

test('the agent admission policies: a node agent writes only its own BpfNode and BpfNodeInstances', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const adm = c.kube.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const docs = k8s.loadAllYaml(readFileSync(join(DEPLOY, 'admission-policy.yaml'), 'utf8'));
  for (const d of docs as { kind: string }[]) {
    if (d.kind === 'ValidatingAdmissionPolicy')
      await adm.createValidatingAdmissionPolicy({ body: d as k8s.V1ValidatingAdmissionPolicy });
    else await adm.createValidatingAdmissionPolicyBinding({ body: d as k8s.V1ValidatingAdmissionPolicyBinding });
  }
  // node agents as the API server knows them: the DaemonSet's service account, its bound token
  // naming the node (authentication.kubernetes.io/node-name), and one token without that claim
  const agent = (token: string, node?: string) => {
    c.server.addUser(token, {
      username: 'system:serviceaccount:kbpf-system:kbpf-agent',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:kbpf-system'],
      extra: node ? { 'authentication.kubernetes.io/node-name': [node] } : {},
    });
    return connect(c.server.writeKubeconfig(join(c.dir, `kubeconfig-${token}`), 'kbpf-agent', token));
  };
  const nodeA = agent('agent-node-a', 'node-a');
  const noClaim = agent('agent-no-node');
  for (const n of ['node-a', 'node-b']) await c.addNode(n);
  const probe = async () => fakeFeatures();

  // the real reporting code, as node-a's agent: its own BpfNode is created and its status written
  await reportNode(nodeA, 'node-a', probe);
  const own = await c.api.get(PLURAL.nodes, 'node-a');
  assert.equal(own?.status?.kernel, '6.18.0-test');
  assert.deepEqual(
    own?.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`),
    ['Node/node-a'],
  );
  await reportNode(nodeA, 'node-a', probe); // and refreshed
  // another node's: refused, whether it exists or not
  await assert.rejects(
    reportNode(nodeA, 'node-b', probe),
    /ValidatingAdmissionPolicy 'kbpf-agent-own-bpfnode' .*denied request: the kbpf agent on node node-a may not write BpfNode node-b/,
  );
  assert.equal(await c.api.get(PLURAL.nodes, 'node-b'), undefined);
  await reportNode(c.kube, 'node-b', probe); // the admin may
  const nodeAApi = new KbpfApi(nodeA);
  await assert.rejects(
    nodeAApi.update(PLURAL.nodes, 'node-b', (o) => ({ ...o, status: { ...o.status, kernel: 'forged' } }), {
      status: true,
    }),
    /may not write BpfNode node-b/,
  );
  assert.equal((await c.api.get(PLURAL.nodes, 'node-b'))?.status?.kernel, '6.18.0-test');
  // its own BpfNode claimed to be owned by another Node: refused
  await assert.rejects(
    nodeAApi.update(PLURAL.nodes, 'node-a', (o) => ({
      ...o,
      metadata: { ...o.metadata, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-b', uid: 'x' }] },
    })),
    /may be owned only by its own Node/,
  );
  // a token without the node claim writes no BpfNode
  await assert.rejects(reportNode(noClaim, 'node-a', probe), /has no node name in its token/);

  // and the BpfNodeInstances policy the same way: node-a may write its own instance's status only
  for (const n of ['node-a', 'node-b'])
    await c.api.create(PLURAL.nodeInstances, {
      apiVersion: API_VERSION,
      kind: 'BpfNodeInstance',
      metadata: { name: `d.${n}` },
      spec: { deployment: 'd', nodeName: n, revision: 1, image: `127.0.0.1:5000/x@${DIGEST}`, digest: DIGEST },
    });
  const setPhase = (name: string) =>
    nodeAApi.update(PLURAL.nodeInstances, name, (o) => ({ ...o, status: { ...o.status, phase: 'Running' } }), {
      status: true,
    });
  await setPhase('d.node-a');
  await assert.rejects(
    setPhase('d.node-b'),
    /the kbpf agent on node node-a may not write the BpfNodeInstance of node node-b/,
  );
  await assert.rejects(
    nodeAApi.update(PLURAL.nodeInstances, 'd.node-a', (o) => ({ ...o, spec: { ...o.spec, revision: 2 } })),
    /outside status the kbpf agent may only remove finalizers/,
  );
  await assert.rejects(
    nodeAApi.create(PLURAL.nodeInstances, {
      apiVersion: API_VERSION,
      kind: 'BpfNodeInstance',
      metadata: { name: 'e.node-a' },
      spec: { deployment: 'e', nodeName: 'node-a', revision: 1, image: `127.0.0.1:5000/x@${DIGEST}`, digest: DIGEST },
    }),
    /may not create or delete BpfNodeInstances/,
  );
});

function fakeFeatures(): KernelFeatures {
  return {
    kernel: '6.18.0-test',
    libbpf: '1.1',
    btf: true,
    jit: true,
    hooks: {},
    programTypes: {},
    mapTypes: {},
  } as unknown as KernelFeatures;
}
