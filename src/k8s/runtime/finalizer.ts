// Finalizers: a name in metadata.finalizers keeps a deleted object on the server until whoever
// holds it has cleaned up and removed it. One helper for every holder, so "clean up, then
// release" is written once: the node reconciler (removing an instance from the kernel) and the
// controller (releasing for a node that no longer exists) both go through `finalize`.
import type { ObjectMeta } from '../api.js';

/** Read-modify-write of one object by name: `edit` answers the new object, or undefined for no change. */
export type Update<T> = (name: string, edit: (o: T) => T | undefined) => Promise<T | undefined>;

export function hasFinalizer(o: { metadata: ObjectMeta }, finalizer: string): boolean {
  return o.metadata.finalizers?.includes(finalizer) ?? false;
}

/** Being deleted and still held by `finalizer`: its holder has to clean up. */
export function isFinalizing(o: { metadata: ObjectMeta }, finalizer: string): boolean {
  return !!o.metadata.deletionTimestamp && hasFinalizer(o, finalizer);
}

/** The object without `finalizer` (undefined when it does not have it). Pure. */
export function withoutFinalizer<T extends { metadata: ObjectMeta }>(o: T, finalizer: string): T | undefined {
  if (!hasFinalizer(o, finalizer)) return undefined;
  return { ...o, metadata: { ...o.metadata, finalizers: o.metadata.finalizers!.filter((f) => f !== finalizer) } };
}

/** Removes `finalizer` from the named object (nothing when it is gone or no longer has it). */
export async function releaseFinalizer<T extends { metadata: ObjectMeta }>(
  update: Update<T>,
  name: string,
  finalizer: string,
): Promise<void> {
  await update(name, (o) => withoutFinalizer(o, finalizer));
}

/**
 * If `o` is being deleted and `finalizer` still holds it: runs `cleanup`, then releases the
 * finalizer, and answers true (the object is going: do nothing else with it). Otherwise answers
 * false without calling anything. A cleanup that throws keeps the finalizer (retry later).
 */
export async function finalize<T extends { metadata: ObjectMeta }>(
  o: T,
  finalizer: string,
  update: Update<T>,
  cleanup: (o: T) => Promise<void>,
): Promise<boolean> {
  if (!isFinalizing(o, finalizer)) return false;
  await cleanup(o);
  await releaseFinalizer(update, o.metadata.name, finalizer);
  return true;
}
