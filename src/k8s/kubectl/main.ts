// `kubectl bpf`: the cluster verbs, as a kubectl plugin (kubectl runs bin/kubectl-bpf from PATH
// with $KUBECONFIG and the arguments after "bpf"). It reads and writes the kbpf.io resources only.

import type { V1Secret } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import {
  API_VERSION,
  type BpfDeployment,
  type BpfNodeInstance,
  type BpfRevision,
  type ConfigValues,
  instanceReady,
  nodeInstanceName,
  PLURAL,
  templateHash,
  templateOf,
} from '../api.js';
import { connect, errorText, KbpfApi, type Kube } from '../kube.js';

function api(cmd: Command): KbpfApi {
  const opts = cmd.optsWithGlobals() as { kubeconfig?: string };
  return new KbpfApi(connect(opts.kubeconfig));
}

interface LogsOptions {
  node: string[];
  all?: boolean;
  follow?: boolean;
  tail?: string;
  since?: string;
  output: string;
}

/** Bearer tokens of log endpoints, per Secret (NAMESPACE/NAME), read once. */
async function endpointToken(
  kube: Kube,
  secret: string | undefined,
  cache: Map<string, string>,
): Promise<string | undefined> {
  if (!secret) return undefined;
  const hit = cache.get(secret);
  if (hit !== undefined) return hit;
  const [namespace, name] = secret.split('/', 2) as [string, string];
  let s: V1Secret;
  try {
    s = await kube.core.readNamespacedSecret({ name, namespace });
  } catch (e) {
    throw new Error(`reading the log endpoint token (Secret ${secret}): ${errorText(e)}`);
  }
  const token = Buffer.from(s.data?.token ?? '', 'base64')
    .toString('utf8')
    .trim();
  cache.set(secret, token);
  return token;
}

/** One line of `kubectl bpf logs`: the node, the time, then the record (without ts/seq). */
function logLine(node: string, r: Record<string, unknown>, output: string): string {
  if (output === 'json') return `${JSON.stringify({ node, ...r })}\n`;
  const { ts, seq: _seq, ...rest } = r;
  const body =
    rest.source !== undefined && rest.event !== undefined && Object.keys(rest).length === 2
      ? `${String(rest.source)} ${JSON.stringify(rest.event)}`
      : JSON.stringify(rest);
  return `${node}  ${String(ts)}  ${body}\n`;
}

/**
 * Reads (or follows) one node's log of a deployment from the node agent's log endpoint, as the
 * instance status advertises it. While following, a dropped stream (agent restart, upgrade of
 * the agent) is resumed after the last record seen, from the endpoint the status names then.
 */
