// The real controller (under leader election, as its Deployment runs it) in its own process, so
// its CPU time and RSS are its own. Started by bench/cluster.ts with
// `node controller.js '{"server":…,"resyncMs":…}'`; answers `stats` over IPC.
import { fileURLToPath } from 'node:url';
import { runController } from '../../src/k8s/controller/main.js';
import { kubeAs, processStats, serveStats } from './kube.js';

export interface ControllerStats {
  cpuS: number;
  rssMB: number;
  /** reconciles per deployment */
  reconciles: Record<string, number>;
}

function main(cfg: { server: string; resyncMs: number }): void {
  const { controller } = runController({
    kube: kubeAs(cfg.server, 'controller'),
    namespace: 'kbpf-system',
    identity: 'bench-controller',
    resyncMs: cfg.resyncMs,
    log: (m) => {
      if (!/ to revision /.test(m)) process.stderr.write(`controller: ${m}\n`);
    },
  });
  serveStats((): ControllerStats => ({ ...processStats(), reconciles: Object.fromEntries(controller.reconciles) }));
  process.send!({ type: 'ready' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(JSON.parse(process.argv[2]!));
