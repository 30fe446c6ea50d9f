// kubectl bpf run, upgrade, ps, rm, stop, start: BpfDeployments and their state on each node.
// `run` takes the prototype's forms too: sources (`run opensnoop.bpf.c opensnoop.h -i open -a`),
// a source directory, or an existing package (-p); see package-source.ts for where it goes.
import type { Command } from 'commander';
import { attachOverrides, outputOption, parseMapSize, parseShare } from '../../../cli/options.js';
import { data, LIST_FORMATS, type ListFormat } from '../../../cli/render/output.js';
import { cell } from '../../../cli/render/values.js';
import { API_VERSION, type BpfDeployment, type BpfNodeInstance, PLURAL } from '../../api.js';
import { type KbpfApi, statusCode } from '../../kube.js';
import { deployable, type PackageSourceOptions, splitRunArgs } from '../package-source.js';
import { renderDeployments } from '../render/deployments.js';
import { api, collect, examples, mustGet, parseSet } from '../resources.js';

interface RunOptions extends PackageSourceOptions {
  inst?: string;
  all?: boolean;
  set: string[];
  node: string[];
  selector?: string;
  cgroup?: string;
  iface?: string;
  mapSize?: [string, string][];
  shareMap?: [string, string][];
  maxUnavailable: string;
  pullSecret?: string;
  output?: 'name' | 'json' | 'yaml';
}

const say = (line: string): void => void process.stderr.write(`${line}\n`);

function deploymentOf(name: string, image: string, o: RunOptions): BpfDeployment {
  // the attach points kbpf run takes, from the same options
  const attach = attachOverrides({ cgroup: o.cgroup, iface: o.iface, mapSize: o.mapSize, shareMap: o.shareMap });
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
      ...(attach ? { attach } : {}),
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: {
          maxUnavailable: /^\d+$/.test(o.maxUnavailable) ? Number(o.maxUnavailable) : o.maxUnavailable,
        },
      },
    },
  };
}

/** The package options run and upgrade share. */
function addPackageOptions(cmd: Command): Command {
  return cmd
    .option(
      '-p, --package <package>',
      'start from a package in the cluster (NAME[:VERSION][@sha256:…]), the local store or a registry',
    )
    .option(
      '--registry <ref>',
      'push the package to this registry repository (HOST/REPO[:TAG]) instead of storing it in the cluster',
    )
    .option('--store <dir>', 'local package store (for -p of a local package; builds use a temporary one)')
    .option('--cache-dir <dir>', 'where builds cache vmlinux.h (default $KBPF_CACHE_DIR or ~/.cache/kbpf)');
}

/** The deployments named, or every one (--all), or those with these labels (-l). */
async function chosen(a: KbpfApi, names: string[], o: { all?: boolean; selector?: string }, verb: string) {
  if (names.length && (o.all || o.selector)) throw new Error(`${verb}: give names, or --all, or -l SELECTOR, not both`);
  if (names.length) return Promise.all(names.map((n) => mustGet(a, n)));
  if (!o.all && !o.selector) throw new Error(`${verb}: name a deployment, or say --all or -l SELECTOR`);
  return (await a.list(PLURAL.deployments, o.selector ? { labelSelector: o.selector } : {})).items;
}

