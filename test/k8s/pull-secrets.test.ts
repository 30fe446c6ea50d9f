// Pull secrets on a (test) cluster: a registry that requires basic auth, the real controller and a
// real node agent process. kbpf reads only Secrets labelled kbpf.io/pull-secret=true, and each only
// for the deployments its annotation kbpf.io/allowed-deployments names: the controller refuses the
// others with the PullSecretRefused condition, and a node given such an instance anyway (written by
// hand, as a compromised writer would) refuses it before anything is loaded.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import { API_VERSION, type BpfDeployment, type BpfNodeInstance, instanceReady, PLURAL } from '../../src/k8s/api.js';
import {
  ANNOTATION_ALLOWED_DEPLOYMENTS,
  allowsDeployment,
  LABEL_PULL_SECRET,
  pullCredentials,
  pullSecretRefusal,
} from '../../src/k8s/pull-secrets.js';
import { bpftoolShow, type KernelIds, kernelIds, leftSince } from '../../testbed/kernel.js';
import { missingRegistryTools } from '../package/helpers.js';
import { ROOT, TestCluster } from './harness.js';

const missing = missingRegistryTools().filter((m) => m === 'docker-registry');
const skip = missing.length ? `needs the Debian package docker-registry` : false;

/** htpasswd line for user `kbpf`, password `kbpf-secret` (bcrypt, cost 4). */
const HTPASSWD = 'kbpf:$2b$04$L7aqxo5SFPntWDGAAkQwB.dL84Z82uxQbiRqeoH1GxfdaZvjG9oz2\n';
const NS = 'kbpf-system';
const NODE = 'node-a';

function secret(name: string, host: string, opts: { labelled: boolean; allowed?: string }): V1Secret {
  const auth = Buffer.from('kbpf:kbpf-secret').toString('base64');
  return {
    metadata: {
      name,
      namespace: NS,
      ...(opts.labelled ? { labels: { [LABEL_PULL_SECRET]: 'true' } } : {}),
      ...(opts.allowed !== undefined ? { annotations: { [ANNOTATION_ALLOWED_DEPLOYMENTS]: opts.allowed } } : {}),
    },
    type: 'kubernetes.io/dockerconfigjson',
    data: {
      '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [host]: { auth } } })).toString('base64'),
    },
  };
}

describe('pull secret rules (pure)', () => {
  const s = secret('creds', 'registry.test', { labelled: true, allowed: 'team-a-*, tcpconnect ,x.y' });
  it('names and * patterns in the annotation allow deployments; nothing else does', () => {
    for (const d of ['team-a-conn', 'team-a-', 'tcpconnect', 'x.y']) assert.ok(allowsDeployment(s, d), d);
    for (const d of ['team-b-conn', 'tcpconnect2', 'xzy', 'a-team-a-x']) assert.ok(!allowsDeployment(s, d), d);
    assert.ok(!allowsDeployment(secret('n', 'h', { labelled: true }), 'anything'), 'no annotation: no deployment');
  });
  it('an unlabelled Secret is no pull secret; a refusal says what to change', () => {
    const where = { namespace: NS, name: 'creds' };
    assert.match(
      pullSecretRefusal(secret('creds', 'h', { labelled: false, allowed: '*' }), where, 'd')!.message,
      /no Secret of that name labelled kbpf\.io\/pull-secret=true .*kubectl label secret -n kbpf-system creds/,
    );
    assert.match(
      pullSecretRefusal(s, where, 'other')!.message,
      /^pull secret kbpf-system\/creds does not allow deployment other \(its kbpf\.io\/allowed-deployments: "team-a-\*,tcpconnect,x\.y"; add other/,
    );
    assert.deepEqual(
      { ...pullCredentials(s, where, 'tcpconnect') },
      {
        'registry.test': { username: 'kbpf', password: 'kbpf-secret' },
      },
    );
  });
});

function deployment(name: string, image: string, pullSecret: string): BpfDeployment {
  return {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name },
    spec: { package: { image, pullSecret } },
  };
}

