// Leader election when the API server fails: a leader whose renewals throw stops leading
// within the renew deadline (before its lease can expire and another replica takes over).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Lease } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/k8s/controller/leader.js';
import type { Kube } from '../../src/k8s/kube.js';

test('a lease renew that throws stops leading within the renew deadline', async () => {
  let lease: V1Lease | undefined;
  let failing = false;
  const fail = () => {
    if (failing) throw new Error('connect ECONNREFUSED (the API server is gone)');
  };
  const kube = {
    coordination: {
      readNamespacedLease: async () => {
        fail();
        if (!lease) throw Object.assign(new Error('not found'), { code: 404 });
        return structuredClone(lease);
      },
      createNamespacedLease: async ({ body }: { body: V1Lease }) => {
        fail();
        lease = structuredClone(body);
        return lease;
      },
      replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
        fail();
        lease = structuredClone(body);
        return lease;
      },
    },
  } as unknown as Kube;
  const events: string[] = [];
  const elector = new LeaderElector({
    kube,
    namespace: 'kbpf-system',
    name: 'kbpf-controller',
    identity: 'a',
    leaseDurationSeconds: 0.6,
    onStarted: () => events.push('started'),
    onStopped: () => events.push('stopped'),
  });
  elector.start();
  try {
    for (let i = 0; i < 50 && !elector.leading; i++) await sleep(20);
    assert.equal(elector.leading, true);
    await sleep(300); // a few renewals succeed
    assert.deepEqual(events, ['started']);
    failing = true;
    const t0 = Date.now();
    for (let i = 0; i < 100 && elector.leading; i++) await sleep(20);
    assert.equal(elector.leading, false, 'stopped leading');
    assert.ok(Date.now() - t0 < 600, `within the lease duration (${Date.now() - t0} ms)`);
    assert.deepEqual(events, ['started', 'stopped']);
    failing = false;
    for (let i = 0; i < 100 && !elector.leading; i++) await sleep(20);
    assert.equal(elector.leading, true, 'leads again once it can renew');
  } finally {
    await elector.stop();
  }
});
