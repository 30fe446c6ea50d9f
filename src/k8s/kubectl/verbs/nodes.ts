// kubectl bpf inspect, maps, doctor: what the node agents say — a deployment's instance on each
// node (its status, its maps, read from each agent's endpoint as logs are) and what each node's
// kernel supports (its BpfNode, written by its agent).
import type { Command } from 'commander';
import type { MapDump } from '../../../agent/queries.js';
import type { InstanceStatus } from '../../../agent/types.js';
import type { KernelFeatures } from '../../../bpf/features.js';
import { outputOption } from '../../../cli/options.js';
import { renderDoctor } from '../../../cli/render/doctor.js';
import { renderInstance } from '../../../cli/render/instances.js';
import { renderMaps } from '../../../cli/render/maps.js';
import {
  data,
  isData,
  LIST_FORMATS,
  type ListFormat,
  TEXT_FORMATS,
  type TextFormat,
  table,
} from '../../../cli/render/output.js';
import { ago, cell } from '../../../cli/render/values.js';
import { type BpfNode, PLURAL } from '../../api.js';
import type { KbpfApi } from '../../kube.js';
import { logsAccess, nodeView } from '../node-logs.js';
import { api, collect, examples, globals } from '../resources.js';
import { pickNodes } from './logs.js';

interface NodeOptions {
  node: string[];
  all?: boolean;
}

function addNodeOptions(cmd: Command): Command {
  return cmd
    .option('-d, --node <name>', 'this node (repeatable)', collect, [])
    .option('--all', 'every node the deployment runs on');
}

