// Standalone policies for a running netpol instance:
//
//   node dist/apps/netpol/declare.js [--instance NAME] [--bpffs DIR] apply FILE.yaml
//   node dist/apps/netpol/declare.js [--instance NAME] [--bpffs DIR] clear
//   node dist/apps/netpol/declare.js [--instance NAME] [--bpffs DIR] list
//   node dist/apps/netpol/declare.js [--instance NAME] [--bpffs DIR] stats
//
// FILE.yaml holds the whole desired state (policy.ts): `policies:` (NetworkPolicy objects),
// `namespaces:` (name, labels) and `pods:` (apps/shared/pods.ts: namespace, name, labels, ip,
// cgroup — the pods with a cgroup are this node's). `apply` compiles it into a new generation and
// switches the data path to it at once; applying the file again after editing it is the update.
// `clear` removes every policy (all traffic passes). The agent's bpffs directory defaults to
// $KBPF_BPFFS_DIR or /sys/fs/bpf/kbpf, the instance to "netpol".
import { fileURLToPath } from 'node:url';
import { declareArgs } from '../shared/declare-args.js';
import { NetpolMaps } from './netpol.js';
import { readPolicyFile } from './policy.js';

export function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  const args = declareArgs(argv, 'netpol', ['apply'], ['clear', 'list', 'stats']);
  if (!args) return 2;
  const { instance, bpffs, verb, file } = args;
  const input = verb === 'apply' ? readPolicyFile(file!) : undefined;
  const maps = NetpolMaps.ofInstance(bpffs, instance);
  try {
    if (input) {
      const a = maps.apply(input);
      out(
        `applied generation ${a.gen} to ${instance}: ${a.policies} policies, ${a.pods} pod(s) selected, ${a.entries} entries\n`,
      );
    } else if (verb === 'clear') {
      maps.clear();
      out(`cleared the policies of ${instance}\n`);
    } else if (verb === 'list') {
      const g = maps.generation();
      out(`generation: ${g.gen}\npolicies: ${g.policies}\npods: ${g.pods}\nentries: ${g.entries}\n`);
      for (const [id, name] of [...maps.policyNames()].sort((a, b) => a[0] - b[0])) out(`policy ${id}: ${name}\n`);
    } else {
      for (const [k, v] of Object.entries(maps.stats())) out(`${k}: ${v}\n`);
      for (const [name, n] of [...maps.drops()].sort()) out(`drops ${name}: ${n}\n`);
    }
  } finally {
    maps.close();
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`netpol declare: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
