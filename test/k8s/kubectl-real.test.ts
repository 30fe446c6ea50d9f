// The operator's path through Debian's real kubectl — a client nobody here wrote — against the
// test API server: `kubectl apply -f deploy/` with validation on (kubectl finds the server's
// OpenAPI v3 documents and lets it validate fields strictly), `kubectl get` showing the CRDs'
// printer columns (the Table format), `kubectl explain` from the CRD schemas, `kubectl delete`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { API_VERSION } from '../../src/k8s/api.js';
import { TestApiServer } from '../../testbed/apiserver/server.js';
import { ROOT, TestCluster } from './harness.js';
import { kubectl, kubectlEnv, needsKubectl } from './kubectl.js';

const DIGEST = `sha256:${'b'.repeat(64)}`;
const IMAGE = `127.0.0.1:5000/kbpf/opensnoop@${DIGEST}`;

/** A BpfDeployment of IMAGE, straight through the API. */
async function createDeployment(c: TestCluster, name: string, labels?: Record<string, string>): Promise<void> {
  await c.api.create('bpfdeployments', {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { package: { image: IMAGE } },
  });
}

/** The header and rows of kubectl's table output, split on runs of 2+ spaces. */
function rows(out: string): string[][] {
  return out
    .trimEnd()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));
}

test('kubectl apply -f deploy/ with validation on, against the test API server', { skip: needsKubectl }, async (t) => {
  const server = new TestApiServer();
  t.after(() => server.stop());
  await server.start();
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-kubectl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kc = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const apply = await kubectl(kc, ['apply', '-f', join(ROOT, 'deploy/crds'), '-f', join(ROOT, 'deploy')]);
  assert.equal(apply.code, 0, apply.stderr);
  assert.doesNotMatch(apply.stderr, /openapi|validat/i, apply.stderr);
  for (const o of [
    'customresourcedefinition.apiextensions.k8s.io/bpfdeployments.kbpf.io created',
    'daemonset.apps/kbpf-agent created',
    'deployment.apps/kbpf-controller created',
    'clusterrole.rbac.authorization.k8s.io/kbpf-agent created',
    'validatingadmissionpolicy.admissionregistration.k8s.io/kbpf-bpfdeployment-limits created',
  ])
    assert.ok(apply.stdout.includes(o), `${o} in:\n${apply.stdout}`);
  assert.ok(
    server.requests.some((r) => r.path === '/openapi/v3' && r.code === 200),
    'kubectl read the OpenAPI index',
  );
  // again: nothing changed (kubectl computes the patches from the last-applied configuration)
  const again = await kubectl(kc, ['apply', '-f', join(ROOT, 'deploy/crds'), '-f', join(ROOT, 'deploy')]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /daemonset\.apps\/kbpf-agent unchanged/);

  // validation is on: an unknown field is refused by the server (fieldValidation=Strict)
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    stringify({
      apiVersion: API_VERSION,
      kind: 'BpfDeployment',
      metadata: { name: 'typo' },
      spec: { package: { image: IMAGE }, nodeSelektor: { matchLabels: { a: 'b' } } },
    }),
  );
  const refused = await kubectl(kc, ['apply', '-f', bad]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /unknown field "spec\.nodeSelektor"/);

  // explain, from the CRD schema
  const explain = await kubectl(kc, ['explain', 'bpfdeployment.spec']);
  assert.equal(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /KIND:\s+BpfDeployment/);
  assert.match(explain.stdout, /^\s+package\s+<Object> -required-/m);
  assert.match(explain.stdout, /^\s+nodeSelector\s+<Object>/m);
  const image = await kubectl(kc, ['explain', 'bpfdeployment.spec.package.image']);
  assert.match(image.stdout, /registry reference of the package/);
  const ni = await kubectl(kc, ['explain', 'bpfnodeinstances.status.phase']);
  assert.equal(ni.code, 0, ni.stderr);
});

