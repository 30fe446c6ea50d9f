// Clients of the benchmark's test API server, each with its own bearer token, so that the
// server can count requests per client (node:NAME, controller, bench).
import * as k8s from '@kubernetes/client-node';
import { type Kube, kubeOf } from '../../src/k8s/kube.js';

export function kubeAs(server: string, token: string): Kube {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'bench', server, skipTLSVerify: true }],
    users: [{ name: token, token }],
    contexts: [{ name: 'bench', cluster: 'bench', user: token }],
    currentContext: 'bench',
  });
  return kubeOf(kc);
}

/** A child process's side of the benchmark's IPC: answers `stats` with what `stats()` says. */
export function serveStats(stats: () => unknown): void {
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stats') process.send!({ type: 'stats', stats: stats() });
    if (m?.type === 'stop') process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
}

export function processStats(): { cpuS: number; rssMB: number } {
  const u = process.cpuUsage();
  return { cpuS: (u.user + u.system) / 1e6, rssMB: process.memoryUsage().rss / 2 ** 20 };
}
