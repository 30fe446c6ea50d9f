// Completion of `kubectl bpf` words, through kubectl's convention: kubectl runs the executable
// `kubectl_complete-bpf` (bin/) with the words after `bpf`, the last being completed, and reads
// Cobra's answer (../../cli/completion.ts): verbs, flags, and the names of deployments,
// packages, nodes and contexts, read from the cluster of --kubeconfig / --context.
import { complete, completionOutput, flagValue, type NameSource } from '../../cli/completion.js';
import { PLURAL } from '../api.js';
import { connect, KbpfApi } from '../kube.js';
import { program } from './main.js';

const clusterNames: NameSource = async (kind, words) => {
  try {
    const kube = connect(flagValue(words, '--kubeconfig'), flagValue(words, '--context'));
    if (kind === 'context') return kube.kc.getContexts().map((c) => c.name);
    const a = new KbpfApi(kube);
    if (kind === 'instance') return (await a.list(PLURAL.deployments)).items.map((d) => d.metadata.name);
    if (kind === 'package') return (await a.list(PLURAL.packages)).items.map((p) => p.spec.name);
    if (kind === 'node') return (await kube.core.listNode()).items.map((n) => n.metadata?.name ?? '').filter(Boolean);
  } catch {
    /* no cluster: no names */
  }
  return [];
};

export async function completeMain(words = process.argv.slice(2)): Promise<void> {
  process.stdout.write(completionOutput(await complete(program(), words.length ? words : [''], clusterNames)));
}
