// What the node reconciler needs of a node's agent: the calls it makes on `Agent` (src/agent),
// and nothing else. The DaemonSet's process gives it the real agent; the cluster benchmark gives
// it a fake kernel side (bench/cluster/fake-agent.ts) so 500 nodes fit on one machine.
import type { Agent } from '../../agent/agent.js';
import type { LogStore } from '../../agent/log-store.js';

export type NodeAgent = Pick<
  Agent,
  | 'start'
  | 'close'
  | 'list'
  | 'inspect'
  | 'history'
  | 'run'
  | 'upgrade'
  | 'remove'
  | 'startInstance'
  | 'stop'
  | 'doctor'
  | 'maps'
  | 'setTrust'
  | 'trust'
  | 'store'
> & {
  readonly logs: Pick<LogStore, 'read' | 'followBatches'>;
};
