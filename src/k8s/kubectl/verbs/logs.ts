// kubectl bpf logs: a deployment's events on one node, several or all, each line with its node.
import type { Command } from 'commander';
import { outputOption, parseSinceArg } from '../../../cli/options.js';
import { escapeLines } from '../../../cli/render/escape.js';
import { NODE_LOG_FORMATS, type NodeLogFormat, renderNodeRecord } from '../../../cli/render/logs.js';
import { PLURAL } from '../../api.js';
import type { KbpfApi } from '../../kube.js';
import { errorText } from '../../kube.js';
import { logsAccess, nodeLogs } from '../node-logs.js';
import { readNodes } from '../node-set.js';
import { api, collect, globals, mustGet } from '../resources.js';

interface LogsOptions {
  node: string[];
  all?: boolean;
  follow?: boolean;
  tail?: string;
  since?: string;
  selector?: string;
  output: NodeLogFormat;
}

/** The nodes to read: --node ones (where it runs), --all, or the only one it runs on. */
export function pickNodes(
  name: string,
  onNodes: string[],
  o: { node: string[]; all?: boolean; selector?: string },
): string[] {
  if (o.node.length) {
    const missing = o.node.filter((n) => !onNodes.includes(n));
    if (missing.length)
      throw new Error(`${name} does not run on ${missing.join(', ')} (it runs on: ${onNodes.join(', ') || 'no node'})`);
    return o.node;
  }
  if (o.all || o.selector !== undefined || onNodes.length === 1) return onNodes;
  throw new Error(
    onNodes.length
      ? `${name} runs on ${onNodes.length} nodes (${onNodes.join(', ')}): say --node NAME or --all`
      : `${name} runs on no node yet`,
  );
}

/** Is node `node` one of those `selector` (labels, kubectl's syntax) picks? Asked of the API server. */
async function nodeMatches(a: KbpfApi, node: string, selector: string): Promise<boolean> {
  const l = await a.kube.core.listNode({ labelSelector: selector, fieldSelector: `metadata.name=${node}` });
  return l.items.length > 0;
}

/**
 * The nodes of a deployment a log verb reads (--node ones, -l ones, --all, or the only one) and
 * how: with -f and --all or -l, nodes that come later are read too (and those that go, dropped).
 * `read(node, joined, signal)`; a node's failure is reported by `onError` and the others go on.
 */
export async function readDeploymentNodes(
  a: KbpfApi,
  name: string,
  o: { node: string[]; all?: boolean; selector?: string; follow?: boolean },
  read: (node: string, joined: boolean, signal: AbortSignal) => Promise<void>,
  onError: (node: string, e: unknown) => void,
  signal: AbortSignal,
): Promise<void> {
  const instances = (await a.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${name}` })).items;
  let onNodes = instances.map((n) => n.spec.nodeName).sort();
  const selector = o.selector;
  if (selector !== undefined) {
    if (o.node.length) throw new Error('say --node or -l, not both');
    const matching = new Set(
      (await a.kube.core.listNode({ labelSelector: selector })).items.map((n) => n.metadata?.name),
    );
    onNodes = onNodes.filter((n) => matching.has(n));
  }
  const watch = !!o.follow && !o.node.length && (!!o.all || selector !== undefined);
  if (!watch && selector !== undefined && onNodes.length === 0)
    throw new Error(`${name} runs on no node with labels ${selector}`);
  const nodes = watch && onNodes.length === 0 ? [] : pickNodes(name, onNodes, o);
  await readNodes(
    a,
    name,
    {
      nodes,
      watch,
      ...(selector !== undefined ? { accept: (n: string) => nodeMatches(a, n, selector) } : {}),
      onError,
    },
    read,
    signal,
  );
}

export function addLogVerbs(root: Command): void {
  root
    .command('logs')
    .alias('log')
    .description('events of a deployment on one node (--node) or on all its nodes (--all), each line with its node')
    .argument('<name>', 'deployment')
    .option('-d, --node <name>', 'this node (repeatable)', collect, [])
    .option('--all', 'every node the deployment runs on (with -f: also the nodes it comes to run on later)')
    .option('-l, --selector <labels>', 'the nodes with these labels (k=v,k!=v,k in (a,b); with -f: also later ones)')
    .option('-f, --follow', 'keep streaming new events')
    .option('--tail <n>', 'only the last N events of each node')
    // checked here with the parser the nodes use; sent as given, so each node reads it by its own clock
    .option(
      '--since <time>',
      'only events since a time (RFC 3339) or a duration back (30s, 5m, 1h30m)',
      (v: string) => {
        parseSinceArg(v);
        return v;
      },
    )
    .addOption(outputOption(NODE_LOG_FORMATS))
    .addHelpText(
      'after',
      `
The events are read from each node agent's log endpoint, as the node's BpfNode status advertises
it: only on one of the Node's addresses, only over TLS with exactly the certificate the BpfNode
publishes, with a token of the service account kbpf-logs-reader (-n: its namespace) requested for
that one node (create on serviceaccounts/token of that account: Role kbpf-logs-reader). With -f
and --all or -l, nodes the deployment comes to run on later are followed too.

Examples:
  kubectl bpf logs conn
  kubectl bpf logs --node worker-1 --tail 20 conn
  kubectl bpf logs --all -f --since 5m conn
  kubectl bpf logs -l topology.kubernetes.io/zone=eu-1a -f conn`,
    )
    .action(async (name: string, o: LogsOptions, cmd: Command) => {
      const a = api(cmd);
      await mustGet(a, name);
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const access = logsAccess(globals(cmd).namespace);
      const failures: string[] = [];
      const failed = (_n: string, e: unknown): void => {
        failures.push(errorText(e));
        // a follower goes on with the other nodes: say it now, not at ^C
        if (o.follow) process.stderr.write(`error: ${escapeLines(errorText(e))}\n`);
      };
      try {
        if (o.follow) {
          const print = (n: string) => (r: Record<string, unknown>) =>
            void process.stdout.write(renderNodeRecord(o.output, n, r));
          // a node that came later is read from its first event (all of it is new)
          const q = (joined: boolean) => (joined ? { ...o, tail: undefined } : o);
          await readDeploymentNodes(
            a,
            name,
            o,
            (n, joined, signal) => nodeLogs(a, name, n, q(joined), print(n), access, signal),
            failed,
            ac.signal,
          );
          if (failures.length) process.exitCode = 1;
        } else {
          const all: { node: string; r: Record<string, unknown> }[] = [];
          await readDeploymentNodes(
            a,
            name,
            o,
            (n, _j, signal) => nodeLogs(a, name, n, o, (r) => void all.push({ node: n, r }), access, signal),
            failed,
            ac.signal,
          );
          if (failures.length) throw new Error(failures.join('; '));
          all.sort(
            (x, y) =>
              String(x.r.ts).localeCompare(String(y.r.ts)) ||
              x.node.localeCompare(y.node) ||
              Number(x.r.seq) - Number(y.r.seq),
          );
          process.stdout.write(all.map((x) => renderNodeRecord(o.output, x.node, x.r)).join(''));
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