async function nodeLogs(
  a: KbpfApi,
  deployment: string,
  node: string,
  o: LogsOptions,
  emit: (r: Record<string, unknown>) => void,
  tokens: Map<string, string>,
  signal: AbortSignal,
): Promise<void> {
  let lastSeq = 0;
  let first = true;
  for (;;) {
    const ni = await a.get(PLURAL.nodeInstances, nodeInstanceName(deployment, node));
    if (!ni) {
      if (first) throw new Error(`${deployment} does not run on node ${node}`);
      return; // removed from the node while following
    }
    const ep = ni.status?.logs;
    if (!ep) {
      if (first && !o.follow)
        throw new Error(
          `node ${node}: its agent serves no logs (it runs without --logs-address, or has not reported yet)`,
        );
    } else {
      const q = new URLSearchParams();
      if (o.follow) q.set('follow', '1');
      if (first && o.tail !== undefined) q.set('tail', o.tail);
      if (first && o.since !== undefined) q.set('since', o.since);
      if (lastSeq) q.set('afterSeq', String(lastSeq));
      const token = await endpointToken(a.kube, ep.tokenSecret, tokens);
      try {
        const res = await fetch(`${ep.url}/v1/logs/${encodeURIComponent(deployment)}?${q}`, {
          headers: token ? { Authorization: `Bearer ${token}` } : {},
          signal,
        });
        if (!res.ok) {
          const text = await res.text();
          let msg = text.trim();
          try {
            msg = (JSON.parse(text) as { error?: string }).error ?? msg;
          } catch {
            /* not JSON */
          }
          if (res.status === 404 && !first) return;
          throw Object.assign(new Error(`node ${node} (${ep.url}): ${res.status} ${msg}`), { fatal: true });
        }
        first = false;
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          for (;;) {
            const i = buf.indexOf('\n');
            if (i < 0) break;
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!line.trim()) continue;
            const r = JSON.parse(line) as Record<string, unknown>;
            if (typeof r.error === 'string' && r.seq === undefined) throw new Error(`node ${node}: ${r.error}`);
            if (typeof r.seq === 'number') lastSeq = Math.max(lastSeq, r.seq);
            emit(r);
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        if ((e as { fatal?: boolean }).fatal || !o.follow)
          throw first ? new Error(`node ${node}: reading logs from ${ep.url}: ${errorText(e)}`) : e;
      }
    }
    if (!o.follow || signal.aborted) return;
    first = false;
    await new Promise((r) => setTimeout(r, 1000));
    if (signal.aborted) return;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')).join('\n')}\n`;
}

function parseSet(values: string[]): ConfigValues {
  const out: ConfigValues = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new Error(`--set ${v}: use NAME=VALUE`);
    const raw = v.slice(i + 1);
    out[v.slice(0, i)] = /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : raw;
  }
  return out;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

async function revisionsOf(a: KbpfApi, name: string): Promise<BpfRevision[]> {
  return (await a.list(PLURAL.revisions, { labelSelector: `kbpf.io/deployment=${name}` })).items.sort(
    (x, y) => x.revision - y.revision,
  );
}

async function mustGet(a: KbpfApi, name: string): Promise<BpfDeployment> {
  const d = await a.get(PLURAL.deployments, name);
  if (!d) throw new Error(`no BpfDeployment named "${name}" (see: kubectl bpf ps)`);
  return d;
}

export function program(): Command {
  const root = new Command('kubectl bpf')
    .description('kbpf on Kubernetes: eBPF packages deployed to nodes like workloads (BpfDeployment, BpfNodeInstance)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .showHelpAfterError();

  root
    .command('run')
    .description('deploy a package to nodes (creates a BpfDeployment)')
    .argument('<name>', 'deployment name')
    .argument('<image>', 'package in a registry, host/repo:tag or host/repo@sha256:…')
    .option('--set <var=value>', 'config variable (repeatable)', collect, [])
    .option('--node <name>', 'run on this node (repeatable; default: all nodes)', collect, [])
    .option('-l, --selector <labels>', 'run on the nodes with these labels, k=v[,k=v]')
    .option('--cgroup <path>', "cgroup to attach cgroup programs to (relative to each node's cgroup root)")
    .option('--iface <name>', 'interface for xdp/tc programs')
    .option('--max-unavailable <n>', 'nodes that may be between revisions during a rollout', '1')
    .option('--pull-secret <name>', 'dockerconfigjson Secret in the kbpf namespace')
    .action(
      async (
        name: string,
        image: string,
        o: {
          set: string[];
          node: string[];
          selector?: string;
          cgroup?: string;
          iface?: string;
          maxUnavailable: string;
          pullSecret?: string;
        },
        cmd: Command,
      ) => {
        const d: BpfDeployment = {
          apiVersion: API_VERSION,
          kind: 'BpfDeployment',
          metadata: { name },
          spec: {
            package: { image, ...(o.pullSecret ? { pullSecret: o.pullSecret } : {}) },
            ...(o.set.length ? { config: parseSet(o.set) } : {}),
            ...(o.node.length ? { nodeNames: o.node } : {}),
            ...(o.selector
              ? {
                  nodeSelector: {
                    matchLabels: Object.fromEntries(
                      o.selector.split(',').map((kv) => kv.split('=') as [string, string]),
                    ),
                  },
                }
              : {}),
            ...(o.cgroup || o.iface
              ? { attach: { ...(o.cgroup ? { cgroup: o.cgroup } : {}), ...(o.iface ? { iface: o.iface } : {}) } }
              : {}),
            strategy: {
              type: 'RollingUpdate',
              rollingUpdate: {
                maxUnavailable: /^\d+$/.test(o.maxUnavailable) ? Number(o.maxUnavailable) : o.maxUnavailable,
              },
            },
          },
        };
        await api(cmd).create(PLURAL.deployments, d);
        process.stdout.write(`bpfdeployment.kbpf.io/${name} created\n`);
      },
    );

  root
    .command('upgrade')
    .description('move a deployment to another package (a rolling update, one revision more)')
    .argument('<name>')
    .argument('<image>')
    .option('--set <var=value>', 'config variable (repeatable; replaces the config)', collect, [])
    .action(async (name: string, image: string, o: { set: string[] }, cmd: Command) => {
      const out = await api(cmd).update(PLURAL.deployments, name, (d) => {
        d.spec.package.image = image;
        if (o.set.length) d.spec.config = parseSet(o.set);
        return d;
      });
      if (!out) throw new Error(`no BpfDeployment named "${name}"`);
      process.stdout.write(`bpfdeployment.kbpf.io/${name} image updated\n`);
    });

  root
    .command('ps')
    .alias('list')
    .description('deployments and their state on each node')
    .argument('[name]', 'only this deployment')
    .option('--node <name>', 'only this node')
    .option('-l, --selector <labels>', 'only deployments with these labels')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (name: string | undefined, o: { node?: string; selector?: string; output: string }, cmd: Command) => {
      const a = api(cmd);
      const deployments = name
        ? [await mustGet(a, name)]
        : (await a.list(PLURAL.deployments, o.selector ? { labelSelector: o.selector } : {})).items;
      const names = new Set(deployments.map((d) => d.metadata.name));
      const instances = (
        await a.list(PLURAL.nodeInstances, o.node ? { fieldSelector: `spec.nodeName=${o.node}` } : {})
      ).items.filter((n) => names.has(n.spec.deployment));
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify({ deployments, instances }, null, 2)}\n`);
        return;
      }
      const rows = [['DEPLOYMENT', 'NODE', 'REVISION', 'PHASE', 'PROGRAMS', 'MESSAGE']];
      for (const n of instances.sort((x, y) => x.metadata.name.localeCompare(y.metadata.name))) {
        rows.push([
          n.spec.deployment,
          n.spec.nodeName,
          `${n.status?.revision ?? '-'}${n.status?.revision !== n.spec.revision ? `→${n.spec.revision}` : ''}`,
          n.status?.phase ?? 'Pending',
          (n.status?.programs ?? []).map((p) => `${p.name}#${p.progId ?? '?'}`).join(','),
          (n.status?.message ?? '').replace(/\s+/g, ' '),
        ]);
      }
      process.stdout.write(table(rows));
    });

  root
    .command('logs')
    .alias('log')
    .description('events of a deployment on one node (--node) or on all its nodes (--all), each line with its node')
    .argument('<name>', 'deployment')
    .option('--node <name>', 'this node (repeatable)', collect, [])
    .option('--all', 'every node the deployment runs on')
    .option('-f, --follow', 'keep streaming new events')
    .option('--tail <n>', 'only the last N events of each node')
    .option('--since <time>', 'only events since a time (RFC 3339) or a duration back (30s, 5m, 1h)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (name: string, o: LogsOptions, cmd: Command) => {
      const a = api(cmd);
      await mustGet(a, name);
      const instances = (await a.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${name}` })).items;
      const onNodes = instances.map((n) => n.spec.nodeName).sort();
      let nodes: string[];
      if (o.node.length) {
        const missing = o.node.filter((n) => !onNodes.includes(n));
        if (missing.length)
          throw new Error(
            `${name} does not run on ${missing.join(', ')} (it runs on: ${onNodes.join(', ') || 'no node'})`,
          );
        nodes = o.node;
      } else if (o.all || onNodes.length === 1) {
        nodes = onNodes;
      } else {
        throw new Error(
          onNodes.length
            ? `${name} runs on ${onNodes.length} nodes (${onNodes.join(', ')}): say --node NAME or --all`
            : `${name} runs on no node yet`,
        );
      }
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const tokens = new Map<string, string>();
      try {
        if (o.follow) {
          const results = await Promise.allSettled(
            nodes.map((n) =>
              nodeLogs(a, name, n, o, (r) => void process.stdout.write(logLine(n, r, o.output)), tokens, ac.signal),
            ),
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
          process.stdout.write(all.map((x) => logLine(x.node, x.r, o.output)).join(''));
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  root
    .command('rm')
    .alias('delete')
    .description('delete a deployment: every node removes its programs')
    .argument('<name...>')
    .action(async (list: string[], _o: unknown, cmd: Command) => {
      const a = api(cmd);
      for (const name of list) {
        await mustGet(a, name);
        await a.delete(PLURAL.deployments, name);
        process.stdout.write(`bpfdeployment.kbpf.io/${name} deleted\n`);
      }
    });

  const rollout = root.command('rollout').description('manage the rollout of a deployment');
  rollout
    .command('status')
    .description('wait until the rollout completes (or fails)')
    .argument('<name>')
    .option('--timeout <seconds>', 'give up after', '120')
    .option('-w, --watch <bool>', 'keep waiting (false: print once)', 'true')
    .action(async (name: string, o: { timeout: string; watch: string }, cmd: Command) => {
      const a = api(cmd);
      const deadline = Date.now() + Number(o.timeout) * 1000;
      let last = '';
      for (;;) {
        const d = await mustGet(a, name);
        const st = d.status ?? {};
        const cond = (t: string) => st.conditions?.find((c) => c.type === t);
        const degraded = cond('Degraded');
        let line: string;
        let done = false;
        if (degraded?.status === 'True') throw new Error(`rollout of ${name} is degraded: ${degraded.message}`);
        if (st.observedGeneration === d.metadata.generation && cond('Progressing')?.reason === 'RolloutComplete') {
          line = `bpfdeployment "${name}" successfully rolled out (revision ${st.updateRevision})`;
          done = true;
        } else {
          line = `Waiting for bpfdeployment "${name}" rollout to finish: ${st.updatedNodes ?? 0} of ${st.desiredNodes ?? '?'} updated nodes, ${st.readyNodes ?? 0} ready...`;
        }
        if (line !== last) process.stdout.write(`${line}\n`);
        last = line;
        if (done || o.watch === 'false') return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for the rollout of ${name}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    });
  rollout
    .command('history')
    .description('revisions of a deployment')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const a = api(cmd);
      const d = await mustGet(a, name);
      const current = templateHash(templateOf(d.spec));
      const rows = [['REVISION', 'DIGEST', 'IMAGE', 'CONFIG', '']];
      for (const r of await revisionsOf(a, name)) {
        rows.push([
          String(r.revision),
          r.digest.slice(0, 19),
          r.template.package.image,
          JSON.stringify(r.template.config ?? {}),
          r.templateHash === current ? '(current)' : '',
        ]);
      }
      process.stdout.write(table(rows));
    });
  rollout
    .command('undo')
    .description('go back to the previous revision (or --to-revision N)')
    .argument('<name>')
    .option('--to-revision <n>', 'revision to go back to')
    .action(async (name: string, o: { toRevision?: string }, cmd: Command) => {
      const a = api(cmd);
      const revs = await revisionsOf(a, name);
      const d = await mustGet(a, name);
      const current = revs.find((r) => r.templateHash === templateHash(templateOf(d.spec)));
      const target =
        o.toRevision !== undefined
          ? revs.find((r) => r.revision === Number(o.toRevision))
          : revs.filter((r) => r.revision < (current?.revision ?? Infinity)).at(-1);
      if (!target)
        throw new Error(
          o.toRevision !== undefined
            ? `${name} has no revision ${o.toRevision} (revisions: ${revs.map((r) => r.revision).join(', ')})`
            : `${name} has no earlier revision to go back to`,
        );
      await a.update(PLURAL.deployments, name, (x) => {
        x.spec.package = structuredClone(target.template.package);
        if (target.template.config) x.spec.config = structuredClone(target.template.config);
        else delete x.spec.config;
        if (target.template.attach) x.spec.attach = structuredClone(target.template.attach);
        else delete x.spec.attach;
        return x;
      });
      process.stdout.write(
        `bpfdeployment.kbpf.io/${name} rolled back (to the template of revision ${target.revision})\n`,
      );
    });
  return root;
}

export function nodeSummary(n: BpfNodeInstance): string {
  return `${n.spec.nodeName}: ${n.status?.phase ?? 'Pending'}${instanceReady(n) ? '' : ' (not ready)'}`;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    process.stderr.write(`error: ${errorText(e)}\n`);
    process.exitCode = 1;
  }
}
