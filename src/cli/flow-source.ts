// Where the CLI's views of flows (`kbpf ui`) get them: the collector of a flow-monitor instance on
// this node. The one place that knows how; the collector (apps/flow-monitor) plugs in here.
import type { Command } from 'commander';
import type { FlowSource } from '../../apps/flow-monitor/flow.js';
import { KbpfError, Unsupported } from '../errors.js';
import type { CliContext } from './context.js';

/** the instance name `kbpf run` gives flow-monitor by default */
export const DEFAULT_FLOW_INSTANCE = 'flow-monitor';

export async function flowSourceFor(_ctx: CliContext, _cmd: Command, instance: string): Promise<FlowSource> {
  throw new KbpfError(
    Unsupported,
    `flows of instance "${instance}": this build has no flow-monitor collector to read them from`,
  );
}
