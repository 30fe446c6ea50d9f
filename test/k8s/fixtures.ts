// Objects for the unit tests of the controller's pure parts (mappers, rollout planning).
import {
  API_VERSION,
  type BpfDeployment,
  type BpfDeploymentSpec,
  type BpfNodeInstance,
  type BpfNodeInstanceSpec,
  type NodeLike,
  nodeInstanceName,
} from '../../src/k8s/api.js';

export function deployment(name: string, spec: Partial<BpfDeploymentSpec> = {}): BpfDeployment {
  return {
    apiVersion: API_VERSION,
    kind: 'BpfDeployment',
    metadata: { name, uid: `uid-${name}`, generation: 1 },
    spec: { package: { image: 'registry.test/kbpf/snoop:1.0.0' }, ...spec },
  };
}

export function node(name: string, labels: Record<string, string> = {}): NodeLike {
  return { metadata: { name, labels } };
}

export function specAt(deployment: string, nodeName: string, revision: number): BpfNodeInstanceSpec {
  const digest = `sha256:${String(revision).repeat(64).slice(0, 64)}`;
  return { deployment, nodeName, revision, image: `registry.test/kbpf/snoop@${digest}`, digest };
}

/**
 * A deployment's instance on a node at `revision`: `ready` (Running at its spec, status current),
 * or not (still loading it).
 */
export function instance(
  deployment: string,
  nodeName: string,
  revision: number,
  opts: { ready?: boolean; deleting?: boolean } = {},
): BpfNodeInstance {
  const ready = opts.ready ?? true;
  return {
    apiVersion: API_VERSION,
    kind: 'BpfNodeInstance',
    metadata: {
      name: nodeInstanceName(deployment, nodeName),
      generation: 2,
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'BpfDeployment',
          name: deployment,
          uid: `uid-${deployment}`,
          controller: true,
        },
      ],
      finalizers: ['kbpf.io/node-cleanup'],
      ...(opts.deleting ? { deletionTimestamp: '2025-01-01T00:00:00Z' } : {}),
    },
    spec: specAt(deployment, nodeName, revision),
    status: ready
      ? { phase: 'Running', revision, observedGeneration: 2 }
      : { phase: 'Loading', revision: revision - 1, observedGeneration: 1 },
  };
}

/** A workload loop that connects to 127.0.0.1:PORT (refused: nothing listens) every 50 ms and prints how many times it has. */
export const CONNECT_PORT = 4242;
export const CONNECT_LOOP = `i=0; while :; do (exec 3<>/dev/tcp/127.0.0.1/${CONNECT_PORT}) 2>/dev/null; i=$((i+1)); echo $i; sleep 0.05; done`;
