// kubectl bpf run, upgrade, ps, rm: BpfDeployments and their state on each node.
import type { Command } from 'commander';
import { outputOption } from '../../../cli/options.js';
import { LIST_FORMATS, type ListFormat } from '../../../cli/render/output.js';
import { cell } from '../../../cli/render/values.js';
import { API_VERSION, type BpfDeployment, PLURAL } from '../../api.js';
import { renderDeployments } from '../render/deployments.js';
import { api, collect, mustGet, parseSet } from '../resources.js';

interface RunOptions {
  set: string[];
  node: string[];
  selector?: string;
  cgroup?: string;
  iface?: string;
  maxUnavailable: string;
  pullSecret?: string;
}

function deploymentOf(name: string, image: string, o: RunOptions): BpfDeployment {
  return {
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
              matchLabels: Object.fromEntries(o.selector.split(',').map((kv) => kv.split('=') as [string, string])),
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
}

export function addDeploymentVerbs(root: Command): void {
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
    .action(async (name: string, image: string, o: RunOptions, cmd: Command) => {
      await api(cmd).create(PLURAL.deployments, deploymentOf(name, image, o));
      process.stdout.write(`bpfdeployment.kbpf.io/${cell(name)} created\n`);
    });

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
      process.stdout.write(`bpfdeployment.kbpf.io/${cell(name)} image updated\n`);
    });

  root
    .command('ps')
    .alias('list')
    .description('deployments and their state on each node')
    .argument('[name]', 'only this deployment')
    .option('--node <name>', 'only this node')
    .option('-l, --selector <labels>', 'only deployments with these labels')
    .addOption(outputOption(LIST_FORMATS))
    .action(
      async (name: string | undefined, o: { node?: string; selector?: string; output: ListFormat }, cmd: Command) => {
        const a = api(cmd);
        const deployments = name
          ? [await mustGet(a, name)]
          : (await a.list(PLURAL.deployments, o.selector ? { labelSelector: o.selector } : {})).items;
        const names = new Set(deployments.map((d) => d.metadata.name));
        const instances = (
          await a.list(PLURAL.nodeInstances, o.node ? { fieldSelector: `spec.nodeName=${o.node}` } : {})
        ).items.filter((n) => names.has(n.spec.deployment));
        process.stdout.write(renderDeployments(o.output, deployments, instances));
      },
    );

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
        process.stdout.write(`bpfdeployment.kbpf.io/${cell(name)} deleted\n`);
      }
    });
}
