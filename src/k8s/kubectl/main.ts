// `kubectl bpf`: the cluster verbs, as a kubectl plugin (kubectl runs bin/kubectl-bpf from PATH
// with $KUBECONFIG and the arguments after "bpf"). It reads and writes the kbpf.io resources only.
// The verbs are in ./verbs/; what they print is made by the render modules kbpf uses too
// (src/cli/render/).
import { Command } from 'commander';
import { escapeLines } from '../../cli/render/escape.js';
import { DEFAULT_NAMESPACE } from '../api.js';
import { errorText } from '../kube.js';
import { addDeploymentVerbs } from './verbs/deployments.js';
import { addFlowVerbs } from './verbs/flows.js';
import { addLogVerbs } from './verbs/logs.js';
import { addNodeVerbs } from './verbs/nodes.js';
import { addPackageVerbs } from './verbs/packages.js';
import { addRolloutVerbs } from './verbs/rollout.js';

export function program(): Command {
  const root = new Command('kubectl bpf')
    .description('kbpf on Kubernetes: eBPF packages deployed to nodes like workloads (BpfDeployment, BpfNodeInstance)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use (default: its current context)')
    .option('-n, --namespace <namespace>', 'the namespace kbpf runs in (its Secrets)', DEFAULT_NAMESPACE)
    .configureOutput({ outputError: (s, write) => write(escapeLines(s)) })
    .showHelpAfterError();
  addDeploymentVerbs(root);
  addLogVerbs(root);
  addFlowVerbs(root);
  addRolloutVerbs(root);
  addPackageVerbs(root);
  addNodeVerbs(root);
  return root;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    process.stderr.write(`error: ${escapeLines(errorText(e))}\n`);
    process.exitCode = 1;
  }
}
