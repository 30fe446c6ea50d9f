// The nodes a follower reads: those a deployment runs on when it starts and, while it follows,
// every node the deployment comes to run on later (its BpfNodeInstance appears: a node joined,
// or the deployment's selector grew), minus the nodes whose instance goes away — watched, like
// `kubectl logs -f -l` does not but a DaemonSet's user expects.
import { type BpfNodeInstance, GROUP, PLURAL, VERSION } from '../api.js';
import { errorText, type KbpfApi } from '../kube.js';
import { Store } from '../runtime/store.js';
import { apiListWatch, Watcher } from '../runtime/watcher.js';

export interface NodeReadsOptions {
  /** the nodes to read from the start */
  nodes: string[];
  /** keep watching for nodes that come and go (until `signal` aborts) */
  watch: boolean;
  /** does a node that came later belong to the set (e.g. its labels match -l) */
  accept?: (node: string) => Promise<boolean>;
  /** a node's read failed (the others go on) */
  onError: (node: string, e: unknown) => void;
}

/**
 * Runs `read(node, joined, signal)` for each node of the set; `joined` is true for a node that
 * came after the start. Resolves when every read has ended (with `watch`, once `signal` aborts).
 */
export async function readNodes(
  a: KbpfApi,
  deployment: string,
  o: NodeReadsOptions,
  read: (node: string, joined: boolean, signal: AbortSignal) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const running = new Map<string, { ac: AbortController; done: Promise<void> }>();
  /**
   * nodes decided since their instance appeared (read, being read, or not accepted): a read
   * that ended is not restarted, a node is asked about once
   */
  const known = new Set<string>();
  const start = (node: string, joined: boolean): void => {
    known.add(node);
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    signal.addEventListener('abort', stop, { once: true });
    const done = read(node, joined, ac.signal)
      .catch((e) => {
        if (!ac.signal.aborted) o.onError(node, e);
      })
      .finally(() => {
        signal.removeEventListener('abort', stop);
        if (running.get(node)?.ac === ac) running.delete(node);
      });
    running.set(node, { ac, done });
  };
  for (const n of o.nodes) start(n, false);
  if (!o.watch) {
    await Promise.all([...running.values()].map((r) => r.done));
    return;
  }
  const store = new Store<BpfNodeInstance>();
  const fieldSelector = `spec.deployment=${deployment}`;
  const pending = new Set<string>();
  const watcher = new Watcher<BpfNodeInstance>(
    apiListWatch(a.kube, {
      path: `/apis/${GROUP}/${VERSION}/${PLURAL.nodeInstances}`,
      list: () => a.list(PLURAL.nodeInstances, { fieldSelector }),
      fieldSelector,
    }),
    (e) => {
      for (const c of store.apply(e)) {
        const node = (c.after ?? c.before)!.spec.nodeName;
        const live = !!c.after && !c.after.metadata.deletionTimestamp;
        if (!live) {
          const r = running.get(node);
          if (r) {
            running.delete(node);
            r.ac.abort();
          }
          known.delete(node);
          continue;
        }
        if (known.has(node) || pending.has(node)) continue;
        pending.add(node);
        void (async () => {
          try {
            if (o.accept && !(await o.accept(node))) {
              known.add(node);
              return;
            }
            if (signal.aborted || known.has(node)) return;
            start(node, true);
          } catch (err) {
            o.onError(node, new Error(`node ${node} joined, but: ${errorText(err)}`));
          } finally {
            pending.delete(node);
          }
        })();
      }
    },
    { what: `${PLURAL.nodeInstances} of ${deployment}` },
  );
  await watcher.start();
  if (!signal.aborted) await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
  watcher.stop();
  await Promise.all([...running.values()].map((r) => r.done));
}
