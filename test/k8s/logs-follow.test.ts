// kubectl bpf logs -f --all and -f -l follow the nodes a deployment comes to run on after they
// started, and drop the ones it leaves: the real controller and node agents (each in its own
// network namespace, serving its log endpoint over TLS there) against the test API server. Nodes
// join while two followers run; a node that leaves (its Node deleted, its instance removed) no
// longer has a follower's connection on its endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_VERSION, type BpfDeployment, instanceReady, PLURAL } from '../../src/k8s/api.js';
import { netnsPath, run } from '../../testbed/netns.js';
import { missingRegistryTools } from '../package/helpers.js';
import { CONNECT_LOOP, CONNECT_PORT } from './fixtures.js';
import { ROOT, TestCluster } from './harness.js';
import { type Follower, kubectlFollow, needsKubectl } from './kubectl.js';

const missing = missingRegistryTools().filter((m) => m === 'docker-registry');
const skip = missing.length ? 'needs the Debian package docker-registry' : needsKubectl;

interface LogLine {
  node: string;
  event?: { dport?: number };
}

describe('kubectl bpf logs -f picks up nodes that join and drops nodes that go', { skip, timeout: 240_000 }, () => {
  const c = new TestCluster({ netns: true });

  before(async () => {
    await c.start();
    const refs = await c.publish([{ dir: `${ROOT}/examples/tcpconnect`, tag: 'tcpconnect:1.0.0' }]);
    await c.addNode('node-a', { pool: 'blue' });
    c.startController('controller-0');
    c.startAgent('node-a');
    const d: BpfDeployment = {
      apiVersion: API_VERSION,
      kind: 'BpfDeployment',
      metadata: { name: 'conn' },
      spec: { package: { image: refs['tcpconnect:1.0.0']! } },
    };
    await c.api.create(PLURAL.deployments, d);
    await c.until(
      'conn running on node-a',
      async () => (await c.instances('conn')).some((n) => n.spec.nodeName === 'node-a' && instanceReady(n)),
      60_000,
    );
  });

  after(() => c.stop());

  const follow = (args: string[]): Follower =>
    kubectlFollow(c.kubeconfig, ['bpf', 'logs', '-f', '-o', 'json', ...args, 'conn'], (fn) => c.onCleanup(fn));
  const events = (f: Follower, node: string): number =>
    f.lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.node === node && l.event?.dport === CONNECT_PORT)
      .length;

  /** the port of the node's log endpoint, as its BpfNode advertises it */
  const endpointPort = async (node: string): Promise<string> => {
    const url = (await c.api.get(PLURAL.nodes, node))?.status?.logs?.url;
    assert.ok(url, `${node} advertises its endpoint`);
    return new URL(url).port;
  };
  /** established TCP connections on that port, counted in the node's network namespace */
  const connectionsTo = async (node: string, port: string): Promise<number> => {
    const ns = c.nodes.get(node)!.netns!;
    const r = await run('nsenter', [
      `--net=${netnsPath(ns)}`,
      'ss',
      '-Htn',
      'state',
      'established',
      `( sport = :${port} )`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l.trim()).length;
  };

  it('follows node-a, then node-b (blue) and node-c (green) once they join; -l pool=blue only the blue ones', async () => {
    const all = follow(['--all']);
    const blue = follow(['-l', 'pool=blue']);
    c.startWorkload('node-a', CONNECT_LOOP);
    await c.until('node-a events in both followers', () => events(all, 'node-a') >= 3 && events(blue, 'node-a') >= 3);

    // two nodes join after the followers started
    for (const [name, pool] of [
      ['node-b', 'blue'],
      ['node-c', 'green'],
    ] as const) {
      await c.addNode(name, { pool });
      c.startAgent(name);
    }
    await c.until(
      'conn running on the new nodes',
      async () => (await c.instances('conn')).filter((n) => instanceReady(n)).length === 3,
      60_000,
    );
    c.startWorkload('node-b', CONNECT_LOOP);
    c.startWorkload('node-c', CONNECT_LOOP);
    await c
      .until(
        'events of the nodes that joined',
        () => events(all, 'node-b') >= 5 && events(all, 'node-c') >= 5 && events(blue, 'node-b') >= 5,
        30_000,
      )
      .catch((e: Error) => {
        const seen = (f: Follower) => ['node-a', 'node-b', 'node-c'].map((n) => `${n}: ${events(f, n)}`).join(', ');
        throw new Error(
          `${e.message}\n--all saw ${seen(all)}; stderr ${all.stderr.join('')}\n-l saw ${seen(blue)}; stderr ${blue.stderr.join('')}`,
        );
      });
    assert.equal(events(blue, 'node-c'), 0, '-l pool=blue does not follow the green node');
    const portC = await endpointPort('node-c');
    assert.equal(await connectionsTo('node-c', portC), 1, 'one follower (--all) reads node-c');
    assert.equal(await connectionsTo('node-b', await endpointPort('node-b')), 2, 'both read node-b');

    // node-c goes: its Node is deleted, the controller removes its instance, its agent unloads it
    await c.stopWorkloads('node-c');
    await c.kube.core.deleteNode({ name: 'node-c' });
    await c.until(
      'conn gone from node-c',
      async () => !(await c.instances('conn')).some((n) => n.spec.nodeName === 'node-c'),
      30_000,
    );
    await c.until(
      'no follower reads node-c any more',
      async () => (await connectionsTo('node-c', portC)) === 0,
      10_000,
    );
    const before = events(all, 'node-b');
    await c.until('node-b still followed', () => events(all, 'node-b') > before + 3);
    for (const f of [all, blue]) {
      await f.stop();
      assert.equal(f.stderr.join(''), '', 'the follower reported no error');
    }
  });
});
