// `kubectl bpf`: the cluster verbs, as a kubectl plugin (kubectl runs bin/kubectl-bpf from PATH
// with $KUBECONFIG and the arguments after "bpf"). It reads and writes the kbpf.io resources only.
import { Command, Option } from 'commander';
import {
  API_VERSION, PLURAL, instanceReady, templateHash, templateOf,
  type BpfDeployment, type BpfNodeInstance, type BpfRevision, type ConfigValues,
} from '../api.js';
import { KbpfApi, connect, errorText } from '../kube.js';

function api(cmd: Command): KbpfApi {
  const opts = cmd.optsWithGlobals() as { kubeconfig?: string };
  return new KbpfApi(connect(opts.kubeconfig));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')).join('\n') + '\n';
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
  return (await a.list(PLURAL.revisions, { labelSelector: `kbpf.io/deployment=${name}` })).items.sort((x, y) => x.revision - y.revision);
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

  root.command('run')
    .description('deploy a package to nodes (creates a BpfDeployment)')
    .argument('<name>', 'deployment name')
    .argument('<image>', 'package in a registry, host/repo:tag or host/repo@sha256:…')
    .option('--set <var=value>', 'config variable (repeatable)', collect, [])
    .option('--node <name>', 'run on this node (repeatable; default: all nodes)', collect, [])
    .option('-l, --selector <labels>', 'run on the nodes with these labels, k=v[,k=v]')
    .option('--cgroup <path>', 'cgroup to attach cgroup programs to (relative to each node\'s cgroup root)')
    .option('--iface <name>', 'interface for xdp/tc programs')
    .option('--max-unavailable <n>', 'nodes that may be between revisions during a rollout', '1')
    .option('--pull-secret <name>', 'dockerconfigjson Secret in the kbpf namespace')
    .action(async (name: string, image: string, o: { set: string[]; node: string[]; selector?: string; cgroup?: string; iface?: string; maxUnavailable: string; pullSecret?: string }, cmd: Command) => {
      const d: BpfDeployment = {
        apiVersion: API_VERSION, kind: 'BpfDeployment', metadata: { name },
        spec: {
          package: { image, ...(o.pullSecret ? { pullSecret: o.pullSecret } : {}) },
          ...(o.set.length ? { config: parseSet(o.set) } : {}),
          ...(o.node.length ? { nodeNames: o.node } : {}),
          ...(o.selector ? { nodeSelector: { matchLabels: Object.fromEntries(o.selector.split(',').map((kv) => kv.split('=') as [string, string])) } } : {}),
          ...(o.cgroup || o.iface ? { attach: { ...(o.cgroup ? { cgroup: o.cgroup } : {}), ...(o.iface ? { iface: o.iface } : {}) } } : {}),
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: /^\d+$/.test(o.maxUnavailable) ? Number(o.maxUnavailable) : o.maxUnavailable } },
        },
      };
      await api(cmd).create(PLURAL.deployments, d);
      process.stdout.write(`bpfdeployment.kbpf.io/${name} created\n`);
    });

  root.command('upgrade')
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

  root.command('ps').alias('list')
    .description('deployments and their state on each node')
    .argument('[name]', 'only this deployment')
    .option('--node <name>', 'only this node')
    .option('-l, --selector <labels>', 'only deployments with these labels')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (name: string | undefined, o: { node?: string; selector?: string; output: string }, cmd: Command) => {
      const a = api(cmd);
      const deployments = name ? [await mustGet(a, name)] : (await a.list(PLURAL.deployments, o.selector ? { labelSelector: o.selector } : {})).items;
      const names = new Set(deployments.map((d) => d.metadata.name));
      const instances = (await a.list(PLURAL.nodeInstances, o.node ? { fieldSelector: `spec.nodeName=${o.node}` } : {})).items.filter((n) => names.has(n.spec.deployment));
      if (o.output === 'json') {
        process.stdout.write(JSON.stringify({ deployments, instances }, null, 2) + '\n');
        return;
      }
      const rows = [['DEPLOYMENT', 'NODE', 'REVISION', 'PHASE', 'PROGRAMS', 'MESSAGE']];
      for (const n of instances.sort((x, y) => x.metadata.name.localeCompare(y.metadata.name))) {
        rows.push([n.spec.deployment, n.spec.nodeName, `${n.status?.revision ?? '-'}${n.status?.revision !== n.spec.revision ? `→${n.spec.revision}` : ''}`, n.status?.phase ?? 'Pending',
          (n.status?.programs ?? []).map((p) => `${p.name}#${p.progId ?? '?'}`).join(','), (n.status?.message ?? '').replace(/\s+/g, ' ')]);
      }
      process.stdout.write(table(rows));
    });

  root.command('rm').alias('delete')
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
  rollout.command('status')
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
        if (line !== last) process.stdout.write(line + '\n');
        last = line;
        if (done || o.watch === 'false') return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for the rollout of ${name}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    });
  rollout.command('history')
    .description('revisions of a deployment')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const a = api(cmd);
      const d = await mustGet(a, name);
      const current = templateHash(templateOf(d.spec));
      const rows = [['REVISION', 'DIGEST', 'IMAGE', 'CONFIG', '']];
      for (const r of await revisionsOf(a, name)) {
        rows.push([String(r.revision), r.digest.slice(0, 19), r.template.package.image, JSON.stringify(r.template.config ?? {}), r.templateHash === current ? '(current)' : '']);
      }
      process.stdout.write(table(rows));
    });
  rollout.command('undo')
    .description('go back to the previous revision (or --to-revision N)')
    .argument('<name>')
    .option('--to-revision <n>', 'revision to go back to')
    .action(async (name: string, o: { toRevision?: string }, cmd: Command) => {
      const a = api(cmd);
      const revs = await revisionsOf(a, name);
      const d = await mustGet(a, name);
      const current = revs.find((r) => r.templateHash === templateHash(templateOf(d.spec)));
      const target = o.toRevision !== undefined
        ? revs.find((r) => r.revision === Number(o.toRevision))
        : revs.filter((r) => r.revision < (current?.revision ?? Infinity)).at(-1);
      if (!target) throw new Error(o.toRevision !== undefined ? `${name} has no revision ${o.toRevision} (revisions: ${revs.map((r) => r.revision).join(', ')})` : `${name} has no earlier revision to go back to`);
      await a.update(PLURAL.deployments, name, (x) => {
        x.spec.package = structuredClone(target.template.package);
        if (target.template.config) x.spec.config = structuredClone(target.template.config);
        else delete x.spec.config;
        if (target.template.attach) x.spec.attach = structuredClone(target.template.attach);
        else delete x.spec.attach;
        return x;
      });
      process.stdout.write(`bpfdeployment.kbpf.io/${name} rolled back (to the template of revision ${target.revision})\n`);
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