/** The nodes of a deployment to ask (as logs picks them). */
async function nodesOf(a: KbpfApi, name: string, o: NodeOptions): Promise<string[]> {
  const instances = (await a.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${name}` })).items;
  return pickNodes(name, instances.map((n) => n.spec.nodeName).sort(), o);
}

/** Each node's answer, in node order. */
async function perNode<T>(nodes: string[], ask: (node: string) => Promise<T>): Promise<[string, T][]> {
  return Promise.all(nodes.map(async (n) => [n, await ask(n)] as [string, T]));
}

function headed(node: string, text: string, many: boolean): string {
  return many ? `=== node ${cell(node)} ===\n${text}` : text;
}

/** A BpfNode's status as the doctor renderer takes it. */
function featuresOf(n: BpfNode): KernelFeatures {
  const s = n.status ?? {};
  return {
    kernel: s.kernel ?? '?',
    libbpf: s.libbpf ?? '?',
    btf: !!s.btf,
    jit: !!s.jit,
    unprivilegedBpf: false,
    programTypes: (s.programTypes ?? {}) as KernelFeatures['programTypes'],
    mapTypes: (s.mapTypes ?? {}) as KernelFeatures['mapTypes'],
    hooks: (s.hooks ?? {}) as KernelFeatures['hooks'],
  };
}

function countYes(o: Record<string, string> | undefined): string {
  const v = Object.values(o ?? {});
  return `${v.filter((x) => x === 'yes').length}/${v.length}`;
}

export function addNodeVerbs(root: Command): void {
  examples(
    addNodeOptions(
      root
        .command('inspect')
        .description(
          "a deployment's instance on each node, as its agent reports it (programs, maps, links, revision); for a package, as show",
        )
        .argument('<name>', 'deployment (or package)')
        .addOption(outputOption(TEXT_FORMATS)),
    ),
    [
      'kubectl bpf inspect open --node worker-1',
      'kubectl bpf inspect open --all -o json',
      'kubectl bpf inspect opensnoop',
    ],
  ).action(async (name: string, o: NodeOptions & { output: TextFormat }, cmd: Command) => {
    const a = api(cmd);
    if (!(await a.get(PLURAL.deployments, name))) {
      // not a deployment: a package's details, as show prints them
      const show = root.commands.find((c) => c.name() === 'show');
      if (!show) throw new Error(`no BpfDeployment named "${name}"`);
      await show.parseAsync([name, '-o', o.output], { from: 'user' });
      return;
    }
    const nodes = await nodesOf(a, name, o);
    const auth = logsAccess(globals(cmd).namespace);
    const got = await perNode(nodes, (n) => nodeView(a, name, n, 'inspect', {}, auth) as Promise<InstanceStatus>);
    if (isData(o.output)) process.stdout.write(data(o.output, Object.fromEntries(got)));
    else process.stdout.write(got.map(([n, s]) => headed(n, renderInstance('text', s), nodes.length > 1)).join('\n'));
  });

  examples(
    addNodeOptions(
      root
        .command('maps')
        .description("a deployment's maps on a node, decoded from BTF, as that node's agent reads them")
        .argument('<name>', 'deployment')
        .argument('[map]', 'only this map')
        .addOption(outputOption(LIST_FORMATS)),
    ),
    ['kubectl bpf maps conn --node worker-1', 'kubectl bpf maps conn counts --all -o json'],
  ).action(async (name: string, map: string | undefined, o: NodeOptions & { output: ListFormat }, cmd: Command) => {
    const a = api(cmd);
    if (!(await a.get(PLURAL.deployments, name)))
      throw new Error(`no BpfDeployment named "${name}" (see: kubectl bpf ps)`);
    const nodes = await nodesOf(a, name, o);
    const auth = logsAccess(globals(cmd).namespace);
    const got = await perNode(
      nodes,
      (n) => nodeView(a, name, n, 'maps', map ? { map } : {}, auth) as Promise<MapDump[]>,
    );
    if (isData(o.output)) process.stdout.write(data(o.output, Object.fromEntries(got)));
    else process.stdout.write(got.map(([n, m]) => headed(n, renderMaps(o.output, m), nodes.length > 1)).join('\n'));
  });

  examples(
    root
      .command('doctor')
      .description("what each node's kernel supports (program and map types, hooks, BTF), as its agent probed it")
      .option('-d, --node <name>', 'this node in full (repeatable)', collect, [])
      .addOption(outputOption(LIST_FORMATS)),
    [
      'kubectl bpf doctor',
      'kubectl bpf doctor --node worker-1',
      'kubectl bpf doctor --node worker-1 -o wide',
      'kubectl bpf doctor -o json',
    ],
  ).action(async (o: { node: string[]; output: ListFormat }, cmd: Command) => {
    const a = api(cmd);
    const all = (await a.list(PLURAL.nodes)).items;
    if (o.node.length) {
      const missing = o.node.filter((n) => !all.some((x) => x.metadata.name === n));
      if (missing.length)
        throw new Error(
          `no report from node ${missing.join(', ')} (its agent writes BpfNode NAME when it starts; reported: ${all.map((x) => x.metadata.name).join(', ') || 'none'})`,
        );
      const shown = all.filter((x) => o.node.includes(x.metadata.name));
      if (isData(o.output))
        return void process.stdout.write(
          data(o.output, Object.fromEntries(shown.map((n) => [n.metadata.name, n.status]))),
        );
      process.stdout.write(
        shown.map((n) => headed(n.metadata.name, renderDoctor(o.output, featuresOf(n)), shown.length > 1)).join('\n'),
      );
      return;
    }
    if (isData(o.output))
      return void process.stdout.write(data(o.output, Object.fromEntries(all.map((n) => [n.metadata.name, n.status]))));
    const missingHooks = (n: BpfNode) =>
      Object.entries(n.status?.hooks ?? {})
        .filter(([, h]) => h.supported !== 'yes')
        .map(([k]) => k)
        .join(',') || 'none';
    process.stdout.write(
      table(
        ['NODE', 'KERNEL', 'BTF', 'JIT', 'PROGRAM TYPES', 'MAP TYPES', 'HOOKS MISSING', 'PROBED'],
        all.map((n) => [
          cell(n.metadata.name),
          cell(n.status?.kernel),
          n.status?.btf ? 'yes' : 'no',
          n.status?.jit ? 'yes' : 'no',
          countYes(n.status?.programTypes),
          countYes(n.status?.mapTypes),
          cell(missingHooks(n)),
          ago(n.status?.probedAt),
        ]),
      ),
    );
  });
}
