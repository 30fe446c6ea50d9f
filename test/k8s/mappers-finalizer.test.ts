// The controller's mappers (which deployments, which instances a change concerns) and the one
// finalizer helper both the controller and the node reconciler use. No API server: pure
// functions, and an in-memory object for the finalizer's read-modify-write.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BpfNodeInstance, FINALIZER_NODE_CLEANUP, type NodeLike } from '../../src/k8s/api.js';
import {
  deploymentsForNode,
  deploymentsOfOwned,
  instancesToFinalizeOnNode,
  instanceToFinalize,
  nodeChangeMatters,
  ownerDeployment,
  selectsNode,
} from '../../src/k8s/controller/mappers.js';
import { finalize, isFinalizing, releaseFinalizer, withoutFinalizer } from '../../src/k8s/runtime/finalizer.js';
import { deployment, instance, node } from './fixtures.js';

describe('mappers', () => {
  const all = deployment('all');
  const gpu = deployment('gpu', { nodeSelector: { matchLabels: { gpu: 'yes' } } });
  const named = deployment('named', { nodeNames: ['n2'] });
  const deployments = [all, gpu, named];
  const instances = [instance('gpu', 'n1', 1), instance('named', 'n2', 1), instance('all', 'n1', 1)];
  const onNode = (n: string) => instances.filter((ni) => ni.spec.nodeName === n);

  it('a deployment selects by names, by label selector, or every node', () => {
    assert.equal(selectsNode(all, node('x')), true);
    assert.equal(selectsNode(gpu, node('x')), false);
    assert.equal(selectsNode(gpu, node('x', { gpu: 'yes' })), true);
    assert.equal(selectsNode(named, node('n2')), true);
    assert.equal(selectsNode(named, node('n3', { gpu: 'yes' })), false);
  });

  it('an instance or revision maps to its owning deployment (both versions of a change)', () => {
    const ni = instance('gpu', 'n1', 1);
    assert.equal(ownerDeployment(ni), 'gpu');
    const orphan = { ...ni, metadata: { ...ni.metadata, ownerReferences: [] } };
    assert.equal(ownerDeployment(orphan), 'gpu'); // the deployment its spec names
    assert.deepEqual(deploymentsOfOwned({ before: ni, after: ni }), ['gpu']);
    assert.deepEqual(deploymentsOfOwned({ before: instance('named', 'n2', 1) }), ['named']);
  });

  it('a Node labelled into a selector maps to that deployment (and to every-node ones)', () => {
    const c = { before: node('n3'), after: node('n3', { gpu: 'yes' }) };
    assert.deepEqual(deploymentsForNode(c, deployments, onNode), ['all', 'gpu']);
  });

  it('a Node labelled out of a selector maps to the deployment that had it, through its instance too', () => {
    const c = { before: node('n1', { gpu: 'yes' }), after: node('n1') };
    assert.deepEqual(deploymentsForNode(c, deployments, onNode), ['all', 'gpu']);
    // even when the labels before are not known (a relist), its instance says who had it
    assert.deepEqual(deploymentsForNode({ before: node('n1', { x: '1' }), after: node('n1') }, [all], onNode), [
      'all',
      'gpu',
    ]);
  });

  it('a Node added or deleted maps to the deployments it concerns; status heartbeats to none', () => {
    assert.deepEqual(deploymentsForNode({ after: node('n2') }, deployments, onNode), ['all', 'named']);
    assert.deepEqual(deploymentsForNode({ before: node('n2') }, deployments, onNode), ['all', 'named']);
    const beat = { before: node('n2', { a: '1' }), after: node('n2', { a: '1' }) };
    assert.equal(nodeChangeMatters(beat), false);
    assert.deepEqual(deploymentsForNode(beat, deployments, onNode), []);
    const dying: NodeLike = { metadata: { ...node('n2').metadata, deletionTimestamp: 'now' } };
    assert.equal(nodeChangeMatters({ before: node('n2'), after: dying }), true);
  });

  it('instances to finalize: one being deleted; those of a Node that is deleted', () => {
    const deleting = instance('gpu', 'n1', 1, { deleting: true });
    assert.deepEqual(instanceToFinalize({ after: deleting }), [deleting.metadata.name]);
    assert.deepEqual(instanceToFinalize({ after: instance('gpu', 'n1', 1) }), []);
    const onN1 = () => [deleting, instance('all', 'n1', 1)];
    assert.deepEqual(instancesToFinalizeOnNode({ before: node('n1') }, onN1), [deleting.metadata.name]);
    assert.deepEqual(instancesToFinalizeOnNode({ before: node('n1'), after: node('n1') }, onN1), []);
  });
});

