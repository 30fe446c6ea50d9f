// Which objects a change concerns: the controller reconciles deployments (and releases the
// finalizer of instances whose node is gone), but it watches instances, revisions and Nodes too.
// These map a change of any of them to the keys to reconcile. Pure functions of the change and
// the caches.
import { type BpfDeployment, type BpfNodeInstance, type BpfRevision, type NodeLike, selectorMatches } from '../api.js';
import type { Change } from '../runtime/store.js';

/** Does the deployment run on this node (its names, its selector, or every node)? */
export function selectsNode(d: BpfDeployment, node: NodeLike): boolean {
  if (d.spec.nodeNames) return d.spec.nodeNames.includes(node.metadata.name);
  if (d.spec.nodeSelector) return selectorMatches(d.spec.nodeSelector, node.metadata.labels);
  return true;
}

/** The deployment an instance or revision belongs to: its controlling owner, else the one it names. */
export function ownerDeployment(o: BpfNodeInstance | BpfRevision): string {
  const owner = o.metadata.ownerReferences?.find((r) => r.kind === 'BpfDeployment' && r.controller);
  if (owner) return owner.name;
  return o.kind === 'BpfRevision' ? o.deployment : o.spec.deployment;
}

/** A change of an instance or revision concerns its owner (both versions': the owner may have changed). */
export function deploymentsOfOwned<T extends BpfNodeInstance | BpfRevision>(c: Change<T>): string[] {
  return unique([c.before, c.after].filter((o): o is T => !!o).map(ownerDeployment));
}

/**
 * Does a Node change matter to placement? Added, deleted, deletion started, or labels changed —
 * not the status heartbeats a kubelet writes all the time.
 */
export function nodeChangeMatters(c: Change<NodeLike>): boolean {
  if (!c.before || !c.after) return true;
  if (!!c.before.metadata.deletionTimestamp !== !!c.after.metadata.deletionTimestamp) return true;
  return !sameLabels(c.before.metadata.labels, c.after.metadata.labels);
}

/**
 * The deployments a Node change concerns: those that select the node (before or after the
 * change), and those with an instance on it (a node that stops being selected, or goes, takes
 * its instance with it).
 */
export function deploymentsForNode(
  c: Change<NodeLike>,
  deployments: Iterable<BpfDeployment>,
  instancesOnNode: (node: string) => BpfNodeInstance[],
): string[] {
  if (!nodeChangeMatters(c)) return [];
  const nodes = [c.before, c.after].filter((n): n is NodeLike => !!n);
  const out = new Set<string>();
  for (const d of deployments) if (nodes.some((n) => selectsNode(d, n))) out.add(d.metadata.name);
  for (const name of unique(nodes.map((n) => n.metadata.name)))
    for (const ni of instancesOnNode(name)) out.add(ownerDeployment(ni));
  return [...out].sort();
}

/** An instance being deleted may need its finalizer released by the controller (if its node is gone). */
export function instanceToFinalize(c: Change<BpfNodeInstance>): string[] {
  return c.after?.metadata.deletionTimestamp ? [c.after.metadata.name] : [];
}

/** A Node that is deleted (or being deleted) leaves its deleting instances with no agent to release them. */
export function instancesToFinalizeOnNode(
  c: Change<NodeLike>,
  instancesOnNode: (node: string) => BpfNodeInstance[],
): string[] {
  if (c.after && !c.after.metadata.deletionTimestamp) return [];
  const name = (c.after ?? c.before)!.metadata.name;
  return instancesOnNode(name)
    .filter((ni) => ni.metadata.deletionTimestamp)
    .map((ni) => ni.metadata.name)
    .sort();
}

function sameLabels(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
