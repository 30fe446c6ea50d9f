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
import { API_VERSION, type BpfDeployment, PLURAL } from '../../src/k8s/api.js';
import { errorText, statusCode } from '../../src/k8s/kube.js';
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
