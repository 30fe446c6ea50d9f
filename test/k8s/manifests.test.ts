// deploy/ checked without a cluster: every manifest structurally against the Kubernetes API
// models that @kubernetes/client-node ships (generated from the Kubernetes OpenAPI spec: every
// field must exist in the model, with the model's type); the CRDs as the API server checks them
// (structural schemas, CEL rules that compile, selectable fields) plus an example object
// validated against its schema; the Helm chart rendered with its default values equals the
// plain manifests; and the least-privilege properties of RBAC and the DaemonSet.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { type Schema, validate } from '../../testbed/apiserver/schema.js';
import { validateCrd } from '../../testbed/apiserver/server.js';
import { crdFiles, loadYaml, ROOT } from './harness.js';

const DEPLOY = join(ROOT, 'deploy');
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>;

function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').at(-1)!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/** Problems of `value` against client-node model `type` ('' when it conforms). */
function check(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  if (type === 'any' || type === 'object') return;
  if (type === 'string') {
    if (typeof value !== 'string') out.push(`${path}: expected string, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'number') {
    if (typeof value !== 'number') out.push(`${path}: expected number, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'boolean') {
    if (typeof value !== 'boolean') out.push(`${path}: expected boolean, got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'Date') {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) out.push(`${path}: expected a date`);
    return;
  }
  if (type === 'IntOrString') {
    if (typeof value !== 'string' && typeof value !== 'number') out.push(`${path}: expected int or string`);
    return;
  }
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (!Array.isArray(value)) out.push(`${path}: expected a list`);
    else
      value.forEach((v, i) => {
        check(v, arr[1]!, `${path}[${i}]`, out);
      });
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) out.push(`${path}: expected a map`);
    else for (const [k, v] of Object.entries(value)) check(v, map[1]!, `${path}.${k}`, out);
    return;
  }
  const model = models[type];
  if (!model?.getAttributeTypeMap) {
    if (typeof value !== 'string') out.push(`${path}: unknown type ${type}`); // enums are strings
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    out.push(`${path}: expected an object (${type})`);
    return;
  }
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    let t = attrs.get(k);
    if (t === undefined) {
      out.push(`${path}.${k}: no such field in ${type}`);
      continue;
    }
    // JSONSchemaProps.items / additionalProperties are typed any (schema or bool): check schemas
    if (type === 'V1JSONSchemaProps' && (k === 'items' || k === 'additionalProperties') && typeof v === 'object')
      t = 'V1JSONSchemaProps';
    check(v, t, `${path}.${k}`, out);
  }
}

function manifestFiles(): string[] {
  const top = readdirSync(DEPLOY)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(DEPLOY, f));
  return [...top, ...crdFiles()];
}

test('every manifest in deploy/ conforms to the Kubernetes API models client-node ships', () => {
  let count = 0;
  const kinds = new Set<string>();
  for (const f of manifestFiles()) {
    const typed = k8s.loadAllYaml(readFileSync(f, 'utf8'));
    for (const [i, doc] of loadYaml(f).entries()) {
      const model = modelName(String(doc.apiVersion), String(doc.kind));
      assert.ok(models[model]?.getAttributeTypeMap, `${f}: ${doc.apiVersion} ${doc.kind} has no model ${model}`);
      const problems: string[] = [];
      check(
        doc,
        model,
        `${f.slice(DEPLOY.length + 1)}:${doc.kind}/${(doc.metadata as { name: string }).name}`,
        problems,
      );
      assert.deepEqual(problems, []);
      // and the client's own round trip keeps every field
      const round = parseYaml(k8s.dumpYaml(typed[i]));
      assert.deepEqual(round, doc, `${f}: ${doc.kind} survives client-node serialisation`);
      count++;
      kinds.add(String(doc.kind));
    }
  }
  for (const k of [
    'Namespace',
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
    'ValidatingAdmissionPolicy',
    'ValidatingAdmissionPolicyBinding',
    'DaemonSet',
    'Deployment',
    'CustomResourceDefinition',
  ]) {
    assert.ok(kinds.has(k), `deploy/ has a ${k}`);
  }
  assert.ok(count >= 18);
  // the check itself notices a misspelt field and a wrong type
  const bad: string[] = [];
  check(
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'x' },
      spec: { template: { spec: { containers: [{ name: 'c', privilegd: true, ports: [{ containerPort: '80' }] }] } } },
    },
    'V1DaemonSet',
    'bad',
    bad,
  );
  assert.deepEqual(bad, [
    'bad.spec.template.spec.containers[0].privilegd: no such field in V1Container',
    'bad.spec.template.spec.containers[0].ports[0].containerPort: expected number, got "80"',
  ]);
});

test("the CRDs pass the API server's CRD checks and the example validates against its schema", () => {
  const crds = crdFiles().flatMap((f) => loadYaml(f));
  assert.deepEqual(crds.map((c) => (c.metadata as { name: string }).name).sort(), [
    'bpfdeployments.kbpf.io',
    'bpfnodeinstances.kbpf.io',
    'bpfnodes.kbpf.io',
    'bpfpackages.kbpf.io',
    'bpfrevisions.kbpf.io',
  ]);
  for (const crd of crds) assert.deepEqual(validateCrd(crd as never), [], `${(crd.metadata as { name: string }).name}`);
  const deploymentCrd = crds.find((c) => (c.metadata as { name: string }).name === 'bpfdeployments.kbpf.io')!;
  const schema = (deploymentCrd.spec as { versions: { schema: { openAPIV3Schema: Schema } }[] }).versions[0]!.schema
    .openAPIV3Schema;
  for (const doc of loadYaml(join(DEPLOY, 'examples/tcpconnect.yaml'))) {
    const p = { errors: [] as string[], warnings: [] as string[] };
    validate(schema, doc, '', p, undefined, true);
    assert.deepEqual(p, { errors: [], warnings: [] });
  }
});

/**
 * The subset of Helm templating the chart uses: {{ .Values.a.b }}, {{ .Release.Namespace }} and
 * (not nested) {{- if .Values.a.b }} … {{- end }}; anything else is refused.
 */
function render(template: string, values: Record<string, unknown>, release: { Namespace: string }): string {
  const value = (path: string): unknown => {
    let v: unknown = values;
    for (const k of path.split('.')) v = (v as Record<string, unknown>)?.[k];
    if (v === undefined) throw new Error(`.Values.${path} is not set in values.yaml`);
    return v;
  };
  const ifs = template.replace(
    /\{\{-?\s*if\s+\.Values\.([A-Za-z0-9_.]+)\s*-?\}\}([\s\S]*?)\{\{-?\s*end\s*-?\}\}/g,
    (_m, path: string, body: string) => (value(path) ? body : ''),
  );
  return ifs.replace(/\{\{-?\s*([^}]*?)\s*-?\}\}/g, (_m, expr: string) => {
    if (expr === '.Release.Namespace') return release.Namespace;
    const m = /^\.Values\.([A-Za-z0-9_.]+)$/.exec(expr);
    if (!m) throw new Error(`template action {{ ${expr} }} is outside what this renderer supports`);
    return String(value(m[1]!));
  });
}

test('the Helm chart renders (default values, namespace.create=true) exactly the manifests in deploy/', () => {
  const chart = join(DEPLOY, 'chart/kbpf');
  const meta = parseYaml(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as {
    apiVersion: string;
    name: string;
    version: string;
  };
  assert.equal(meta.apiVersion, 'v2');
  assert.equal(meta.name, 'kbpf');
  const values = parseYaml(readFileSync(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  // helm install --create-namespace: the chart has no object for the release namespace, which helm makes
  assert.equal((values.namespace as { create: boolean }).create, false);
  const helmNamespaces = render(readFileSync(join(chart, 'templates/namespace.yaml'), 'utf8'), values, {
    Namespace: 'kbpf-system',
  })
    .split(/^---$/m)
    .map((d) => parseYaml(d) as { metadata: { name: string } } | null)
    .filter((d) => d !== null)
    .map((d) => d.metadata.name);
  assert.deepEqual(helmNamespaces, ['kbpf-pull-secrets']);
  // the plain manifests: rendered with it
  (values.namespace as { create: boolean }).create = true;
  const templates = readdirSync(join(chart, 'templates'))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const plain = readdirSync(DEPLOY)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  assert.deepEqual(templates, plain, 'one template per manifest');
  for (const f of templates) {
    const rendered = render(readFileSync(join(chart, 'templates', f), 'utf8'), values, { Namespace: 'kbpf-system' });
    const docs = rendered
      .split(/^---$/m)
      .map((d) => parseYaml(d))
      .filter(Boolean);
    assert.deepEqual(docs, loadYaml(join(DEPLOY, f)), `templates/${f} renders deploy/${f}`);
  }
  for (const f of readdirSync(join(DEPLOY, 'crds'))) {
    assert.equal(
      readFileSync(join(chart, 'crds', f), 'utf8'),
      readFileSync(join(DEPLOY, 'crds', f), 'utf8'),
      `chart crds/${f} is deploy/crds/${f}`,
    );
  }
});

test('least privilege: RBAC and the agent DaemonSet', () => {
  const rbac = loadYaml(join(DEPLOY, 'rbac.yaml')) as unknown as k8s.V1ClusterRole[];
  const role = (kind: string, name: string) =>
    rbac.find((r) => (r as { kind?: string }).kind === kind && r.metadata!.name === name)!;
  const agent = role('ClusterRole', 'kbpf-agent');
  const verbs = (r: k8s.V1ClusterRole, res: string) =>
    r.rules!.filter((x) => x.resources!.includes(res)).flatMap((x) => x.verbs);
  assert.deepEqual(verbs(agent, 'bpfnodeinstances').sort(), ['get', 'list', 'update', 'watch']);
  assert.deepEqual(verbs(agent, 'bpfnodeinstances/status').sort(), ['get', 'update']);
  assert.deepEqual(verbs(agent, 'bpfdeployments'), [], 'the agent cannot read or change deployments');
  for (const r of rbac.filter((x) => (x as { kind?: string }).kind === 'ClusterRole')) {
    assert.ok(
      !r.rules!.some((x) => x.resources!.includes('secrets') || x.verbs.includes('*') || x.resources!.includes('*')),
      `${r.metadata!.name}: no cluster-wide secrets, no wildcards`,
    );
  }
  // Secrets: none in kbpf-system; pull secrets only in the pull-secret namespace (list/watch
  // there: RBAC cannot select the kbpf.io/pull-secret label)
  const secretRules = (r: k8s.V1Role) => r.rules!.filter((x) => x.resources!.includes('secrets'));
  assert.deepEqual(secretRules(role('Role', 'kbpf-agent')), [], 'the agent reads no Secret in kbpf-system');
  assert.deepEqual(secretRules(role('Role', 'kbpf-controller')), [], 'the controller reads no Secret in kbpf-system');
  const pullRole = role('Role', 'kbpf-pull-secrets');
  assert.equal(pullRole.metadata!.namespace, 'kbpf-pull-secrets');
  assert.deepEqual(
    secretRules(pullRole).flatMap((x) => x.verbs),
    ['list', 'watch'],
  );
  const pullBinding = role('RoleBinding', 'kbpf-pull-secrets') as unknown as k8s.V1RoleBinding;
  assert.deepEqual(pullBinding.subjects!.map((x) => x.name).sort(), ['kbpf-agent', 'kbpf-controller']);
  const namespaces = loadYaml(join(DEPLOY, 'namespace.yaml')).map((n) => (n.metadata as { name: string }).name);
  assert.deepEqual(namespaces, ['kbpf-system', 'kbpf-pull-secrets']);
  // the logs path: the agents may review tokens, readers may make tokens of kbpf-logs-reader only
  const logs = loadYaml(join(DEPLOY, 'logs-rbac.yaml')) as unknown as (k8s.V1ClusterRole & { kind: string })[];
  const logsRole = (kind: string, name: string) => logs.find((r) => r.kind === kind && r.metadata!.name === name)!;
  assert.deepEqual(logsRole('ClusterRole', 'kbpf-agent-logs').rules, [
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  ]);
  assert.deepEqual(logsRole('Role', 'kbpf-logs-reader').rules, [
    { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['kbpf-logs-reader'], verbs: ['create'] },
  ]);
  assert.ok(logsRole('ServiceAccount', 'kbpf-logs-reader'), 'the reader account is made by the chart, not by hand');
  for (const r of logs.filter((x) => x.kind === 'ClusterRole'))
    assert.ok(!r.rules!.some((x) => x.resources!.includes('secrets') || x.verbs.includes('*')), r.metadata!.name);
  const vap = loadYaml(join(DEPLOY, 'admission-policy.yaml'))[0] as unknown as k8s.V1ValidatingAdmissionPolicy;
  assert.match(vap.spec!.matchConditions![0]!.expression, /system:serviceaccount:kbpf-system:kbpf-agent/);
  assert.ok(vap.spec!.validations!.some((v) => v.expression.includes('oldObject.spec.nodeName == variables.node')));

  const ds = loadYaml(join(DEPLOY, 'agent-daemonset.yaml'))[0] as unknown as k8s.V1DaemonSet;
  const pod = ds.spec!.template.spec!;
  const sc = pod.containers[0]!.securityContext!;
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities!.drop, ['ALL']);
  assert.deepEqual([...sc.capabilities!.add!].sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
  assert.deepEqual(
    pod
      .volumes!.filter((v) => v.hostPath)
      .map((v) => v.hostPath!.path)
      .sort(),
    ['/sys/fs/bpf', '/sys/fs/cgroup', '/sys/kernel/btf', '/sys/kernel/tracing', '/var/lib/kbpf'],
  );
  const mounts = new Map(pod.containers[0]!.volumeMounts!.map((m) => [m.name, m]));
  for (const ro of ['cgroup', 'btf', 'tracefs'])
    assert.equal(mounts.get(ro)!.readOnly, true, `${ro} is mounted read-only`);
  assert.equal(pod.hostPID, undefined);
  const ctl = loadYaml(join(DEPLOY, 'controller-deployment.yaml'))[0] as unknown as k8s.V1Deployment;
  const cpod = ctl.spec!.template.spec!;
  assert.equal(cpod.securityContext!.runAsNonRoot, true);
  assert.equal(cpod.volumes, undefined, 'the controller has no volumes');
  assert.deepEqual(cpod.containers[0]!.securityContext!.capabilities!.drop, ['ALL']);
});

test('the krew manifest installs the plugin as package.json bin names it, with what it loads', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const krew = parseYaml(readFileSync(join(DEPLOY, 'krew/bpf.yaml'), 'utf8')) as {
    metadata: { name: string };
    spec: { version: string; platforms: { bin: string; files: { from: string; to: string }[] }[] };
  };
  assert.equal(krew.metadata.name, 'bpf', 'kubectl bpf');
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(krew.spec.version, `v${version}`);
  const plugins = Object.entries(pkg.bin).filter(([name]) => name.startsWith('kubectl'));
  assert.deepEqual(plugins.map(([n]) => n).sort(), ['kubectl-bpf', 'kubectl_complete-bpf']);
  for (const p of krew.spec.platforms) {
    assert.equal(p.bin, pkg.bin['kubectl-bpf']);
    const from = p.files.map((f) => f.from);
    for (const [, file] of plugins) assert.ok(from.includes(file), `${file} is installed`);
    // what bin/kubectl-bpf loads: the built code, its dependencies, package.json (ESM), the C headers
    for (const need of ['dist/**', 'node_modules/**', 'package.json', 'src/compile/include/**'])
      assert.ok(from.includes(need), `${need} is installed`);
  }
});
