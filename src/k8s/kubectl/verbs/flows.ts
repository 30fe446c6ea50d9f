// kubectl bpf flows: the flows of a flow-monitor deployment (or a netpol one: its drops) on all its
// nodes (or --node ones), each node's stream read from its agent's log endpoint (node-logs.ts, as
// `kubectl bpf logs`), turned into flows named by the node, with pod identities from the cluster's
// Pod objects; merged by time (or interleaved as they come with -f), filtered as `kbpf flows` filters.
import type { Command } from 'commander';
import { Collector } from '../../../../apps/flow-monitor/collector.js';
import { matchFlow } from '../../../../apps/flow-monitor/filter.js';
import type { Flow } from '../../../../apps/flow-monitor/flow.js';
import { Identities } from '../../../../apps/flow-monitor/identities.js';
import { anyInputFlows } from '../../../../apps/flow-monitor/inputs.js';
import { podIdentityOf } from '../../../../apps/shared/pods.js';
import type { LogRecord } from '../../../agent/log-store.js';
import { nonNegativeInt, outputOption } from '../../../cli/options.js';
import { escapeLines } from '../../../cli/render/escape.js';
import { FLOW_FORMATS, type FlowFormat, FlowPrinter, renderFlows } from '../../../cli/render/flows.js';
import { addFlowFilterOptions, type FlowFilterOptions, filterOf } from '../../../cli/verbs/flows.js';
import { PLURAL } from '../../api.js';
import { errorText } from '../../kube.js';
import { logsAccess, nodeLogs } from '../node-logs.js';
import { readNodes } from '../node-set.js';
import { api, collect, globals, mustGet } from '../resources.js';

interface KubectlFlowsOptions extends FlowFilterOptions {
  node: string[];
  follow?: boolean;
  last?: number;
  output: FlowFormat;
}

export function addFlowVerbs(root: Command): void {
  addFlowFilterOptions(root.command('flows'))
    .description('flows of a flow-monitor deployment on every node it runs on (or --node ones), each naming its node')
    .argument('<name>', 'deployment')
    .option('--node <name>', 'only this node (repeatable)', collect, [])
    .option('-f, --follow', 'keep streaming new flows')
    .option('--last <n>', 'the last N flows (default 20; with -f 0)', nonNegativeInt('--last'))
    .addOption(outputOption(FLOW_FORMATS))
    .action(async (name: string, o: KubectlFlowsOptions, cmd: Command) => {
      const a = api(cmd);
      await mustGet(a, name);
      const filter = filterOf(o);
      const instances = (await a.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${name}` })).items;
      const onNodes = instances.map((n) => n.spec.nodeName).sort();
      const nodes = o.node.length ? o.node.filter((n) => onNodes.includes(n)) : onNodes;
      if (nodes.length === 0 && !(o.follow && !o.node.length))
        throw new Error(`${name} runs on no node${o.node.length ? ` of ${o.node.join(', ')}` : ''}`);
      const identities = new Identities();
      try {
        const pods = await a.kube.core.listPodForAllNamespaces();
        for (const p of pods.items) identities.set(podIdentityOf(p));
      } catch (e) {
        process.stderr.write(`kubectl bpf flows: no pod identities (${errorText(e)})\n`);
      }
      // flow-monitor's reports and netpol's drops alike, one converter per node (nodes may join later)
      const converters = new Map<string, ReturnType<typeof anyInputFlows>>();
      const converter = (node: string): ReturnType<typeof anyInputFlows> => {
        const c = converters.get(node) ?? anyInputFlows(new Collector({ node, identities }));
        converters.set(node, c);
        return c;
      };
      const flowOf = (node: string, r: Record<string, unknown>): Flow | null =>
        converter(node)({ ...r, ts: String(r.ts) } as unknown as LogRecord);
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const access = logsAccess(globals(cmd).namespace);
      const failures: string[] = [];
      const failed = (_n: string, e: unknown): void => {
        failures.push(errorText(e));
        if (o.follow) process.stderr.write(`error: ${escapeLines(errorText(e))}\n`);
      };
      const last = o.last ?? (o.follow ? 0 : 20);
      try {
        if (o.follow) {
          const printer = new FlowPrinter(o.output, (s) => void process.stdout.write(s));
          const print = (n: string) => (r: Record<string, unknown>) => {
            const f = flowOf(n, r);
            if (f && matchFlow(filter, f)) printer.print([f]);
          };
          // every node it runs on, also the ones it comes to run on later (unless --node)
          const q = (joined: boolean) => ({ follow: true, ...(joined ? {} : { tail: String(last) }) });
          await readNodes(
            a,
            name,
            { nodes, watch: !o.node.length, onError: failed },
            (n, joined, signal) => nodeLogs(a, name, n, q(joined), print(n), access, signal),
            ac.signal,
          );
          if (failures.length) process.exitCode = 1;
        } else {
          const all: Flow[] = [];
          const keep = (n: string) => (r: Record<string, unknown>) => {
            const f = flowOf(n, r);
            if (f && matchFlow(filter, f)) all.push(f);
          };
          await readNodes(
            a,
            name,
            { nodes, watch: false, onError: failed },
            (n, _j, signal) => nodeLogs(a, name, n, {}, keep(n), access, signal),
            ac.signal,
          );
          if (failures.length) throw new Error(failures.join('; '));
          all.sort((x, y) => x.time.localeCompare(y.time) || x.node_name.localeCompare(y.node_name));
          process.stdout.write(renderFlows(o.output, all.slice(Math.max(0, all.length - last))));
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
