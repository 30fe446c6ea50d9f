// Where the controller's web view gets flows: every node's flow-monitor stream, merged (each
// record names its node). The one place that knows how; `kubectl bpf flows`' merge plugs in here.
import type { FlowSource } from '../../../apps/flow-monitor/flow.js';
import { KbpfError, Unsupported } from '../../errors.js';
import type { Kube } from '../kube.js';

export async function clusterFlowSource(_kube: Kube, namespace: string): Promise<FlowSource> {
  throw new KbpfError(
    Unsupported,
    `--ui-listen: this build cannot merge the nodes' flow-monitor streams (namespace ${namespace}) yet`,
  );
}
