import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentPaths } from '../../src/agent/paths.js';
import { NodeReconciler } from '../../src/k8s/node/node-reconciler.js';
import { FakeAgent } from './fake-agent.js';
import { kubeAs, processStats, serveStats } from './kube.js';

export interface FleetConfig {
  server: string;
  nodes: string[];
  loadMs: number;
  resyncMs: number;
  /** where the nodes keep their state (made and removed by the benchmark, which kills this process) */
  dir: string;
}

export interface FleetStats {
  cpuS: number;
  rssMB: number;
  /** node reconciles per key (deployment name), summed over the nodes */
  reconciles: Record<string, number>;
  /** fake loads (run + upgrade) per deployment, summed over the nodes */
  loads: Record<string, number>;
}

async function main(cfg: FleetConfig): Promise<void> {
  const dir = cfg.dir;
  const agents: FakeAgent[] = [];
  const reconcilers: NodeReconciler[] = [];
  const log = (m: string): void => {
    if (!/ failed: | to revision /.test(m)) return;
    process.stderr.write(`fleet: ${m}\n`);
  };
  for (const node of cfg.nodes) {
    const agent = new FakeAgent({ loadMs: cfg.loadMs });
    agents.push(agent);
    reconcilers.push(
      new NodeReconciler({
        nodeName: node,
        kube: kubeAs(cfg.server, `node:${node}`),
        paths: agentPaths(join(dir, node), join(dir, node, 'bpffs')),
        namespace: 'kbpf-system',
        resyncMs: cfg.resyncMs,
        agent,
        log: (m) => log(`${node}: ${m}`),
      }),
    );
  }
  // start in batches: 500 lists at once would only queue at the server
  for (let i = 0; i < reconcilers.length; i += 50)
    await Promise.all(reconcilers.slice(i, i + 50).map((r) => r.start()));
  const sum = (maps: Iterable<Map<string, number>>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const m of maps) for (const [k, v] of m) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  serveStats(
    (): FleetStats => ({
      ...processStats(),
      reconciles: sum(reconcilers.map((r) => r.reconciles)),
      loads: sum(agents.map((a) => a.loads)),
    }),
  );
  process.send!({ type: 'ready' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(JSON.parse(process.argv[2]!) as FleetConfig).catch((e) => {
    process.stderr.write(`fleet: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
