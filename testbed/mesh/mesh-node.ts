// mesh-accel on a test bed node, run by a real (throw-away) agent: build apps/mesh-accel, run it
// with --cgroup of the pods' parent cgroup, and open its pinned maps to declare pods.

import { fileURLToPath } from 'node:url';
import { MeshMaps, type PodSpec } from '../../apps/mesh-accel/mesh.js';
import { instanceKernelIds, type TestAgent, testAgent } from '../agent.js';
import type { MadeIds } from '../netns.js';
import type { Cleanup, Pod, Testbed } from './testbed.js';

export const MESH_APP_DIR = fileURLToPath(new URL('../../../apps/mesh-accel/', import.meta.url));

export interface MeshInstance {
  ta: TestAgent;
  name: string;
  /** the package reference the instance runs */
  ref: string;
  maps: MeshMaps;
  /** declares a test bed pod (with the pod's mode and the given extra settings) */
  declare(pod: Pod, extra?: Partial<PodSpec>): void;
  /** kernel ids of what the instance runs (programs, pinned maps, links), as the agent reports them */
  ids(): MadeIds;
  /** closes our map handles and removes the instance through the agent */
  remove(): Promise<void>;
}

/** Runs mesh-accel on the test bed's parent cgroup (with a fresh agent, or `agent` built once). */
export async function runMesh(
  t: Cleanup,
  tb: Testbed,
  name = 'mesh',
  agent?: { ta: TestAgent; ref: string },
  config?: Record<string, unknown>,
  /** run --order: where its programs go on shared hooks, by program (`before:INSTANCE`, ...) */
  order?: Record<string, string>,
): Promise<MeshInstance> {
  const ta = agent?.ta ?? (await testAgent(t));
  const ref = agent?.ref ?? (await ta.build(MESH_APP_DIR));
  await ta.agent.run({ image: ref, name, config, attach: { cgroup: tb.parentCgroup, ...(order ? { order } : {}) } });
  let maps: MeshMaps | null = MeshMaps.ofAgent(ta.agent, name);
  t.after(() => maps?.close());
  const inst: MeshInstance = {
    ta,
    name,
    ref,
    get maps() {
      if (!maps) throw new Error('mesh instance removed');
      return maps;
    },
    declare(pod, extra = {}) {
      inst.maps.declarePod({
        ip: pod.ipv6Only ? undefined : pod.ip,
        ip6: pod.ip6,
        cgroup: pod.cgroup,
        mode: pod.mode,
        ...extra,
      });
    },
    ids() {
      return instanceKernelIds(ta.agent, name);
    },
    async remove() {
      maps?.close();
      maps = null;
      await ta.agent.remove(name, { force: true });
    },
  };
  return inst;
}
