// A test "cluster" on this machine: the test API server, the kbpf CRDs from deploy/crds applied
// through @kubernetes/client-node, Node objects, a real docker-registry on loopback with the
// example packages pushed to it, and real controller and node-agent processes. Each "node" is an
// agent process inside its own cgroup subtree, with its own state dir and bpffs dir, and (with
// `netns: true`) inside its own network namespace:
//
//   root namespace: bridge kbbr… 10.X.Y.1/24 ── the API server listens there, and a TCP
//                   forwarder to the loopback registry (so image refs are 10.X.Y.1:PORT/…)
//     └─ veth ── node-a's namespace: eth0 10.X.Y.10/24, default via 10.X.Y.1
//     └─ veth ── node-b's namespace: eth0 10.X.Y.11/24 …
//
// The agent is started with nsenter --net (only the network namespace changes: it keeps the
// host's /sys/fs/bpf and cgroup2 mounts, which `ip netns exec` would remount) and serves its
// event logs on its namespace address. Traffic only ever goes to loopback, the bridge address
// or the namespaces' addresses. Everything is torn down at the end (processes, namespaces, veths,
// the bridge, cgroups, pins, temp dirs), also when a test fails.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer as createTcpServer,
  type Socket,
  type Server as TcpServer,
  connect as tcpConnect,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { ensureBpffs } from '../../src/bpf/mounts.js';
import { buildPackage } from '../../src/compile/builder.js';
import { type BpfDeployment, type BpfNodeInstance, LOGS_READER_ACCOUNT, PLURAL } from '../../src/k8s/api.js';
import { connect, KbpfApi, type Kube } from '../../src/k8s/kube.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { RegistryClient } from '../../src/package/registry-client.js';
import { TestApiServer } from '../../testbed/apiserver/server.js';
import { CGROUP2_ROOT, removeCgroup, uniqueName } from '../../testbed/kernel.js';
import { makeNetns, netnsPath, run, testSubnet } from '../../testbed/netns.js';
import { type RunningRegistry, startRegistry } from '../package/helpers.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DIST = join(ROOT, 'dist');

export function loadYaml(path: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJSON())
    .filter(Boolean) as Record<string, unknown>[];
}

