// The node's BpfNode: what its kernel supports (program and map types, hooks, BTF, JIT), probed
// once when the agent starts and written as the status of a cluster-scoped object named after
// the node, owned by its Node (it goes when the Node does). `kubectl bpf doctor --node` reads it.
import type { KernelFeatures } from '../../bpf/features.js';
import { KBPF_VERSION } from '../../version.js';
import { API_VERSION, type BpfNode, type BpfNodeStatus, PLURAL } from '../api.js';
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

/** Creates or refreshes BpfNode `node` with what `probe` finds. */
export async function reportNode(kube: Kube, node: string, probe: () => Promise<KernelFeatures>): Promise<void> {
  const api = new KbpfApi(kube);
  const status = nodeStatusOf(await probe());
  let obj = await api.get(PLURAL.nodes, node);
  if (!obj) {
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
      obj = await api.create(PLURAL.nodes, body);
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
    }
  }
  await api.update(PLURAL.nodes, node, (o) => ({ ...o, status }), { status: true });
}
