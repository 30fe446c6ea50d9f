// Rollout planning as a pure function: given a deployment's strategy, the nodes it selects and
// its instances, which instances go, which nodes get one, and which move to the newest revision.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BpfDeploymentSpec, BpfNodeInstance } from '../../src/k8s/api.js';
import { planRollout, type RolloutPlan } from '../../src/k8s/controller/rollout.js';
import { instance, specAt } from './fixtures.js';

const NODES = ['n1', 'n2', 'n3', 'n4'];

function plan(
  instances: BpfNodeInstance[],
  opts: { spec?: Partial<BpfDeploymentSpec>; nodes?: string[]; revision?: number | null } = {},
): Record<keyof RolloutPlan, string[]> {
  const revision = opts.revision === undefined ? 2 : opts.revision;
  const p = planRollout({
    spec: opts.spec ?? {},
    nodes: opts.nodes ?? NODES,
    instances,
    ...(revision !== null ? { desired: (n: string) => specAt('d', n, revision) } : {}),
  });
  const names = (xs: BpfNodeInstance[]) => xs.map((x) => x.spec.nodeName);
  return { remove: names(p.remove), create: p.create, move: names(p.move), waiting: names(p.waiting) };
}

const at = (revision: number, nodes = NODES, ready = true) => nodes.map((n) => instance('d', n, revision, { ready }));

describe('rollout planning', () => {
  it('maxUnavailable 1 (the default): one ready node moves at a time, in node order', () => {
    assert.deepEqual(plan(at(1)), { remove: [], create: [], move: ['n1'], waiting: ['n2', 'n3', 'n4'] });
  });

  it('a node that moved and is not ready yet uses the budget up', () => {
    const nodes = [instance('d', 'n1', 2, { ready: false }), ...at(1, ['n2', 'n3', 'n4'])];
    assert.deepEqual(plan(nodes).move, []);
    // once it is ready, the next one moves
    assert.deepEqual(plan([instance('d', 'n1', 2), ...at(1, ['n2', 'n3', 'n4'])]).move, ['n2']);
  });

  it('nodes at the newest revision and ready are left alone; when all are, nothing moves', () => {
    assert.deepEqual(plan(at(2)), { remove: [], create: [], move: [], waiting: [] });
  });

  it('not-ready nodes move first and cost no availability, even past the budget', () => {
    const nodes = [
      instance('d', 'n1', 1),
      instance('d', 'n2', 1),
      instance('d', 'n3', 1, { ready: false }),
      instance('d', 'n4', 1, { ready: false }),
    ];
    // two unavailable already, maxUnavailable 1: no ready node may go, the broken ones move anyway
    assert.deepEqual(plan(nodes).move, ['n3', 'n4']);
    assert.deepEqual(plan(nodes, { spec: { strategy: { rollingUpdate: { maxUnavailable: 3 } } } }).move, [
      'n3',
      'n4',
      'n1',
    ]);
  });

  it('maxUnavailable as a number of nodes or a percentage (rounded down, at least 1)', () => {
    const rolling = (maxUnavailable: number | string) => ({
      spec: { strategy: { type: 'RollingUpdate' as const, rollingUpdate: { maxUnavailable } } },
    });
    assert.deepEqual(plan(at(1), rolling(2)).move, ['n1', 'n2']);
    assert.deepEqual(plan(at(1), rolling('50%')).move, ['n1', 'n2']);
    assert.deepEqual(plan(at(1), rolling('10%')).move, ['n1']);
    assert.deepEqual(plan(at(1), rolling('100%')).move, NODES);
  });

  it('a newly selected node gets an instance at once, and counts as unavailable', () => {
    const p = plan(at(1, ['n1', 'n2', 'n3']));
    assert.deepEqual(p.create, ['n4']);
    assert.deepEqual(p.move, []);
    assert.deepEqual(plan(at(2, ['n1', 'n2', 'n3'])).create, ['n4']);
  });

  it('an instance of a node no longer selected is removed; one being deleted is neither removed again, re-created nor moved', () => {
    const p = plan([...at(1, ['n1', 'n2']), instance('d', 'n3', 1, { deleting: true }), instance('d', 'gone', 1)], {
      nodes: ['n1', 'n2', 'n3'],
    });
    assert.deepEqual(p, { remove: ['gone'], create: [], move: ['n1'], waiting: ['n2'] });
  });

  it('OnDelete: creates instances, moves none', () => {
    assert.deepEqual(plan(at(1, ['n1', 'n2', 'n3']), { spec: { strategy: { type: 'OnDelete' } } }), {
      remove: [],
      create: ['n4'],
      move: [],
      waiting: [],
    });
  });

  it('paused, or no revision to move to: nothing is created or moved, unselected instances still go', () => {
    const instances = [...at(1, ['n1', 'n2']), instance('d', 'old', 1)];
    const none = { remove: ['old'], create: [], move: [], waiting: [] };
    assert.deepEqual(plan(instances, { spec: { paused: true } }), none);
    assert.deepEqual(plan(instances, { revision: null }), none);
  });

  it('a spec that differs in anything (config, attach) is behind, not only the revision number', () => {
    const ni = instance('d', 'n1', 2);
    ni.spec.config = { port: 80 };
    assert.deepEqual(plan([ni, ...at(2, ['n2', 'n3', 'n4'])]).move, ['n1']);
  });
});