export function addDeploymentVerbs(root: Command): void {
  examples(
    addPackageOptions(
      root
        .command('run')
        .description(
          'deploy a package to nodes (creates a BpfDeployment): from source files or a directory (built here, stored in the cluster), a package (-p), or a registry reference',
        )
        .argument('[args...]', 'FILE.bpf.c [FILE.h…] | DIR | [NAME] IMAGE')
        .option('-i, --inst <name>', 'the deployment (instance) name (default: the package name)')
        .option('-d, --node <name>', 'run on this node (repeatable)', collect, [])
        .option('-a, --all', 'run on every node (the default when no node or selector is given)')
        .option('-l, --selector <labels>', 'run on the nodes with these labels, k=v[,k=v]')
        .option('--set <var=value>', 'config variable (repeatable)', collect, [])
        .option('--cgroup <path>', "cgroup to attach cgroup programs to (relative to each node's cgroup root)")
        .option('--iface <name>', 'interface for xdp/tc programs')
        .option('--map-size <MAP=N>', "set a map's max_entries before load (repeatable)", parseMapSize)
        .option(
          '--share-map <MAP=INSTANCE[:MAP]>',
          "use the map of another deployment's instance on the same node instead of a new one (repeatable)",
          parseShare,
        )
        .option('--max-unavailable <n>', 'nodes that may be between revisions during a rollout', '1')
        .option(
          '--pull-secret <name>',
          'dockerconfigjson Secret labelled kbpf.io/pull-secret=true that allows this deployment (annotation kbpf.io/allowed-deployments)',
        ),
    ).addOption(outputOption(['name', 'json', 'yaml']).default(undefined)),
    [
      'kubectl bpf run opensnoop.bpf.c opensnoop.h -i open -a',
      'kubectl bpf run ./tcpconnect --node worker-1 --set min_port=1024',
      'kubectl bpf run -p opensnoop:1.0 -i open -l kbpf.io/tier=edge',
      'kubectl bpf run ./opensnoop.bpf.c --registry registry.example.com/kbpf/opensnoop:1.0',
      'kubectl bpf run conn registry.example.com/kbpf/tcpconnect@sha256:…',
      'kubectl bpf run -i flows --share-map svc_origin=lb -p flow-monitor:0.3.1',
    ],
  ).action(async (args: string[], o: RunOptions, cmd: Command) => {
    if (o.all && (o.node.length || o.selector)) throw new Error('-a/--all runs on every node: give no --node or -l');
    const { name, rest } = splitRunArgs(args, o);
    const a = api(cmd);
    const pkg = await deployable(a, rest, o, say);
    const dname = o.inst ?? name ?? pkg.name;
    let created: BpfDeployment;
    try {
      created = await a.create(PLURAL.deployments, deploymentOf(dname, pkg.image, o));
    } catch (e) {
      if (statusCode(e) === 409)
        throw new Error(
          `bpfdeployment "${dname}" already exists (kubectl bpf upgrade ${dname} … moves it to another package)`,
        );
      throw e;
    }
    if (o.output === 'json' || o.output === 'yaml') process.stdout.write(data(o.output, created));
    else process.stdout.write(`bpfdeployment.kbpf.io/${cell(dname)} created\n`);
  });

  examples(
    addPackageOptions(
      root
        .command('upgrade')
        .description('move a deployment to another package (a rolling update, one revision more)')
        .argument('<name>')
        .argument('[source...]', 'FILE.bpf.c [FILE.h…] | DIR | IMAGE (or -p PACKAGE)')
        .option('--set <var=value>', 'config variable (repeatable; replaces the config)', collect, []),
    ),
    [
      'kubectl bpf upgrade open opensnoop.bpf.c opensnoop.h',
      'kubectl bpf upgrade open -p opensnoop:1.1',
      'kubectl bpf upgrade conn registry.example.com/kbpf/tcpconnect:1.1 --set min_port=80',
    ],
  ).action(async (name: string, source: string[], o: PackageSourceOptions & { set: string[] }, cmd: Command) => {
    const a = api(cmd);
    await mustGet(a, name);
    const pkg = o.package || source.length ? await deployable(a, o.package ? [] : source, o, say) : undefined;
    if (!pkg && !o.set.length) throw new Error('upgrade: give a package (sources, an image or -p) or --set');
    const out = await a.update(PLURAL.deployments, name, (d) => {
      if (pkg) d.spec.package.image = pkg.image;
      if (o.set.length) d.spec.config = parseSet(o.set);
      return d;
    });
    if (!out) throw new Error(`no BpfDeployment named "${name}"`);
    process.stdout.write(`bpfdeployment.kbpf.io/${cell(name)} ${pkg ? 'image updated' : 'config updated'}\n`);
  });

  examples(
    root
      .command('ps')
      .alias('list')
      .description('deployments and their state on each node')
      .argument('[name]', 'only this deployment')
      .option('-d, --node <name>', 'only this node')
      .option('-l, --selector <labels>', 'only deployments with these labels')
      .option('-A, --all', 'every deployment (the default)')
      .option('-w, --watch', 'after listing, print each instance again when it changes')
      .addOption(outputOption(LIST_FORMATS)),
    ['kubectl bpf ps', 'kubectl bpf list open -o wide', 'kubectl bpf ps --node worker-1 -o yaml', 'kubectl bpf ps -w'],
  ).action(
    async (
      name: string | undefined,
      o: { node?: string; selector?: string; watch?: boolean; output: ListFormat },
      cmd: Command,
    ) => {
      const a = api(cmd);
      const snapshot = async () => {
        const deployments = name
          ? [await mustGet(a, name)]
          : (await a.list(PLURAL.deployments, o.selector ? { labelSelector: o.selector } : {})).items;
        const names = new Set(deployments.map((d) => d.metadata.name));
        const instances = (
          await a.list(PLURAL.nodeInstances, o.node ? { fieldSelector: `spec.nodeName=${o.node}` } : {})
        ).items.filter((n) => names.has(n.spec.deployment));
        return { deployments, instances };
      };
      const first = await snapshot();
      process.stdout.write(renderDeployments(o.output, first.deployments, first.instances));
      if (!o.watch) return;
      await watchRows(o.output, first, snapshot);
    },
  );

  examples(
    root
      .command('rm')
      .alias('delete')
      .description('delete deployments: every node removes their programs')
      .argument('[name...]')
      .option('-a, --all', 'every deployment')
      .option('-l, --selector <labels>', 'the deployments with these labels')
      .option('--wait', 'wait until every node has removed them'),
    [
      'kubectl bpf rm open',
      'kubectl bpf delete open conn --wait',
      'kubectl bpf rm -l team=net',
      'kubectl bpf rm --all',
    ],
  ).action(async (list: string[], o: { all?: boolean; selector?: string; wait?: boolean }, cmd: Command) => {
    const a = api(cmd);
    const ds = await chosen(a, list, o, 'rm');
    for (const d of ds) {
      await a.delete(PLURAL.deployments, d.metadata.name);
      process.stdout.write(`bpfdeployment.kbpf.io/${cell(d.metadata.name)} deleted\n`);
    }
    if (o.wait)
      await waitGone(
        a,
        ds.map((d) => d.metadata.name),
      );
  });

  for (const [verb, stopped] of [
    ['stop', true],
    ['start', false],
  ] as const)
    examples(
      root
        .command(verb)
        .description(
          stopped
            ? 'stop deployments: every node unloads their programs but keeps the instances (and their history)'
            : 'start stopped deployments again: every node loads their programs',
        )
        .argument('[name...]')
        .option('-a, --all', 'every deployment')
        .option('-l, --selector <labels>', 'the deployments with these labels'),
      [`kubectl bpf ${verb} open`, `kubectl bpf ${verb} --all`, `kubectl bpf ${verb} -l team=net`],
    ).action(async (list: string[], o: { all?: boolean; selector?: string }, cmd: Command) => {
      const a = api(cmd);
      for (const d of await chosen(a, list, o, verb)) {
        await a.update(PLURAL.deployments, d.metadata.name, (x) => {
          if (!!x.spec.stopped === stopped) return undefined;
          if (stopped) x.spec.stopped = true;
          else delete x.spec.stopped;
          return x;
        });
        process.stdout.write(`bpfdeployment.kbpf.io/${cell(d.metadata.name)} ${stopped ? 'stopped' : 'started'}\n`);
      }
    });
}

