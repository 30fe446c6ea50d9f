// `kbpf-controller`: the controller Deployment's process. Only the replica holding the Lease
// reconciles; the others stand by. With `--ui-listen HOST:PORT` every replica also serves the web
// view (read-only) of the cluster's flows; on a loopback address (the default port's 127.0.0.1)
// it is reached with `kubectl port-forward`.
import { hostname } from 'node:os';
import { parseListen } from '../../ui/listen.js';
import { UiServer } from '../../ui/server.js';
import { DEFAULT_NAMESPACE, LEASE_NAME } from '../api.js';
import { connect, type Kube } from '../kube.js';
import { Controller } from './controller.js';
import { clusterFlowSource } from './flow-source.js';
import { LeaderElector } from './leader.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export interface ControllerProcessOptions {
  kube: Kube;
  namespace: string;
  identity: string;
  log: (msg: string) => void;
  resyncMs?: number;
  leaseSeconds?: number;
  insecureRegistries?: string[];
  /** namespace of pull secrets (default: `namespace`) */
  pullSecretNamespace?: string;
}

/** The controller under leader election, as the Deployment's process runs it (the cluster benchmark too). */
export function runController(o: ControllerProcessOptions): { controller: Controller; stop(): Promise<void> } {
  const controller = new Controller({
    kube: o.kube,
    namespace: o.namespace,
    log: o.log,
    resyncMs: o.resyncMs ?? 10_000,
    insecureRegistries: o.insecureRegistries ?? [],
    ...(o.pullSecretNamespace ? { pullSecretNamespace: o.pullSecretNamespace } : {}),
  });
  const elector = new LeaderElector({
    kube: o.kube,
    namespace: o.namespace,
    name: LEASE_NAME,
    identity: o.identity,
    log: o.log,
    leaseDurationSeconds: o.leaseSeconds ?? 15,
    onStarted: () => void controller.start().catch((e) => o.log(`start: ${(e as Error).message}`)),
    onStopped: () => controller.stop(),
  });
  elector.start();
  return {
    controller,
    stop: () => {
      controller.stop();
      return elector.stop();
    },
  };
}

export async function main(): Promise<void> {
  const identity = arg('identity') ?? process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const kube = connect(arg('kubeconfig'));
  const namespace = arg('namespace') ?? process.env.POD_NAMESPACE ?? DEFAULT_NAMESPACE;
  const log = (m: string): void => void process.stderr.write(`kbpf controller ${identity}: ${m}\n`);
  const running = runController({
    kube,
    namespace,
    identity,
    log,
    resyncMs: Number(arg('resync-ms') ?? 10_000),
    leaseSeconds: Number(arg('lease-seconds') ?? 15),
    pullSecretNamespace: arg('pull-secret-namespace') ?? process.env.KBPF_PULL_SECRET_NAMESPACE,
    insecureRegistries: process.argv.flatMap((a, i) =>
      a === '--insecure-registry' && process.argv[i + 1] ? [process.argv[i + 1]!] : [],
    ),
  });
  const uiListen = arg('ui-listen');
  let ui: UiServer | undefined;
  if (uiListen) {
    ui = new UiServer({ ...parseListen(uiListen, '--ui-listen'), source: await clusterFlowSource(kube, namespace) });
    log(`web view at ${await ui.start()}`);
  }
  const stop = (): void => {
    void Promise.all([running.stop(), ui?.close()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
