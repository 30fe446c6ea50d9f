// A test "cluster" on this machine: the test API server, the kbpf CRDs from deploy/crds applied
// through @kubernetes/client-node, Node objects, a real docker-registry on loopback with the
// example packages pushed to it, and real controller and node-agent processes. Each "node" is an
// agent process inside its own cgroup subtree, with its own state dir and bpffs dir. Everything
// is torn down at the end (processes, cgroups, pins, temp dirs), also when a test fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, readdirSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { TestApiServer } from './apiserver/server.js';
import { connect, KbpfApi, type Kube } from '../../src/k8s/kube.js';
import { PLURAL, type BpfDeployment, type BpfNodeInstance } from '../../src/k8s/api.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { RegistryClient } from '../../src/package/registry-client.js';
import { buildPackage } from '../../src/build/builder.js';
import { ensureBpffs } from '../../src/bpf/mounts.js';
import { startRegistry, type RunningRegistry } from '../package/helpers.js';
import { CGROUP2_ROOT, removeCgroup, uniqueName } from '../helpers/kernel.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DIST = join(ROOT, 'dist');

export function loadYaml(path: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJSON()).filter(Boolean) as Record<string, unknown>[];
}

export function crdFiles(): string[] {
  const dir = join(ROOT, 'deploy', 'crds');
  return readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(dir, f));
}

export interface TestNode {
  name: string;
  stateDir: string;
  bpffsDir: string;
  cgroup: string;
  proc?: ChildProcess;
  log: string[];
}

const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
});

export class TestCluster {
  server = new TestApiServer({ bookmarkIntervalMs: 500 });
  dir = mkdtempSync(join(tmpdir(), 'kbpf-k8s-'));
  kubeconfig = '';
  kube!: Kube;
  api!: KbpfApi;
  registry?: RunningRegistry;
  nodes = new Map<string, TestNode>();
  controllers: { proc: ChildProcess; log: string[] }[] = [];
  readonly id = uniqueName('kbpf-k8s');
  #cleanups: (() => unknown)[] = [];

  async start(): Promise<void> {
    await this.server.start();
    this.kubeconfig = this.server.writeKubeconfig(join(this.dir, 'kubeconfig'));
    this.kube = connect(this.kubeconfig);
    this.api = new KbpfApi(this.kube);
    const ext = this.kube.kc.makeApiClient(k8s.ApiextensionsV1Api);
    for (const f of crdFiles()) for (const doc of k8s.loadAllYaml(readFileSync(f, 'utf8'))) await ext.createCustomResourceDefinition({ body: doc as k8s.V1CustomResourceDefinition });
    await this.kube.core.createNamespace({ body: { metadata: { name: 'kbpf-system' } } });
  }

  /** Builds example packages and pushes them to a loopback docker-registry; answers name -> remote reference. */
  async publish(pkgs: { dir: string; tag: string }[]): Promise<Record<string, string>> {
    this.registry ??= await startRegistry();
    const store = new LayoutStore(join(this.dir, 'build-store'));
    const client = new RegistryClient({ credentials: {} });
    const out: Record<string, string> = {};
    for (const p of pkgs) {
      const r = await buildPackage(p.dir, { tag: p.tag, store, cacheDir: join(ROOT, 'build') });
      const remote = `${this.registry.host}/kbpf/${p.tag}`;
      await client.push(store, r.stored.reference, remote);
      out[p.tag] = remote;
    }
    return out;
  }

  async addNode(name: string, labels: Record<string, string> = {}): Promise<TestNode> {
    ensureBpffs();
    const cgroup = join(CGROUP2_ROOT, `${this.id}-${name}`);
    mkdirSync(cgroup);
    const node: TestNode = { name, stateDir: join(this.dir, `node-${name}`), bpffsDir: `/sys/fs/bpf/${this.id}-${name}`, cgroup, log: [] };
    this.nodes.set(name, node);
    await this.kube.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } } });
    return node;
  }

  /** Starts (or restarts) the node's agent process inside the node's cgroup. */
  startAgent(name: string): TestNode {
    const node = this.nodes.get(name)!;
    const agentCgroup = join(node.cgroup, 'kbpf-agent');
    mkdirSync(agentCgroup, { recursive: true });
    const args = [join(DIST, 'src/k8s/node/main.js'), '--node', name, '--kubeconfig', this.kubeconfig, '--state-dir', node.stateDir, '--bpffs-dir', node.bpffsDir, '--cgroup-root', node.cgroup, '--resync-ms', '3000'];
    const proc = spawn('sh', ['-c', `echo $$ > '${agentCgroup}/cgroup.procs' && exec "$0" "$@"`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    proc.on('exit', () => procs.delete(proc));
    const push = (d: Buffer) => node.log.push(...d.toString().split('\n').filter(Boolean));
    proc.stdout!.on('data', push);
    proc.stderr!.on('data', push);
    node.proc = proc;
    return node;
  }

  async killAgent(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.nodes.get(name)?.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }

  startController(identity = `controller-${this.controllers.length}`): { proc: ChildProcess; log: string[] } {
    const log: string[] = [];
    const proc = spawn(process.execPath, [join(DIST, 'src/k8s/controller/main.js'), '--kubeconfig', this.kubeconfig, '--identity', identity, '--resync-ms', '2000', '--lease-seconds', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    proc.on('exit', () => procs.delete(proc));
    const push = (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean));
    proc.stdout!.on('data', push);
    proc.stderr!.on('data', push);
    const c = { proc, log };
    this.controllers.push(c);
    return c;
  }

  onCleanup(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }

  /** Waits until `fn` answers something truthy; the error names what was awaited and shows the logs. */
  async until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const v = await fn();
        if (v) return v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) {
        const logs = [...this.nodes.values()].map((n) => `--- ${n.name}:\n${n.log.slice(-15).join('\n')}`).join('\n');
        const clog = this.controllers.map((c) => c.log.slice(-20).join('\n')).join('\n');
        throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n--- controller:\n${clog}\n${logs}`);
      }
      await sleep(150);
    }
  }

  async instances(deployment: string): Promise<BpfNodeInstance[]> {
    return (await this.api.list(PLURAL.nodeInstances, { fieldSelector: `spec.deployment=${deployment}` })).items;
  }

  async deployment(name: string): Promise<BpfDeployment | undefined> {
    return this.api.get(PLURAL.deployments, name);
  }

  async stop(): Promise<void> {
    for (const fn of this.#cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
    for (const c of this.controllers) if (c.proc.exitCode === null && c.proc.signalCode === null) {
      const exited = new Promise((r) => c.proc.once('exit', r));
      c.proc.kill('SIGKILL');
      await exited;
    }
    for (const n of this.nodes.keys()) await this.killAgent(n);
    await this.server.stop().catch(() => undefined);
    await this.registry?.stop().catch(() => undefined);
    // whatever a failed test left pinned: detach by unpinning (links and programs go with the pins)
    for (const n of this.nodes.values()) {
      rmSync(n.bpffsDir, { recursive: true, force: true });
      if (existsSync(n.cgroup)) {
        for (const sub of readdirSync(n.cgroup, { withFileTypes: true })) if (sub.isDirectory()) await removeCgroup(join(n.cgroup, sub.name)).catch(() => undefined);
        await removeCgroup(n.cgroup).catch(() => undefined);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