test('kubectl get shows the printer columns of the CRDs; kubectl delete', { skip: needsKubectl }, async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const manifest = join(c.dir, 'objects.yaml');
  writeFileSync(
    manifest,
    [
      {
        apiVersion: API_VERSION,
        kind: 'BpfDeployment',
        metadata: { name: 'snoop' },
        spec: { package: { image: IMAGE } },
      },
      {
        apiVersion: API_VERSION,
        kind: 'BpfNodeInstance',
        metadata: { name: 'snoop.node-a' },
        spec: { deployment: 'snoop', nodeName: 'node-a', revision: 1, image: IMAGE, digest: DIGEST },
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  );
  const applied = await kubectl(c.kubeconfig, ['apply', '-f', manifest]);
  assert.equal(applied.code, 0, applied.stderr);
  await c.api.update(
    'bpfdeployments',
    'snoop',
    (d) => ({
      ...d,
      status: { desiredNodes: 3, readyNodes: 2, updatedNodes: 2, failedNodes: 1 },
    }),
    { status: true },
  );
  await c.api.update(
    'bpfnodeinstances',
    'snoop.node-a',
    (n) => ({
      ...n,
      status: { phase: 'Failed', revision: 1, message: 'no such hook' },
    }),
    { status: true },
  );

  const d = rows((await kubectl(c.kubeconfig, ['get', 'bpfdeployments'])).stdout);
  assert.deepEqual(d[0], ['NAME', 'IMAGE', 'DESIRED', 'READY', 'UPDATED', 'FAILED', 'AGE']);
  assert.deepEqual(d[1]!.slice(0, 6), ['snoop', IMAGE, '3', '2', '2', '1']);
  assert.match(d[1]![6]!, /^\d+s$/);
  const n = rows((await kubectl(c.kubeconfig, ['get', 'bpfnodeinstances'])).stdout);
  assert.deepEqual(n, [
    ['NAME', 'NODE', 'DEPLOYMENT', 'REVISION', 'PHASE'],
    ['snoop.node-a', 'node-a', 'snoop', '1', 'Failed'],
  ]);
  const wide = rows((await kubectl(c.kubeconfig, ['get', 'bpfni', '-o', 'wide'])).stdout);
  assert.deepEqual(wide[0], ['NAME', 'NODE', 'DEPLOYMENT', 'REVISION', 'PHASE', 'MESSAGE']);
  assert.equal(wide[1]![5], 'no such hook');
  const one = rows((await kubectl(c.kubeconfig, ['get', 'bpfdeployment', 'snoop'])).stdout);
  assert.equal(one.length, 2);
  assert.equal(one[1]![0], 'snoop');
  // the category: kubectl get kbpf
  const all = await kubectl(c.kubeconfig, ['get', 'kbpf']);
  assert.match(all.stdout, /bpfdeployment\.kbpf\.io\/snoop/);

  const del = await kubectl(c.kubeconfig, ['delete', 'bpfdeployment', 'snoop']);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, /bpfdeployment\.kbpf\.io "snoop" deleted/);
  assert.equal(await c.deployment('snoop'), undefined);
  const none = await kubectl(c.kubeconfig, ['get', 'bpfdeployments']);
  assert.match(none.stderr, /No resources found/);
  const missing = await kubectl(c.kubeconfig, ['delete', 'bpfdeployment', 'snoop']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /NotFound.*"snoop" not found/);
});

test('kubectl completes kubectl bpf through kubectl_complete-bpf: verbs, flags, deployment and node names', {
  skip: needsKubectl,
}, async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  await createDeployment(c, 'snoop-open');
  await c.kube.core.createNode({ body: { metadata: { name: 'worker-7' } } });
  // what kubectl's bash/zsh completion asks it: `kubectl __complete WORDS…`
  const complete = async (...words: string[]) => {
    const r = await kubectl(c.kubeconfig, ['__complete', 'bpf', ...words]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /About to call: .*kubectl_complete-bpf/);
    return r.stdout.trimEnd().split('\n');
  };
  assert.deepEqual(await complete('logs', 'sn'), ['snoop-open', ':4'], 'an instance (deployment) name');
  assert.deepEqual(await complete('rollout', 'undo', ''), ['snoop-open', ':4']);
  assert.ok((await complete('')).includes('packages'));
  assert.ok((await complete('ro')).includes('rollback'));
  assert.deepEqual(await complete('ps', '--node', 'w'), ['worker-7', ':4'], 'a node name');
  assert.deepEqual(await complete('ps', '-o', 'j'), ['json', ':4']);
  assert.ok((await complete('run', '-')).includes('--inst'));
  assert.equal((await complete('run', './')).at(-1), ':0', 'run completes file names');
});

test('kubectl bpf ps -w prints an instance again when it changes; rm -l, rm --all', {
  skip: needsKubectl,
}, async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  for (const [name, team] of [
    ['snoop', 'obs'],
    ['conn', 'net'],
    ['drop', 'net'],
  ] as const)
    await createDeployment(c, name, { team });
  await c.api.create('bpfnodeinstances', {
    apiVersion: API_VERSION,
    kind: 'BpfNodeInstance',
    metadata: { name: 'snoop.node-a' },
    spec: { deployment: 'snoop', nodeName: 'node-a', revision: 1, image: IMAGE, digest: DIGEST },
  });
  const p = spawn('kubectl', ['bpf', 'ps', '-w'], { env: kubectlEnv(c.kubeconfig), stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => p.kill('SIGKILL'));
  let out = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await c.until('the first listing', () => /^snoop\s+node-a\s+-→1\s+Pending/m.test(out));
  await c.api.update(
    'bpfnodeinstances',
    'snoop.node-a',
    (n) => ({ ...n, status: { phase: 'Running', revision: 1, observedGeneration: 1 } }),
    { status: true },
  );
  await c.until('the row again, Running', () => /^snoop\s+node-a\s+1\s+Running/m.test(out));
  assert.equal(out.match(/^DEPLOYMENT/gm)?.length, 1, 'one header');
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGINT');
  await exited;

  const none = await kubectl(c.kubeconfig, ['bpf', 'rm']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /name a deployment, or say --all or -l SELECTOR/);
  const byLabel = await kubectl(c.kubeconfig, ['bpf', 'rm', '-l', 'team=net']);
  assert.equal(byLabel.code, 0, byLabel.stderr);
  assert.deepEqual(byLabel.stdout.trim().split('\n').sort(), [
    'bpfdeployment.kbpf.io/conn deleted',
    'bpfdeployment.kbpf.io/drop deleted',
  ]);
  const all = await kubectl(c.kubeconfig, ['bpf', 'delete', '--all']);
  assert.equal(all.stdout, 'bpfdeployment.kbpf.io/snoop deleted\n');
  assert.deepEqual((await c.api.list('bpfdeployments')).items, []);
});
