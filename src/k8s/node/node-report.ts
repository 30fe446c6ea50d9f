// The node's BpfNode: what its kernel supports (program and map types, hooks, BTF, JIT), probed
// once when the agent starts and written as the status of a cluster-scoped object named after
// the node, owned by its Node (it goes when the Node does). `kubectl bpf doctor --node` reads it.
// Its status.logs says where the agent serves event logs and with which certificate (pinned by
// `kubectl bpf logs`); the two parts are written independently, each keeping the other.
import type { KernelFeatures } from '../../bpf/features.js';
import { KBPF_VERSION } from '../../version.js';
import { API_VERSION, type BpfNode, type BpfNodeStatus, type NodeLogsEndpoint, PLURAL } from '../api.js';
import { KbpfApi, type Kube, statusCode } from '../kube.js';

export function nodeStatusOf(f: KernelFeatures, now = new Date()): BpfNodeStatus {
  return {
    kernel: f.kernel,
    libbpf: f.libbpf,
    btf: f.btf,
    jit: f.jit,
    hooks: Object.fromEntries(
      Object.entries(f.hooks).map(([k, h]) => [
        k,
        { supported: h.supported, ...(h.detail ? { detail: h.detail } : {}) },
      ]),
    ),
    programTypes: { ...f.programTypes },
    mapTypes: { ...f.mapTypes },
    agentVersion: KBPF_VERSION,
    probedAt: now.toISOString(),
  };
}

/** Creates or refreshes BpfNode `node` with what `probe` finds (its log endpoint kept). */
export async function reportNode(kube: Kube, node: string, probe: () => Promise<KernelFeatures>): Promise<void> {
  const status = nodeStatusOf(await probe());
  await writeNodeStatus(kube, node, (old) => ({ ...status, ...(old?.logs ? { logs: old.logs } : {}) }));
}

/** Publishes (or, with undefined, withdraws) the node's log endpoint in its BpfNode's status. */
export async function publishLogsEndpoint(kube: Kube, node: string, logs: NodeLogsEndpoint | undefined): Promise<void> {
  await writeNodeStatus(kube, node, (old) => {
    const { logs: _old, ...rest } = old ?? {};
    return logs ? { ...rest, logs } : rest;
  });
}

async function writeNodeStatus(
  kube: Kube,
  node: string,
  next: (old: BpfNodeStatus | undefined) => BpfNodeStatus,
): Promise<void> {
  const api = new KbpfApi(kube);
  if (!(await api.get(PLURAL.nodes, node))) {
    const owner = await kube.core.readNode({ name: node }).catch(() => undefined);
    const body: BpfNode = {
      apiVersion: API_VERSION,
      kind: 'BpfNode',
      metadata: {
        name: node,
        ...(owner?.metadata?.uid
          ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid: owner.metadata.uid }] }
          : {}),
      },
    };
    try {
      await api.create(PLURAL.nodes, body);
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
    }
  }
  await api.update(PLURAL.nodes, node, (o) => ({ ...o, status: next(o.status) }), { status: true });
}
