// Standalone pod declarations for a running mesh-accel instance:
//
//   node dist/apps/mesh-accel/declare.js [--instance NAME] [--bpffs DIR] apply FILE.yaml
//   node dist/apps/mesh-accel/declare.js [--instance NAME] [--bpffs DIR] delete FILE.yaml
//   node dist/apps/mesh-accel/declare.js [--instance NAME] [--bpffs DIR] list
//   node dist/apps/mesh-accel/declare.js [--instance NAME] [--bpffs DIR] stats
//
// FILE.yaml:  pods: [{ ip: 10.1.0.5, ip6: fd00::5 (optional), cgroup: /sys/fs/cgroup/unified/pods/a, mode: istio,
//                      excludeOutboundPorts: [3306], excludeOutboundCidrs: [10.96.0.0/12] }, ...]
// The agent's bpffs directory defaults to $KBPF_BPFFS_DIR or /sys/fs/bpf/kbpf, the instance to
// "mesh". Apply a pod before starting anything in its cgroup: its first connection is meshed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { declareArgs } from '../shared/declare-args.js';
import { MeshMaps, type PodSpec } from './mesh.js';

export function readPods(file: string): PodSpec[] {
  const doc = parse(readFileSync(file, 'utf8')) as { pods?: unknown } | null;
  if (!doc || !Array.isArray(doc.pods)) throw new Error(`${file}: expected a top-level "pods:" list`);
  return doc.pods.map((p, i) => {
    const pod = p as PodSpec;
    if (typeof pod?.cgroup !== 'string' || (typeof pod.ip !== 'string' && typeof pod.ip6 !== 'string')) {
      throw new Error(`${file}: pods[${i}] needs cgroup and ip (IPv4), ip6 (IPv6) or both`);
    }
    return pod;
  });
}

export function main(argv: string[]): number {
  const args = declareArgs(argv, 'mesh', ['apply', 'delete'], ['list', 'stats']);
  if (!args) return 2;
  const { instance, bpffs, verb, file } = args;
  const pods = file ? readPods(file) : [];
  const maps = MeshMaps.ofInstance(bpffs, instance);
  try {
    if (verb === 'apply') for (const p of pods) maps.declarePod(p);
    else if (verb === 'delete') for (const p of pods) maps.removePod(p);
    else if (verb === 'list') {
      for (const p of maps.pods()) process.stdout.write(`${JSON.stringify(p)}\n`);
      // IPv6-only pods (ip 0) are only in pods_by_ip6
      for (const p of maps.pods6()) if (!p.settings.ip) process.stdout.write(`${JSON.stringify(p)}\n`);
    } else for (const [k, v] of Object.entries(maps.stats())) process.stdout.write(`${k}: ${v}\n`);
    if (verb === 'apply' || verb === 'delete')
      process.stdout.write(`${verb === 'apply' ? 'declared' : 'removed'} ${pods.length} pod(s) in ${instance}\n`);
  } finally {
    maps.close();
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`mesh-accel declare: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