type Snapshot = { deployments: BpfDeployment[]; instances: BpfNodeInstance[] };

/** ps -w: polls, printing an instance's row again (without the header) whenever it changes, until ^C. */
async function watchRows(format: ListFormat, first: Snapshot, snapshot: () => Promise<Snapshot>): Promise<void> {
  const key = (s: Snapshot) =>
    new Map(s.instances.map((n) => [n.metadata.name, renderDeployments(format, s.deployments, [n])]));
  let last = key(first);
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!ac.signal.aborted) {
      await new Promise((r) => setTimeout(r, 1000));
      if (ac.signal.aborted) break;
      const now = key(await snapshot());
      for (const [n, text] of now) {
        if (last.get(n) === text) continue;
        const lines = text.trimEnd().split('\n');
        process.stdout.write(`${format === 'json' || format === 'yaml' ? text : lines.slice(1).join('\n')}\n`);
      }
      last = now;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function waitGone(a: KbpfApi, names: string[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const left = (await a.list(PLURAL.nodeInstances)).items.filter((n) => names.includes(n.spec.deployment));
    const ds = (await Promise.all(names.map((n) => a.get(PLURAL.deployments, n)))).filter(Boolean);
    if (!left.length && !ds.length) return;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${left.map((n) => n.metadata.name).join(', ') || names.join(', ')} to go`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
