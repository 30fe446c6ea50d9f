// The fake kernel side of a benchmark node: what the node reconciler calls on its agent
// (src/k8s/node/node-agent.ts), kept in memory. `run` and `upgrade` take `loadMs` (a real
// agent's open + load + attach of a small package, see bench/agent.ts) and answer the status a
// real agent would; packages count as already in the node's store (pulling is data-plane traffic
// to a registry, not API requests). Everything else of the reconciler — watches, work queue,
// status writes, finalizers — is the real code.
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentTrust } from '../../src/agent/trust.js';
import type { InstanceStatus, Revision, RunRequest, UpgradeRequest } from '../../src/agent/types.js';
import { NotFoundError } from '../../src/errors.js';
import type { NodeAgent } from '../../src/k8s/node/node-agent.js';
import { LayoutStore, type ResolvedPackage } from '../../src/package/layout-store.js';

/** A store that has every package (never touches its directory). */
class PrefilledStore extends LayoutStore {
  override async hasBlob(): Promise<boolean> {
    return true;
  }
  override async resolve(): Promise<ResolvedPackage> {
    return {} as ResolvedPackage;
  }
}

interface FakeInstance {
  status: InstanceStatus;
  revisions: Revision[];
}

let nextId = 1;

export class FakeAgent implements NodeAgent {
  readonly store = new PrefilledStore('/nonexistent');
  readonly logs: NodeAgent['logs'] = {
    read: () => [],
    followBatches: async function* () {},
  };
  /** loads (run + upgrade) per instance name */
  readonly loads = new Map<string, number>();
  readonly #instances = new Map<string, FakeInstance>();

  constructor(readonly opts: { loadMs: number }) {}

  async start(): Promise<void> {}
  async close(): Promise<void> {}
  trust: AgentTrust | undefined;
  setTrust(trust: AgentTrust | undefined): void {
    this.trust = trust;
  }

  list(): InstanceStatus[] {
    return [...this.#instances.values()].map((i) => i.status);
  }

  inspect(name: string): InstanceStatus {
    return this.get(name).status;
  }

  history(name: string): Revision[] {
    return this.get(name).revisions;
  }

  async run(req: RunRequest): Promise<InstanceStatus> {
    const name = req.name!;
    await this.load(name);
    const i: FakeInstance = { status: this.status(name, req, 1), revisions: [this.revision(req, 1, 'run')] };
    this.#instances.set(name, i);
    return i.status;
  }

  async upgrade(name: string, req: UpgradeRequest): Promise<InstanceStatus> {
    const i = this.get(name);
    await this.load(name);
    const rev = i.status.revision + 1;
    i.revisions.push(this.revision(req, rev, 'upgrade'));
    i.status = this.status(name, req, rev);
    return i.status;
  }

  async stop(name: string): Promise<InstanceStatus> {
    const i = this.get(name);
    i.status = { ...i.status, phase: 'stopped', desired: 'stopped' };
    return i.status;
  }

  /** The fake kernel side's features: what a node reports in its BpfNode (probed once, shared by every node). */
  async doctor(): ReturnType<NodeAgent['doctor']> {
    if (!FakeAgent.#features)
      FakeAgent.#features = {
        kernel: 'fake',
        libbpf: 'fake',
        btf: true,
        jit: true,
        hooks: {},
        programTypes: {},
        mapTypes: {},
      } as unknown as Awaited<ReturnType<NodeAgent['doctor']>>;
    return FakeAgent.#features;
  }

  maps(name: string): ReturnType<NodeAgent['maps']> {
    this.get(name);
    return [];
  }

  static #features?: Awaited<ReturnType<NodeAgent['doctor']>>;

  async startInstance(name: string): Promise<InstanceStatus> {
    const i = this.get(name);
    i.status = { ...i.status, phase: 'running', desired: 'running' };
    return i.status;
  }

  async remove(name: string): Promise<void> {
    this.get(name);
    this.#instances.delete(name);
  }

  private get(name: string): FakeInstance {
    const i = this.#instances.get(name);
    if (!i) throw new NotFoundError(`instance ${name} not found`);
    return i;
  }

  private async load(name: string): Promise<void> {
    this.loads.set(name, (this.loads.get(name) ?? 0) + 1);
    if (this.opts.loadMs > 0) await sleep(this.opts.loadMs);
  }

  private revision(req: UpgradeRequest, revision: number, cause: Revision['cause']): Revision {
    return {
      revision,
      image: req.image,
      digest: digestOf(req.image),
      config: req.config ?? {},
      attach: req.attach ?? {},
      createdAt: new Date().toISOString(),
      cause,
    };
  }

  private status(name: string, req: UpgradeRequest, revision: number): InstanceStatus {
    const id = nextId++;
    return {
      name,
      image: req.image,
      digest: digestOf(req.image),
      package: { name: req.image.replace(/@.*$/, ''), version: '' },
      revision,
      desired: 'running',
      phase: 'running',
      createdAt: new Date().toISOString(),
      programs: [{ name: 'handle', type: 'tracepoint', attach: 'syscalls/sys_enter_openat', progId: id, linkId: id }],
      maps: [{ name: 'events', type: 'ringbuf', mapId: id }],
      config: req.config ?? {},
      events: { received: 0, lost: 0 },
    };
  }
}

function digestOf(image: string): string {
  return /@(sha256:[a-f0-9]{64})$/.exec(image)?.[1] ?? '';
}