describe('pull secrets: only labelled Secrets, only for the deployments they allow', { skip, timeout: 180_000 }, () => {
  const c = new TestCluster({ registryAuth: { htpasswd: HTPASSWD, username: 'kbpf', password: 'kbpf-secret' } });
  let ref: string;
  let before0: KernelIds;

  before(async () => {
    before0 = kernelIds();
    await c.start();
    ref = (await c.publish([{ dir: join(ROOT, 'examples/tcpconnect'), tag: 'tcpconnect:1.0.0' }]))['tcpconnect:1.0.0']!;
    const host = c.registryHost!;
    await c.kube.core.createNamespacedSecret({
      namespace: NS,
      body: secret('creds', host, { labelled: true, allowed: 'team-a-*' }),
    });
    await c.kube.core.createNamespacedSecret({
      namespace: NS,
      body: secret('unlabelled', host, { labelled: false, allowed: '*' }),
    });
    await c.addNode(NODE);
    c.startController();
    c.startAgent(NODE);
  });

  after(async () => {
    await c.stop();
  });

  const condition = async (name: string, type: string) =>
    (await c.deployment(name))?.status?.conditions?.find((x) => x.type === type);

  let digest = '';
  it('a deployment the Secret allows pulls with its credentials and runs', async () => {
    await c.api.create(PLURAL.deployments, deployment('team-a-conn', ref, 'creds'));
    const [ni] = await c.until('team-a-conn running', async () => {
      const nis = await c.instances('team-a-conn');
      return nis.length === 1 && nis.every(instanceReady) ? nis : undefined;
    });
    assert.ok((ni!.status?.programs ?? []).length > 0);
    digest = ni!.spec.digest;
    assert.equal((await condition('team-a-conn', 'PullSecretRefused'))?.status, undefined);
  });

  it('a deployment the Secret does not name: PullSecretRefused, and no node is asked to run it', async () => {
    await c.api.create(PLURAL.deployments, deployment('other', ref, 'creds'));
    const cond = await c.until('other refused', () => condition('other', 'PullSecretRefused'));
    assert.equal(cond.status, 'True');
    assert.match(cond.message!, /pull secret kbpf-system\/creds does not allow deployment other/);
    const progressing = await condition('other', 'Progressing');
    assert.equal(progressing?.reason, 'PullSecretRefused');
    assert.deepEqual(await c.instances('other'), []);
  });

  it('a Secret without the label is not read at all (refused as not found)', async () => {
    await c.api.create(PLURAL.deployments, deployment('team-a-unlabelled', ref, 'unlabelled'));
    const cond = await c.until('team-a-unlabelled refused', () => condition('team-a-unlabelled', 'PullSecretRefused'));
    assert.match(
      cond.message!,
      /pull secret kbpf-system\/unlabelled: no Secret of that name labelled kbpf\.io\/pull-secret=true/,
    );
    assert.deepEqual(await c.instances('team-a-unlabelled'), []);
  });

  it('the node refuses an instance whose pull secret does not allow it, even with the package at hand', async () => {
    const progs = new Set(bpftoolShow('prog').map((p) => p.id as number));
    for (const [deploymentName, pullSecret, why] of [
      ['rogue', 'creds', /does not allow deployment rogue/],
      ['team-a-rogue', 'unlabelled', /no Secret of that name labelled/],
    ] as const) {
      const ni: BpfNodeInstance = {
        apiVersion: API_VERSION,
        kind: 'BpfNodeInstance',
        metadata: { name: `${deploymentName}-${NODE}` },
        spec: {
          deployment: deploymentName,
          nodeName: NODE,
          revision: 1,
          image: `${ref.replace(/:[^:/]*$/, '')}@${digest}`,
          digest,
          pullSecret,
        },
      };
      await c.api.create(PLURAL.nodeInstances, ni);
      const failed = await c.until(`${deploymentName} failed on the node`, async () => {
        const got = await c.api.get(PLURAL.nodeInstances, ni.metadata.name);
        return got?.status?.phase === 'Failed' ? got : undefined;
      });
      assert.match(failed.status!.message!, why);
      assert.deepEqual(failed.status!.programs ?? [], []);
      await c.api.delete(PLURAL.nodeInstances, ni.metadata.name);
    }
    const added = bpftoolShow('prog').filter((p) => !progs.has(p.id as number));
    assert.deepEqual(added, [], 'nothing was loaded for the refused instances');
  });

  it('the Secret allowing it later lets the deployment go on (the controller watches pull secrets)', async () => {
    const s = await c.kube.core.readNamespacedSecret({ name: 'creds', namespace: NS });
    s.metadata!.annotations = { [ANNOTATION_ALLOWED_DEPLOYMENTS]: 'team-a-*, other' };
    await c.kube.core.replaceNamespacedSecret({ name: 'creds', namespace: NS, body: s });
    await c.until('other running', async () => {
      const nis = await c.instances('other');
      return nis.length === 1 && nis.every(instanceReady);
    });
    const cond = await c.until('other allowed', async () => {
      const x = await condition('other', 'PullSecretRefused');
      return x?.status === 'False' ? x : undefined;
    });
    assert.equal(cond.reason, 'Allowed');
  });

  it('deleting the deployments leaves nothing in the kernel', async () => {
    const ours = new Set(
      (await c.api.list(PLURAL.nodeInstances)).items.flatMap((n) => (n.status?.programs ?? []).map((p) => p.progId)),
    );
    assert.ok(ours.size > 0);
    for (const d of ['team-a-conn', 'other', 'team-a-unlabelled']) await c.api.delete(PLURAL.deployments, d);
    await c.until('instances gone', async () => (await c.api.list(PLURAL.nodeInstances)).items.length === 0);
    const left = await leftSince(before0, 10_000);
    assert.deepEqual(
      left.prog.filter((id) => ours.has(id)),
      [],
      'no program of the deployments is left',
    );
  });
});
