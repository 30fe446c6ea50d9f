// What the kubectl bpf verbs share: the cluster of --kubeconfig, the kbpf.io objects they look up,
// and the option values they parse.
import type { Command } from 'commander';
import { type BpfDeployment, type BpfRevision, type ConfigValues, PLURAL } from '../api.js';
import { connect, KbpfApi } from '../kube.js';

/** The global flags kubectl's conventions give every verb. */
export interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  /** the namespace kbpf runs in (its Secrets: pull secrets, the log endpoints' token) */
  namespace: string;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function api(cmd: Command): KbpfApi {
  const opts = globals(cmd);
  return new KbpfApi(connect(opts.kubeconfig, opts.context));
}

/** `Examples:` after a verb's help, one command a line. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

export async function mustGet(a: KbpfApi, name: string): Promise<BpfDeployment> {
  const d = await a.get(PLURAL.deployments, name);
  if (!d) throw new Error(`no BpfDeployment named "${name}" (see: kubectl bpf ps)`);
  return d;
}

/** The deployment's revisions, oldest first. */
export async function revisionsOf(a: KbpfApi, name: string): Promise<BpfRevision[]> {
  return (await a.list(PLURAL.revisions, { labelSelector: `kbpf.io/deployment=${name}` })).items.sort(
    (x, y) => x.revision - y.revision,
  );
}

/** --set NAME=VALUE…: integers as numbers, the rest as strings. */
export function parseSet(values: string[]): ConfigValues {
  const out: ConfigValues = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new Error(`--set ${v}: use NAME=VALUE`);
    const raw = v.slice(i + 1);
    out[v.slice(0, i)] = /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : raw;
  }
  return out;
}

/** A repeatable option. */
export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}
