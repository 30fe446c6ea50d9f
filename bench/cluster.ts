// The controller at scale: the test API server (in this process), the real controller (its own
// process, under leader election) and 500 simulated nodes (one process: a real NodeReconciler per
// node with its own client and watch, driving a fake kernel side, bench/cluster/fake-agent.ts).
//
//  1. a deployment to every node (cluster_deploy_500_s);
//  2. a rolling upgrade with maxUnavailable 10% (cluster_rollout_500_s, goal ≤ 30;
//     cluster_requests_per_node, goal ≤ 10: every non-watch request the controller and the nodes
//     made during it, counted at the server by bearer token, over the nodes), checking that no more
//     than 10% of the nodes were ever unavailable; the controller's CPU seconds and RSS;
//  3. nothing changing (cluster_idle_requests_per_min, goal 0 beyond watches and lease renewals);
//  4. 50 deployments on every node, then one of them upgraded: the controller's and the nodes'
//     reconciles, loads and requests for it against the 49 that did not change
//     (cluster_one_of_50_*), with the single-deployment rollout of step 2 as the baseline.
//
// Options: --nodes=500 --deployments=50 --load-ms=15 (each fake load) --idle-s=25 (the idle window;
// resyncs are 10 s) --resync-ms=10000 (controller and nodes).
import { type ChildProcess, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import {
  API_VERSION,
  type BpfDeployment,
  type BpfNodeInstance,
  GROUP,
  instanceReady,
  PLURAL,
  VERSION,
} from '../src/k8s/api.js';
import { KbpfApi } from '../src/k8s/kube.js';
import { TestApiServer } from '../testbed/apiserver/server.js';
import type { ControllerStats } from './cluster/controller.js';
import type { FleetConfig, FleetStats } from './cluster/fleet.js';
import { kubeAs } from './cluster/kube.js';
import { type Benchmark, note, result } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..', '..');

function option(args: string[], name: string, dflt: number): number {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : dflt;
}

function digest(n: number): string {
  return `sha256:${createHash('sha256').update(`bench package ${n}`).digest('hex')}`;
}

/** A child process speaking the benchmark's IPC (ready, stats). */
class Child<S> {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  #waiting: ((s: S) => void)[] = [];

  constructor(script: string, config: unknown) {
    this.proc = fork(join(here, 'cluster', script), [JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve, reject) => {
      this.proc.on('message', (m: { type: string; stats?: S }) => {
        if (m.type === 'ready') resolve();
        if (m.type === 'stats') this.#waiting.shift()?.(m.stats!);
      });
      this.proc.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
    });
  }

  stats(): Promise<S> {
    return new Promise((r) => {
      this.#waiting.push(r);
      this.proc.send({ type: 'stats' });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }
}

interface Rollout {
  seconds: number;
  /** the most nodes not ready at once while it ran */
  maxUnavailable: number;
}

export const benchmark: Benchmark = {
  name: 'cluster',
  description:
    'controller at scale: deploy and rolling upgrade over 500 simulated nodes (time, API requests per node, idle requests), one change among 50 deployments',
  async run(opts) {
    const nodes = option(opts.args, 'nodes', 500);
    const deployments = option(opts.args, 'deployments', 50);
    const loadMs = option(opts.args, 'load-ms', 15);
    const idleS = option(opts.args, 'idle-s', 25);
    const resyncMs = option(opts.args, 'resync-ms', 10_000);

    const server = new TestApiServer({ bookmarkIntervalMs: 10_000, eventWindow: 50_000 });
    await server.start();
    const children: Child<unknown>[] = [];
    const fleetDir = mkdtempSync(join(tmpdir(), 'kbpf-bench-fleet-'));
    try {
      const kube = kubeAs(server.url, 'bench');
      const api = new KbpfApi(kube);
      const ext = kube.kc.makeApiClient(k8s.ApiextensionsV1Api);
      const crds = join(ROOT, 'deploy', 'crds');
      for (const f of readdirSync(crds).filter((x) => x.endsWith('.yaml')))
        for (const doc of k8s.loadAllYaml(readFileSync(join(crds, f), 'utf8')))
          await ext.createCustomResourceDefinition({ body: doc as k8s.V1CustomResourceDefinition });
      await kube.core.createNamespace({ body: { metadata: { name: 'kbpf-system' } } });
      const names = Array.from({ length: nodes }, (_, i) => `node-${String(i).padStart(4, '0')}`);
      for (const name of names)
        await kube.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name } } } });

      const controller = new Child<ControllerStats>('controller.js', { server: server.url, resyncMs });
      children.push(controller as Child<unknown>);
      const fleetConfig: FleetConfig = { server: server.url, nodes: names, loadMs, resyncMs, dir: fleetDir };
      const fleet = new Child<FleetStats>('fleet.js', fleetConfig);
      children.push(fleet as Child<unknown>);
      await Promise.all([controller.ready, fleet.ready]);
      note(`cluster: ${nodes} nodes watching, controller started`);

      // ---- what the server holds, read in this process (no requests) ----
      const rt = `${GROUP}/${VERSION}`;
      const deploymentObj = (name: string): BpfDeployment | undefined =>
        server.objects.get(`${rt}/${PLURAL.deployments}//${name}`) as unknown as BpfDeployment | undefined;
      /** Instances not ready, per deployment (one pass over the server's instances). */
      const unavailable = (): Map<string, number> => {
        const down = new Map<string, number>();
        for (const o of server.objects.ofType(`${rt}/${PLURAL.nodeInstances}/`)) {
          const ni = o as unknown as BpfNodeInstance;
          if (!instanceReady(ni)) down.set(ni.spec.deployment, (down.get(ni.spec.deployment) ?? 0) + 1);
        }
        return down;
      };
      const converged = (name: string): boolean => {
        const d = deploymentObj(name);
        const s = d?.status;
        return (
          !!s &&
          s.observedGeneration === d.metadata.generation &&
          s.readyNodes === nodes &&
          s.updatedNodes === nodes &&
          !!s.conditions?.some((c) => c.type === 'Progressing' && c.reason === 'RolloutComplete')
        );
      };
      /** Waits until every named deployment has converged, watching how many nodes are unavailable. */
      const awaitRollout = async (names: string[], from: number, timeoutS: number): Promise<Rollout> => {
        let maxUnavailable = 0;
        const deadline = from + timeoutS * 1000;
        for (;;) {
          const down = unavailable();
          for (const n of names) maxUnavailable = Math.max(maxUnavailable, down.get(n) ?? 0);
          if (names.every(converged)) return { seconds: (performance.now() - from) / 1000, maxUnavailable };
          if (performance.now() > deadline) {
            const d = deploymentObj(names.find((n) => !converged(n))!);
            throw new Error(`no convergence in ${timeoutS} s: ${JSON.stringify(d?.status)}`);
          }
          await sleep(names.length > 1 ? 250 : 25);
        }
      };
      const deployment = (name: string, n: number): BpfDeployment => ({
        apiVersion: API_VERSION,
        kind: 'BpfDeployment',
        metadata: { name },
        spec: {
          package: { image: `registry.bench/kbpf/opensnoop@${digest(n)}` },
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } },
        },
      });
      const upgrade = (name: string, n: number) =>
        api.update(PLURAL.deployments, name, (o) => ({
          ...o,
          spec: { ...o.spec, package: { image: `registry.bench/kbpf/opensnoop@${digest(n)}` } },
        }));
      /** Requests since `mark` by client kind: non-watch, watch, and lease requests apart. */
      const requestsSince = (mark: number) => {
        const c = { controller: 0, nodes: 0, watches: 0, leases: 0, byPath: new Map<string, number>() };
        for (const r of server.requests.slice(mark)) {
          if (r.user === 'bench' || r.user === '') continue;
          if (r.watch) c.watches++;
          else if (r.path.includes('/leases/')) c.leases++;
          else if (r.user === 'controller') c.controller++;
          else c.nodes++;
          if (!r.watch) {
            const path = r.path.replace(/\/(bpf[a-z]+|nodes|leases)\/[^/]+/, '/$1/NAME');
            const what = `${r.user === 'controller' ? 'controller' : 'node'} ${r.method} ${path}`;
            c.byPath.set(what, (c.byPath.get(what) ?? 0) + 1);
          }
        }
        return c;
      };
      const showRequests = (c: ReturnType<typeof requestsSince>): void => {
        for (const [k, v] of [...c.byPath].sort((a, b) => b[1] - a[1]).slice(0, 8)) note(`  ${v}\t${k}`);
      };

      // ---- 1. a deployment to every node ----
      let t0 = performance.now();
      await api.create(PLURAL.deployments, deployment('bench-0', 0));
      const deploy = await awaitRollout(['bench-0'], t0, 120);
      result('cluster_deploy_500_s', deploy.seconds.toFixed(2));

      // ---- 2. a rolling upgrade, maxUnavailable 10% ----
      await sleep(500);
      const cpu0 = await controller.stats();
      let mark = server.requests.length;
      t0 = performance.now();
      await upgrade('bench-0', 1);
      const rollout = await awaitRollout(['bench-0'], t0, 120);
      const cpu1 = await controller.stats();
      const during = requestsSince(mark);
      result('cluster_rollout_500_s', rollout.seconds.toFixed(2));
      result(
        'cluster_rollout_ideal_s',
        ((Math.ceil(nodes / Math.max(1, Math.floor(nodes / 10))) * loadMs) / 1000).toFixed(2),
      );
      result('cluster_rollout_max_unavailable', `${rollout.maxUnavailable} (allowed ${Math.floor(nodes / 10)})`);
      result('cluster_requests_per_node', ((during.controller + during.nodes) / nodes).toFixed(2));
      result('cluster_requests_per_node_controller', (during.controller / nodes).toFixed(2));
      result('cluster_requests_per_node_agents', (during.nodes / nodes).toFixed(2));
      result('cluster_rollout_watch_requests', during.watches);
      showRequests(during);
      result('cluster_controller_cpu_s', (cpu1.cpuS - cpu0.cpuS).toFixed(2));
      result('cluster_controller_rss_mb', cpu1.rssMB.toFixed(1));

      // ---- 3. nothing changing ----
      await sleep(1000);
      mark = server.requests.length;
      await sleep(idleS * 1000);
      const idle = requestsSince(mark);
      result('cluster_idle_requests_per_min', (((idle.controller + idle.nodes) * 60) / idleS).toFixed(1));
      result('cluster_idle_lease_requests_per_min', ((idle.leases * 60) / idleS).toFixed(1));
      result('cluster_idle_watch_requests_per_min', ((idle.watches * 60) / idleS).toFixed(1));
      showRequests(idle);

      // ---- 4. 50 deployments, one changes ----
      if (deployments > 1) {
        const others = Array.from({ length: deployments - 1 }, (_, i) => `bench-${i + 1}`);
        t0 = performance.now();
        for (const [i, n] of others.entries()) await api.create(PLURAL.deployments, deployment(n, 100 + i));
        const all = await awaitRollout(['bench-0', ...others], t0, 900);
        result(`cluster_deploy_${deployments}x${nodes}_s`, all.seconds.toFixed(2));
        await sleep(2000);
        const changed = others[Math.floor(others.length / 2)]!;
        const [c0, f0] = await Promise.all([controller.stats(), fleet.stats()]);
        mark = server.requests.length;
        t0 = performance.now();
        await upgrade(changed, 1);
        const one = await awaitRollout([changed], t0, 120);
        const [c1, f1] = await Promise.all([controller.stats(), fleet.stats()]);
        const req = requestsSince(mark);
        const diff = (a: Record<string, number>, b: Record<string, number>, key: (k: string) => boolean) =>
          Object.entries(b)
            .filter(([k]) => key(k))
            .reduce((s, [k, v]) => s + v - (a[k] ?? 0), 0);
        const mine = (k: string) => k === changed;
        const notMine = (k: string) => k !== changed;
        result('cluster_one_of_50_rollout_s', `${one.seconds.toFixed(2)} (alone: ${rollout.seconds.toFixed(2)})`);
        result(
          'cluster_one_of_50_requests_per_node',
          `${((req.controller + req.nodes) / nodes).toFixed(2)} (alone: ${((during.controller + during.nodes) / nodes).toFixed(2)})`,
        );
        result(
          'cluster_one_of_50_controller_reconciles',
          `changed ${diff(c0.reconciles, c1.reconciles, mine)}, the other ${others.length}: ${diff(c0.reconciles, c1.reconciles, notMine)}`,
        );
        result(
          'cluster_one_of_50_node_reconciles',
          `changed ${diff(f0.reconciles, f1.reconciles, mine)}, the other ${others.length}: ${diff(f0.reconciles, f1.reconciles, notMine)} (their periodic resyncs, ~${Math.round((others.length * nodes * one.seconds * 1000) / resyncMs)} expected in ${one.seconds.toFixed(1)} s; local, no request)`,
        );
        result(
          'cluster_one_of_50_node_loads',
          `changed ${diff(f0.loads, f1.loads, mine)}, the other ${others.length}: ${diff(f0.loads, f1.loads, notMine)}`,
        );
        result('cluster_one_of_50_controller_cpu_s', (c1.cpuS - c0.cpuS).toFixed(2));
        result('cluster_controller_rss_mb_50_deployments', c1.rssMB.toFixed(1));
        showRequests(req);
      }
    } finally {
      for (const c of children) await c.stop();
      rmSync(fleetDir, { recursive: true, force: true }); // the fleet is killed: its nodes' state goes here
      await server.stop();
    }
  },
};
