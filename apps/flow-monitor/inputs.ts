// Which running instances produce flows, by their package's name, and how their log records become
// flows. `kbpf flows` follows every running instance of these packages (or those named with
// --instance). Another package whose events are flows adds itself here (netpol: its drops).
import { InvalidError, NotFoundError } from '../../src/errors.js';
import type { Collector } from './collector.js';
import { type FlowInput, flowMonitorInput } from './source.js';

export type FlowInputMaker = (instance: string, env: { collector: Collector }) => FlowInput;

export const FLOW_INPUTS: Record<string, FlowInputMaker> = {
  'flow-monitor': (instance, { collector }) => flowMonitorInput(instance, collector),
};

/** An instance as the agent lists it (GET /v1/instances): its name and its package's name. */
export interface InstanceRef {
  name: string;
  package: { name: string };
}

/**
 * The inputs to read: the instances named, else every running instance of a package whose events
 * are flows. `kbpf flows` and the web view call it with the agent's instance list.
 */
export function flowInputsOf(
  instances: readonly InstanceRef[],
  names: readonly string[] | undefined,
  collector: Collector,
): FlowInput[] {
  const chosen = names?.length
    ? names.map((n) => instances.find((s) => s.name === n) ?? n)
    : instances.filter((s) => s.package.name in FLOW_INPUTS);
  return chosen.map((s) => {
    if (typeof s === 'string') throw new NotFoundError(`no instance "${s}"`);
    const make = FLOW_INPUTS[s.package.name];
    if (!make)
      throw new InvalidError(
        `instance "${s.name}" runs ${s.package.name}, whose events are no flows (${Object.keys(FLOW_INPUTS).join(', ')} are)`,
      );
    return make(s.name, { collector });
  });
}
