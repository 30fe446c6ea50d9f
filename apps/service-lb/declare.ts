// Standalone services for a running service-lb instance:
//
//   node dist/apps/service-lb/declare.js [--instance NAME] [--bpffs DIR] apply FILE.yaml
//   node dist/apps/service-lb/declare.js [--instance NAME] [--bpffs DIR] delete FILE.yaml
//   node dist/apps/service-lb/declare.js [--instance NAME] [--bpffs DIR] list
//   node dist/apps/service-lb/declare.js [--instance NAME] [--bpffs DIR] stats
//
// FILE.yaml (README.md): node: { name, zone, region } (this node's locality), pods: (optional,
// apps/shared/pods.ts identities a backend may name), services: [{ name, vip, ports: [{ port,
// targetPort, protocol }], policy, locality, affinity, waypoint (ADDRESS:PORT), backends: [{ ip |
// pod, port, node, zone, weight, priority }] }]. Unknown fields are ignored. Applying again updates the named services
// live (each atomically); backends that left a service have their connections ended.
import { fileURLToPath } from 'node:url';
import { declareArgs } from '../shared/declare-args.js';
import { ServiceMaps } from './service-maps.js';
import { readServices } from './services.js';

export function main(argv: string[]): number {
  const args = declareArgs(argv, 'svclb', ['apply', 'delete'], ['list', 'stats']);
  if (!args) return 2;
  const { instance, bpffs, verb, file } = args;
  const doc = file ? readServices(file) : { services: [], node: {} };
  const maps = ServiceMaps.ofInstance(bpffs, instance);
  try {
    if (verb === 'apply' || verb === 'delete') {
      const r = verb === 'apply' ? maps.apply(doc.services, doc.node) : maps.remove(doc.services);
      process.stdout.write(
        `${verb === 'apply' ? 'applied' : 'deleted'} ${doc.services.length} service(s) (${r.entries} entries) in ${instance}; ${r.destroyed} connection(s) ended\n`,
      );
    } else if (verb === 'list') for (const s of maps.list()) process.stdout.write(`${JSON.stringify(s)}\n`);
    else for (const [k, v] of Object.entries(maps.stats())) process.stdout.write(`${k}: ${v}\n`);
  } finally {
    maps.close();
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`service-lb declare: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
