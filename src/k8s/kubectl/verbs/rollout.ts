// kubectl bpf rollout status, history, undo: a deployment's rollout and its revisions.
import { type Command, InvalidArgumentError } from 'commander';
import { outputOption } from '../../../cli/options.js';
import { escapeControl } from '../../../cli/render/escape.js';
import { LIST_FORMATS, type ListFormat } from '../../../cli/render/output.js';
import { cell } from '../../../cli/render/values.js';
import { parseDuration } from '../../../util/duration.js';
import { PLURAL, templateHash, templateOf } from '../../api.js';
import { renderDeploymentHistory } from '../render/history.js';
import { api, examples, mustGet, revisionsOf } from '../resources.js';

/** --timeout: seconds (120) or a duration (2m, 1m30s), in milliseconds. */
function timeoutMs(v: string): number {
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const d = parseDuration(v);
  if (d === undefined) throw new InvalidArgumentError('expected seconds (120) or a duration (2m, 1m30s)');
  return d;
}

export function addRolloutVerbs(root: Command): void {
  const rollout = examples(root.command('rollout').description('manage the rollout of a deployment'), [
    'kubectl bpf rollout status open',
    'kubectl bpf rollout history open',
    'kubectl bpf rollout undo open',
  ]);
  examples(
    rollout
      .command('status')
      .description('wait until the rollout completes (or fails)')
      .argument('<name>')
      .option('--timeout <seconds|duration>', 'give up after (120, 2m)', timeoutMs, 120_000)
      .option('-w, --watch <bool>', 'keep waiting (false: print once)', 'true'),
    [
      'kubectl bpf rollout status open',
      'kubectl bpf rollout status open --timeout 5m',
      'kubectl bpf rollout status open -w false',
    ],
  ).action(async (name: string, o: { timeout: number; watch: string }, cmd: Command) => {
    const a = api(cmd);
    const deadline = Date.now() + o.timeout;
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
      if (line !== last) process.stdout.write(`${escapeControl(line)}\n`);
      last = line;
      if (done || o.watch === 'false') return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for the rollout of ${name}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  examples(
    rollout
      .command('history')
      .description('revisions of a deployment')
      .argument('<name>')
      .addOption(outputOption(LIST_FORMATS)),
    ['kubectl bpf rollout history open', 'kubectl bpf rollout history open -o yaml'],
  ).action(async (name: string, o: { output: ListFormat }, cmd: Command) => {
    const a = api(cmd);
    const d = await mustGet(a, name);
    const revisions = await revisionsOf(a, name);
    process.stdout.write(renderDeploymentHistory(o.output, revisions, templateHash(templateOf(d.spec))));
  });

  for (const [parent, verb] of [
    [rollout, 'undo'],
    [root, 'rollback'],
  ] as const)
    examples(
      parent
        .command(verb)
        .description(
          `go back to the previous revision (or --to-revision N)${verb === 'rollback' ? ': kubectl bpf rollout undo' : ''}`,
        )
        .argument('<name>')
        .option('--to-revision <n>', 'revision to go back to'),
      [
        `kubectl bpf ${verb === 'undo' ? 'rollout undo' : 'rollback'} open`,
        `kubectl bpf ${verb === 'undo' ? 'rollout undo' : 'rollback'} open --to-revision 2`,
      ],
    ).action(undo);
}

async function undo(name: string, o: { toRevision?: string }, cmd: Command): Promise<void> {
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
    `bpfdeployment.kbpf.io/${cell(name)} rolled back (to the template of revision ${target.revision})\n`,
  );
}
