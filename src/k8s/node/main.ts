// `kbpf-node-agent`: the DaemonSet's process — the node's agent, driven by a NodeReconciler from
// the node's BpfNodeInstances. Node name from --node or $NODE_NAME (the downward API), API server
// from --kubeconfig / $KUBECONFIG or the in-cluster service account.
import { agentPaths } from '../../agent/paths.js';
import { DEFAULT_NAMESPACE } from '../api.js';
import { connect } from '../kube.js';
import { NodeReconciler, type NodeReconcilerOptions } from './node-reconciler.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function args(name: string): string[] {
  return process.argv.flatMap((a, i) =>
    a === `--${name}` && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : [],
  );
}

/** HOST:PORT (IPv6 as [addr]:port) */
function hostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) throw new Error(`--logs-address ${s}: use HOST:PORT (port 0: any free port)`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

export async function main(): Promise<void> {
  const nodeName = arg('node') ?? process.env.NODE_NAME;
  if (!nodeName) throw new Error('kbpf node agent: no node name (--node NAME or $NODE_NAME)');
  const paths = agentPaths(arg('state-dir'), arg('bpffs-dir'));
  const logsAddress = arg('logs-address') ?? process.env.KBPF_LOGS_ADDRESS;
  let logs: NodeReconcilerOptions['logs'];
  if (logsAddress) {
    const advertise = arg('logs-advertise') ?? process.env.KBPF_LOGS_ADVERTISE;
    // who may read: user names whose tokens the API server vouches for (default: kbpf-logs-reader)
    const readers = args('logs-reader');
    logs = {
      ...hostPort(logsAddress),
      ...(advertise ? { advertiseHost: advertise } : {}),
      ...(readers.length ? { readers } : {}),
    };
  }
  const node = new NodeReconciler({
    logs,
    nodeName,
    kube: connect(arg('kubeconfig')),
    paths,
    namespace: arg('namespace') ?? process.env.POD_NAMESPACE ?? DEFAULT_NAMESPACE,
    pullSecretNamespace: arg('pull-secret-namespace') ?? process.env.KBPF_PULL_SECRET_NAMESPACE,
    resyncMs: Number(arg('resync-ms') ?? 30_000),
    cgroupRoot: arg('cgroup-root') ?? process.env.KBPF_CGROUP_ROOT,
    insecureRegistries: args('insecure-registry'),
  });
  await node.start();
  process.stderr.write(
    `kbpf node ${nodeName}: watching BpfNodeInstances (state ${paths.stateDir}, pins ${paths.bpffsDir})\n`,
  );
  const stop = (): void => {
    void node.stop().finally(() => process.exit(0));
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
