// Which running instances produce flows, by their package's name, and how their log records become
// flows. `kbpf flows` follows every running instance of these packages (or those named with
// --instance). Another package whose events are flows adds itself here (netpol: its drops).
import type { Collector } from './collector.js';
import { type FlowInput, flowMonitorInput } from './source.js';

export type FlowInputMaker = (instance: string, env: { collector: Collector }) => FlowInput;

export const FLOW_INPUTS: Record<string, FlowInputMaker> = {
  'flow-monitor': (instance, { collector }) => flowMonitorInput(instance, collector),
};
