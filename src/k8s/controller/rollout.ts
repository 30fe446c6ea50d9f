// Rollout planning: given a deployment, the nodes it selects and its instances as they are,
// which instances go, which nodes get one, and which move to the newest revision now. A pure
// function: the controller carries the plan out, the unit tests check it without a server.
//
// - An instance of a node no longer selected (or gone) is deleted (its agent cleans up first).
// - A selected node without an instance gets one at the newest revision at once (like a
//   DaemonSet: a node labelled later runs the deployment right away).
// - RollingUpdate: instances whose spec differs from the newest revision's move while at most
//   maxUnavailable selected nodes are not ready. A node that is not ready moves first and always
//   (it is unavailable already); a ready one moves only while the budget (maxUnavailable minus
//   the nodes not ready, instances just created included) is left. OnDelete: nothing moves (a deleted instance comes back new).
// - Paused, or no revision to move to: nothing is created or moved (deletions still happen).
import {
  type BpfDeploymentSpec,
  type BpfNodeInstance,
  type BpfNodeInstanceSpec,
  canonicalJson,
  instanceReady,
  maxUnavailableOf,
} from '../api.js';

export interface RolloutInput {
  spec: Pick<BpfDeploymentSpec, 'strategy' | 'paused'>;
  /** the nodes the deployment selects now */
  nodes: string[];
  /** the deployment's instances */
  instances: BpfNodeInstance[];
  /** the spec of a node's instance at the newest revision (absent: no revision to move to) */
  desired?: (node: string) => BpfNodeInstanceSpec;
}

export interface RolloutPlan {
  /** instances to delete: their node is no longer selected */
  remove: BpfNodeInstance[];
  /** selected nodes to create an instance on, at the newest revision */
  create: string[];
  /** instances to move to the newest revision now, in this order */
  move: BpfNodeInstance[];
  /** instances behind the newest revision that wait for the availability budget */
  waiting: BpfNodeInstance[];
}

export function planRollout(input: RolloutInput): RolloutPlan {
  const selected = new Set(input.nodes);
  const byNode = new Map(input.instances.map((ni) => [ni.spec.nodeName, ni]));
  const plan: RolloutPlan = { remove: [], create: [], move: [], waiting: [] };
  for (const ni of input.instances)
    if (!selected.has(ni.spec.nodeName) && !ni.metadata.deletionTimestamp) plan.remove.push(ni);
  const desired = input.desired;
  if (!desired || input.spec.paused) return plan;
  plan.create = [...selected].filter((n) => !byNode.has(n)).sort();
  if ((input.spec.strategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') return plan;

  const live = input.nodes
    .map((n) => byNode.get(n))
    .filter((ni): ni is BpfNodeInstance => !!ni && !ni.metadata.deletionTimestamp);
  const behind = live
    .filter((ni) => canonicalJson(ni.spec) !== canonicalJson(desired(ni.spec.nodeName)))
    // not-ready nodes first: moving them costs no availability
    .sort(
      (a, b) => Number(instanceReady(a)) - Number(instanceReady(b)) || a.spec.nodeName.localeCompare(b.spec.nodeName),
    );
  const unavailable = live.filter((ni) => !instanceReady(ni)).length + plan.create.length;
  let budget = maxUnavailableOf(input.spec, input.nodes.length) - unavailable;
  for (const ni of behind) {
    if (!instanceReady(ni)) plan.move.push(ni);
    else if (budget > 0) {
      budget--;
      plan.move.push(ni);
    } else plan.waiting.push(ni);
  }
  return plan;
}