export function crdFiles(): string[] {
  const dir = join(ROOT, 'deploy', 'crds');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

export interface TestNode {
  name: string;
  stateDir: string;
  bpffsDir: string;
  cgroup: string;
  proc?: ChildProcess;
  log: string[];
  /** the node's network namespace and its address there (with netns: true) */
  netns?: string;
  addr?: string;
  workloads: ChildProcess[];
}

export interface TestClusterOptions {
  /** each node in its own network namespace (needs ip, nsenter; root) */
  netns?: boolean;
  /** the registry requires basic auth: an htpasswd line and the user it names (publish pushes as it) */
  registryAuth?: { htpasswd: string; username: string; password: string };
}

async function ipx(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** A TCP forwarder listening on host:0 to 127.0.0.1:port (closed with everything it carries). */
async function forwarder(
  host: string,
  port: number,
): Promise<{ server: TcpServer; port: number; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  const server = createTcpServer((down) => {
    const up = tcpConnect(port, '127.0.0.1');
    for (const s of [down, up]) {
      socks.add(s);
      s.on('close', () => socks.delete(s));
      s.on('error', () => {
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of procs) p.kill('SIGKILL');
});

export class TestCluster {
  server!: TestApiServer;
  dir = mkdtempSync(join(tmpdir(), 'kbpf-k8s-'));
  kubeconfig = '';
  kube!: Kube;
  api!: KbpfApi;
  registry?: RunningRegistry;
  nodes = new Map<string, TestNode>();
  controllers: { proc: ChildProcess; log: string[] }[] = [];
  readonly id = uniqueName('kbpf-k8s');
  #cleanups: (() => unknown)[] = [];
  /** network teardown, run after every process is gone */
  #netCleanups: (() => unknown)[] = [];
  /** the bridge's /24 prefix (10.X.Y) and its address 10.X.Y.1, with netns */
  subnet?: string;
  gateway?: string;
  /** registry host:port as the nodes reach it (the bridge address with netns, else loopback) */
  registryHost?: string;
  #nodeIndex = 0;

  constructor(readonly opts: TestClusterOptions = {}) {}

  /** The bridge all node namespaces hang off, with 10.X.Y.1/24 in the root namespace. */
  private async makeBridge(): Promise<void> {
    const taken = (await run('ip', ['-4', '-j', 'route', 'show'])).stdout;
    let subnet = testSubnet();
    for (let i = 0; i < 20 && taken.includes(`"${subnet}.`); i++) subnet = testSubnet();
    const bridge = `kbbr${process.pid.toString(36)}${randomInt(0, 36 ** 3).toString(36)}`.slice(0, 15);
    await ipx(['link', 'add', bridge, 'type', 'bridge']);
    this.#netCleanups.push(() => run('ip', ['link', 'del', bridge]));
    await ipx(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await ipx(['link', 'set', bridge, 'up']);
    this.subnet = subnet;
    this.gateway = `${subnet}.1`;
    this.#bridge = bridge;
  }
  #bridge?: string;

  async start(): Promise<void> {
    if (this.opts.netns) await this.makeBridge();
    this.server = new TestApiServer({ bookmarkIntervalMs: 500, ...(this.gateway ? { host: this.gateway } : {}) });
    await this.server.start();
    this.kubeconfig = this.server.writeKubeconfig(join(this.dir, 'kubeconfig'));
    this.kube = connect(this.kubeconfig);
    this.api = new KbpfApi(this.kube);
    const ext = this.kube.kc.makeApiClient(k8s.ApiextensionsV1Api);
    for (const f of crdFiles())
      for (const doc of k8s.loadAllYaml(readFileSync(f, 'utf8')))
        await ext.createCustomResourceDefinition({ body: doc as k8s.V1CustomResourceDefinition });
    await this.kube.core.createNamespace({ body: { metadata: { name: 'kbpf-system' } } });
    // as the chart makes it: the account whose per-node tokens read the nodes' log endpoints
    await this.kube.core.createNamespacedServiceAccount({
      namespace: 'kbpf-system',
      body: { metadata: { name: LOGS_READER_ACCOUNT, namespace: 'kbpf-system' } },
    });
  }

  /** Builds example packages and pushes them to a loopback docker-registry; answers name -> remote reference. */
  async publish(pkgs: { dir: string; tag: string }[]): Promise<Record<string, string>> {
    if (!this.registry) {
      const auth = this.opts.registryAuth;
      this.registry = await startRegistry(auth ? { htpasswd: auth.htpasswd } : {});
      this.registryHost = this.registry.host;
      if (this.gateway) {
        const fwd = await forwarder(this.gateway, Number(this.registry.host.split(':').pop()));
        this.#netCleanups.unshift(() => fwd.close());
        this.registryHost = `${this.gateway}:${fwd.port}`;
      }
    }
    const store = new LayoutStore(join(this.dir, 'build-store'));
    const auth = this.opts.registryAuth;
    const client = new RegistryClient({
      credentials: auth ? { username: auth.username, password: auth.password } : {},
    });
    const out: Record<string, string> = {};
    for (const p of pkgs) {
      const r = await buildPackage(p.dir, { tag: p.tag, store, cacheDir: join(ROOT, 'build') });
      await client.push(store, r.stored.reference, `${this.registry.host}/kbpf/${p.tag}`);
      out[p.tag] = `${this.registryHost}/kbpf/${p.tag}`;
    }
    return out;
  }

  async addNode(name: string, labels: Record<string, string> = {}): Promise<TestNode> {
    ensureBpffs();
    const cgroup = join(CGROUP2_ROOT, `${this.id}-${name}`);
    mkdirSync(cgroup);
    const node: TestNode = {
      name,
      stateDir: join(this.dir, `node-${name}`),
      bpffsDir: `/sys/fs/bpf/${this.id}-${name}`,
      cgroup,
      log: [],
      workloads: [],
    };
    this.nodes.set(name, node);
    if (this.opts.netns) await this.makeNodeNetwork(node);
    await this.kube.core.createNode({
      // as a kubelet registers it: its addresses (kubectl bpf logs reads an endpoint only on one of them)
      body: {
        metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
        status: {
          addresses: [
            { type: 'InternalIP', address: node.addr ?? '127.0.0.1' },
            { type: 'Hostname', address: name },
          ],
        },
      },
    });
    return node;
  }

  /** The node's network namespace, with a veth to the bridge: eth0 10.X.Y.(10+i)/24, default via the bridge. */
  private async makeNodeNetwork(node: TestNode): Promise<void> {
    const ns = await makeNetns({ after: (fn) => void this.#netCleanups.push(fn) }, 'kbpf');
    const i = this.#nodeIndex++;
    const host = `kbv${process.pid.toString(36)}${randomInt(0, 36 ** 3).toString(36)}${i}`.slice(0, 15);
    await ipx(['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    this.#netCleanups.push(() => run('ip', ['link', 'del', host]));
    await ipx(['link', 'set', host, 'master', this.#bridge!]);
    await ipx(['link', 'set', host, 'up']);
    const addr = `${this.subnet}.${10 + i}`;
    await ipx(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await ipx(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ipx(['-n', ns, 'route', 'add', 'default', 'via', this.gateway!]);
    node.netns = ns;
    node.addr = addr;
  }

  /** argv that runs a command in the node's cgroup `cg` (and network namespace, if it has one). */
  private inNode(node: TestNode, cg: string, argv: string[]): [string, string[]] {
    mkdirSync(cg, { recursive: true });
    const sh = ['sh', '-c', `echo $$ > '${cg}/cgroup.procs' && exec "$0" "$@"`, ...argv];
    return node.netns ? ['nsenter', [`--net=${netnsPath(node.netns)}`, '--', ...sh]] : [sh[0]!, sh.slice(1)];
  }

  /**
   * A workload process on the node: `bash -c SCRIPT` in the node's cgroup `workload` (and its
   * network namespace). Its stdout lines are collected; it is killed at stop().
   */
  startWorkload(name: string, script: string): { proc: ChildProcess; out: string[] } {
    const node = this.nodes.get(name)!;
    const [cmd, args] = this.inNode(node, join(node.cgroup, 'workload'), ['bash', '-c', script]);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    proc.on('exit', () => procs.delete(proc));
    const out: string[] = [];
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      out.push(...lines);
    });
    proc.stderr!.on('data', (d: Buffer) => node.log.push(`workload: ${d.toString().trim()}`));
    node.workloads.push(proc);
    return { proc, out };
  }

  async stopWorkloads(name?: string): Promise<void> {
    for (const n of this.nodes.values()) {
      if (name && n.name !== name) continue;
      for (const p of n.workloads.splice(0)) {
        if (p.exitCode !== null || p.signalCode !== null) continue;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      }
    }
  }

  /** Starts (or restarts) the node's agent process inside the node's cgroup (and network namespace). */
  startAgent(name: string): TestNode {
    const node = this.nodes.get(name)!;
    const agentCgroup = join(node.cgroup, 'kbpf-agent');
    const args = [
      join(DIST, 'src/k8s/node/main.js'),
      '--node',
      name,
      '--kubeconfig',
      this.kubeconfig,
      '--state-dir',
      node.stateDir,
      '--bpffs-dir',
      node.bpffsDir,
      '--cgroup-root',
      node.cgroup,
      '--resync-ms',
      '3000',
      '--logs-address',
      `${node.addr ?? '127.0.0.1'}:0`,
      ...(this.gateway && this.registryHost ? ['--insecure-registry', this.registryHost] : []),
    ];
    const [cmd, argv] = this.inNode(node, agentCgroup, [process.execPath, ...args]);
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
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
    const proc = spawn(
      process.execPath,
      [
        join(DIST, 'src/k8s/controller/main.js'),
        '--kubeconfig',
        this.kubeconfig,
        '--identity',
        identity,
        '--resync-ms',
        '2000',
        '--lease-seconds',
        '3',
        ...(this.gateway && this.registryHost ? ['--insecure-registry', this.registryHost] : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
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
  async until<T>(
    what: string,
    fn: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs = 30_000,
  ): Promise<T> {
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
        throw new Error(
          `timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n--- controller:\n${clog}\n${logs}`,
        );
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
    for (const fn of this.#cleanups.reverse())
      await Promise.resolve()
        .then(fn)
        .catch(() => undefined);
    for (const c of this.controllers)
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        const exited = new Promise((r) => c.proc.once('exit', r));
        c.proc.kill('SIGKILL');
        await exited;
      }
    for (const n of this.nodes.keys()) await this.killAgent(n);
    await this.stopWorkloads();
    await this.server?.stop().catch(() => undefined);
    await this.registry?.stop().catch(() => undefined);
    // whatever a failed test left pinned: detach by unpinning (links and programs go with the pins)
    for (const n of this.nodes.values()) {
      rmSync(n.bpffsDir, { recursive: true, force: true });
      if (existsSync(n.cgroup)) {
        for (const sub of readdirSync(n.cgroup, { withFileTypes: true }))
          if (sub.isDirectory()) await removeCgroup(join(n.cgroup, sub.name)).catch(() => undefined);
        await removeCgroup(n.cgroup).catch(() => undefined);
      }
    }
    for (const fn of this.#netCleanups.reverse())
      await Promise.resolve()
        .then(fn)
        .catch(() => undefined);
    this.#netCleanups = [];
    rmSync(this.dir, { recursive: true, force: true });
  }
}
