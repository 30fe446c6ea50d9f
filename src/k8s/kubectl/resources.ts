// What the kubectl bpf verbs share: the cluster of --kubeconfig, the kbpf.io objects they look up,
// and the option values they parse.
import type { Command } from 'commander';
import { type BpfDeployment, type BpfRevision, type ConfigValues, PLURAL } from '../api.js';
import { connect, KbpfApi } from '../kube.js';

export function api(cmd: Command): KbpfApi {
  const opts = cmd.optsWithGlobals() as { kubeconfig?: string };
  return new KbpfApi(connect(opts.kubeconfig));
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