describe('finalizer helper', () => {
  /** One object on a pretend server, updated by read-modify-write. */
  function server(o: BpfNodeInstance) {
    let cur: BpfNodeInstance | undefined = structuredClone(o);
    const calls: string[] = [];
    return {
      get: () => cur,
      calls,
      update: async (name: string, edit: (o: BpfNodeInstance) => BpfNodeInstance | undefined) => {
        calls.push(`update ${name}`);
        if (!cur) return undefined;
        const next = edit(structuredClone(cur));
        if (next) cur = next;
        return cur;
      },
      gone: () => {
        cur = undefined;
      },
    };
  }

  it('pure parts: finalizing means deleted and still held; removing it keeps other finalizers', () => {
    const ni = instance('d', 'n1', 1, { deleting: true });
    ni.metadata.finalizers = ['other', FINALIZER_NODE_CLEANUP];
    assert.equal(isFinalizing(ni, FINALIZER_NODE_CLEANUP), true);
    assert.equal(isFinalizing(instance('d', 'n1', 1), FINALIZER_NODE_CLEANUP), false);
    assert.deepEqual(withoutFinalizer(ni, FINALIZER_NODE_CLEANUP)?.metadata.finalizers, ['other']);
    assert.equal(withoutFinalizer(ni, 'absent'), undefined);
    assert.deepEqual(ni.metadata.finalizers, ['other', FINALIZER_NODE_CLEANUP]); // not mutated
  });

  it('cleans up, then releases; an object not being deleted is left alone', async () => {
    const ni = instance('d', 'n1', 1, { deleting: true });
    const s = server(ni);
    const order: string[] = [];
    const done = await finalize(ni, FINALIZER_NODE_CLEANUP, s.update, async () => {
      order.push(`cleanup, finalizers ${s.get()!.metadata.finalizers!.join(',')}`);
    });
    assert.equal(done, true);
    assert.deepEqual(order, [`cleanup, finalizers ${FINALIZER_NODE_CLEANUP}`]);
    assert.deepEqual(s.get()!.metadata.finalizers, []);

    const live = instance('d', 'n2', 1);
    const s2 = server(live);
    let cleaned = false;
    assert.equal(
      await finalize(live, FINALIZER_NODE_CLEANUP, s2.update, async () => {
        cleaned = true;
      }),
      false,
    );
    assert.equal(cleaned, false);
    assert.deepEqual(s2.calls, []);
  });

  it('a cleanup that fails keeps the finalizer (to be retried)', async () => {
    const ni = instance('d', 'n1', 1, { deleting: true });
    const s = server(ni);
    await assert.rejects(
      finalize(ni, FINALIZER_NODE_CLEANUP, s.update, async () => {
        throw new Error('bpf link busy');
      }),
      /bpf link busy/,
    );
    assert.deepEqual(s.get()!.metadata.finalizers, [FINALIZER_NODE_CLEANUP]);
  });

  it('releasing is idempotent: already released or already gone is no error', async () => {
    const ni = instance('d', 'n1', 1, { deleting: true });
    const s = server(ni);
    await releaseFinalizer(s.update, ni.metadata.name, FINALIZER_NODE_CLEANUP);
    await releaseFinalizer(s.update, ni.metadata.name, FINALIZER_NODE_CLEANUP);
    assert.deepEqual(s.get()!.metadata.finalizers, []);
    s.gone();
    await releaseFinalizer(s.update, ni.metadata.name, FINALIZER_NODE_CLEANUP);
  });
});
