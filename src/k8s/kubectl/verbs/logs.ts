// kubectl bpf logs: a deployment's events on one node, several or all, each line with its node.
import type { Command } from 'commander';
import { outputOption, parseSinceArg } from '../../../cli/options.js';
import { NODE_LOG_FORMATS, type NodeLogFormat, renderNodeRecord } from '../../../cli/render/logs.js';
import { PLURAL } from '../../api.js';
import { errorText } from '../../kube.js';
import { DEFAULT_LOGS_TOKEN_SECRET, logsAuth, nodeLogs } from '../node-logs.js';
import { api, collect, globals, mustGet } from '../resources.js';

interface LogsOptions {
  node: string[];
  all?: boolean;
  follow?: boolean;
  tail?: string;
  since?: string;
  output: NodeLogFormat;
  tokenSecret?: string;
}

/** The nodes to read: --node ones (where it runs), --all, or the only one it runs on. */
export function pickNodes(name: string, onNodes: string[], o: { node: string[]; all?: boolean }): string[] {
  if (o.node.length) {
    const missing = o.node.filter((n) => !onNodes.includes(n));
    if (missing.length)
      throw new Error(`${name} does not run on ${missing.join(', ')} (it runs on: ${onNodes.join(', ') || 'no node'})`);
    return o.node;
  }
  if (o.all || onNodes.length === 1) return onNodes;
  throw new Error(
    onNodes.length
      ? `${name} runs on ${onNodes.length} nodes (${onNodes.join(', ')}): say --node NAME or --all`
      : `${name} runs on no node yet`,
  );
}

export function addLogVerbs(root: Command): void {
  root
    .command('logs')
    .alias('log')
    .description('events of a deployment on one node (--node) or on all its nodes (--all), each line with its node')
    .argument('<name>', 'deployment')
    .option('-d, --node <name>', 'this node (repeatable)', collect, [])
    .option('--all', 'every node the deployment runs on')
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
    .option(
      '--token-secret <namespace/name>',
      `Secret whose data.token the nodes' log endpoints require (env KBPF_LOGS_TOKEN_SECRET; default ${DEFAULT_LOGS_TOKEN_SECRET})`,
    )
    .addOption(outputOption(NODE_LOG_FORMATS))
    .addHelpText(
      'after',
      `
The events are read from each node agent's log endpoint, at the URL its BpfNodeInstance status
advertises, only when that URL's host is one of the Node's addresses; the bearer token comes from
--token-secret (your configuration), never from the status the node writes.

Examples:
  kubectl bpf logs conn
  kubectl bpf logs --node worker-1 --tail 20 conn
  kubectl bpf logs --all -f --since 5m conn
  kubectl bpf logs --token-secret kbpf-system/kbpf-logs-token conn`,
    )
    .action(async (name: string, o: LogsOptions, cmd: Command) => {
      const a = api(cmd);
      await mustGet(a, name);
      const instances = (await a.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${name}` })).items;
      const nodes = pickNodes(name, instances.map((n) => n.spec.nodeName).sort(), o);
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const tokens = logsAuth(o.tokenSecret, process.env, globals(cmd).namespace);
      try {
        if (o.follow) {
          const print = (n: string) => (r: Record<string, unknown>) =>
            void process.stdout.write(renderNodeRecord(o.output, n, r));
          const results = await Promise.allSettled(
            nodes.map((n) => nodeLogs(a, name, n, o, print(n), tokens, ac.signal)),
          );
          const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed.length) throw new Error(failed.map((f) => errorText(f.reason)).join('; '));
        } else {
          const all: { node: string; r: Record<string, unknown> }[] = [];
          await Promise.all(
            nodes.map((n) => nodeLogs(a, name, n, o, (r) => void all.push({ node: n, r }), tokens, ac.signal)),
          );
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
