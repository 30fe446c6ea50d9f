// netpol on a test bed node (testbed/mesh/testbed.ts pods, without sidecars), run by a real
// (throw-away) agent: build apps/netpol, run it with --cgroup of the pods' parent cgroup, and open
// its pinned maps to apply policies. Shared by test/netpol and bench/netpol.ts.
import { fileURLToPath } from 'node:url';
import { NetpolMaps } from '../../apps/netpol/netpol.js';
import type { PolicyInput } from '../../apps/netpol/policy.js';
import type { PodIdentity } from '../../apps/shared/pods.js';
import { type TestAgent, testAgent } from '../agent.js';
import type { Cleanup, Pod, Testbed } from '../mesh/testbed.js';

export const NETPOL_APP_DIR = fileURLToPath(new URL('../../../apps/netpol/', import.meta.url));

export interface NetpolInstance {
  ta: TestAgent;
  name: string;
  maps: NetpolMaps;
  /** closes our map handles and removes the instance through the agent */
  remove(): Promise<void>;
}

/** Runs netpol on the test bed's parent cgroup (with a fresh agent, or `agent` built once). */
export async function runNetpol(
  t: Cleanup,
  tb: Testbed,
  name = 'netpol',
  agent?: { ta: TestAgent; ref: string },
): Promise<NetpolInstance & { ref: string }> {
  const ta = agent?.ta ?? (await testAgent(t));
  const ref = agent?.ref ?? (await ta.build(NETPOL_APP_DIR));
  await ta.agent.run({ image: ref, name, attach: { cgroup: tb.parentCgroup } });
  let maps: NetpolMaps | null = NetpolMaps.ofAgent(ta.agent, name);
  t.after(() => maps?.close());
  return {
    ta,
    name,
    ref,
    get maps() {
      if (!maps) throw new Error('netpol instance removed');
      return maps;
    },
    async remove() {
      maps?.close();
      maps = null;
      await ta.agent.remove(name, { force: true });
    },
  };
}

/** A test bed pod's identity (what a policy file's `pods:` says of it). */
export function podIdentity(pod: Pod, namespace: string, labels: Record<string, string>): PodIdentity {
  return { namespace, name: pod.name, labels, ip: pod.ip, ...(pod.ip6 ? { ip6: pod.ip6 } : {}), cgroup: pod.cgroup };
}

export type { PolicyInput };
