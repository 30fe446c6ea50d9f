// What the applications' Kubernetes watchers (mesh-accel's pods, netpol's policies, service-lb's
// services) share: waiting for a reconcile after which a condition holds, and running as the
// node's process (signals stop it and close its maps; a failure is reported under its name).
import { fileURLToPath } from 'node:url';
import { bpffsDir } from '../../src/agent/paths.js';

/** The command line of a pod-cgroup watcher (mesh-accel's pods, netpol's policies). */
export interface PodWatcherArgs {
  node: string;
  kubeconfig?: string;
  instance: string;
  bpffs: string;
  /** kubelet cgroup roots to find pods' cgroups under (--cgroup-root, repeatable) */
  cgroupRoots: string[];
}

/** Parses --node (or $NODE_NAME, required), --kubeconfig, --instance, --bpffs, --cgroup-root. */
export function podWatcherArgs(argv: string[], defaultInstance: string): PodWatcherArgs {
  const o: PodWatcherArgs = {
    node: process.env.NODE_NAME ?? '',
    instance: defaultInstance,
    bpffs: bpffsDir(),
    cgroupRoots: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--node') o.node = argv[++i]!;
    else if (a === '--kubeconfig') o.kubeconfig = argv[++i]!;
    else if (a === '--instance') o.instance = argv[++i]!;
    else if (a === '--bpffs') o.bpffs = argv[++i]!;
    else if (a === '--cgroup-root') o.cgroupRoots.push(argv[++i]!);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.node) throw new Error('--node NAME (or $NODE_NAME) is required');
  return o;
}

/** Resolves once `pred` holds, checked now and after each reconcile; rejects after `timeoutMs`. */
export function untilReconciled(
  onReconcile: (fn: () => void) => () => void,
  pred: () => boolean,
  timeoutMs: number,
  timedOut: () => string,
): Promise<void> {
  if (pred()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(timedOut()));
    }, timeoutMs);
    const off = onReconcile(() => {
      if (!pred()) return;
      clearTimeout(t);
      off();
      resolve();
    });
  });
}

/** Keeps a started watcher running until SIGTERM/SIGINT, then stops it, closes its maps and exits. */
export function stopOnSignals(watcher: { stop(): void }, maps: { close(): void }): void {
  const stop = (): void => {
    watcher.stop();
    maps.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Runs `main` with the process's arguments when `moduleUrl` is the script node was started with. */
export function runAsScript(moduleUrl: string, label: string, main: (argv: string[]) => Promise<void>): void {
  if (!process.argv[1] || fileURLToPath(moduleUrl) !== process.argv[1]) return;
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${label}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
