// Where the CLI's views of flows (`kbpf ui`) get them: the flow-monitor instances on this node,
// followed through the agent's API and turned into flows by the collector (apps/flow-monitor).
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { Collector } from '../../apps/flow-monitor/collector.js';
import type { FlowSource } from '../../apps/flow-monitor/flow.js';
import { Identities } from '../../apps/flow-monitor/identities.js';
import { flowInputsOf } from '../../apps/flow-monitor/inputs.js';
import { AgentFlowSource } from '../../apps/flow-monitor/source.js';
import { NotFoundError } from '../errors.js';
import type { CliContext } from './context.js';

/** the instance name `kbpf run` gives flow-monitor by default */
export const DEFAULT_FLOW_INSTANCE = 'flow-monitor';

export async function flowSourceFor(ctx: CliContext, cmd: Command, instance: string): Promise<FlowSource> {
  const api = ctx.client(cmd);
  const instances = await api.list();
  const collector = new Collector({ node: hostname(), identities: new Identities([]) });
  // the instance named, else every flow-producing instance of this node
  const names = instances.some((i) => i.name === instance) ? [instance] : undefined;
  const inputs = flowInputsOf(instances, names, collector);
  if (inputs.length === 0)
    throw new NotFoundError(
      'no flow-monitor instance is running (start one: kbpf run --cgroup PATH flow-monitor:0.3.1)',
    );
  return new AgentFlowSource(api, inputs).start();
}
