// The node agent in a cluster: the same `Agent` as standalone, with desired state taken from the
// BpfNodeInstances of its own node instead of the local API. For each instance it pulls the
// package by digest into the agent's store (cached: a digest already stored is not pulled again),
// runs or upgrades it through the agent's one code path, and writes that node's status. An
// instance being deleted is removed from the kernel before its finalizer is released.
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { Agent } from '../../agent/agent.js';
import type { AgentPaths } from '../../agent/paths.js';
import { type Credentials, credentialsFromDockerConfig } from '../../package/auth.js';
import { RegistryClient } from '../../package/registry-client.js';
import {
  API_VERSION,
  type Attach,
  type BpfNodeInstance,
  type BpfNodeInstanceStatus,
  canonicalJson,
  FINALIZER_NODE_CLEANUP,
  GROUP,
  type NodeLogsEndpoint,
  type NodePhase,
  PLURAL,
  VERSION,
} from '../api.js';
import { coalesced, errorText, KbpfApi, type Kube, Reflector, statusCode } from '../kube.js';
import { NodeLogsServer } from './logs-server.js';

export interface NodeAgentOptions {
  nodeName: string;
  kube: Kube;
  paths: AgentPaths;
  /** namespace of pull secrets (the agent's own) */
  namespace: string;
  log?: (msg: string) => void;
  /** how often everything is reconciled even without a change (ms) */
  resyncMs?: number;
  /**
   * This node's cgroup2 root (in a pod: the host's, mounted). A relative `attach.cgroup` of a
   * deployment is resolved against it, and cgroup programs attach here when none is given.
   */
  cgroupRoot?: string;
  /**
   * Serve the instances' event logs over HTTP on this node address (kubectl bpf logs reads
   * them; the URL is advertised in each instance's status.logs). Off when not given.
   */
  logs?: {
    host: string;
    port: number;
    /** host to advertise (default: host) */
    advertiseHost?: string;
    /** NAME or NAMESPACE/NAME of a Secret whose data.token requests must carry as a bearer token */
    tokenSecret?: string;
  };
  /** registries (host[:port]) reached over plain HTTP (default: only loopback ones) */
  insecureRegistries?: string[];
}

export class NodeAgent {
  readonly agent: Agent;
  readonly api: KbpfApi;
  #reflector!: Reflector<BpfNodeInstance>;
  #kick!: () => void;
  #timer?: NodeJS.Timeout;
  #stopped = false;
  /** generation that failed, per instance: not retried until the spec changes or a resync */
  readonly #failed = new Map<string, number>();
  readonly #log: (msg: string) => void;
  #logsServer?: NodeLogsServer;
  #logsEndpoint?: NodeLogsEndpoint;

  constructor(readonly opts: NodeAgentOptions) {
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf node ${opts.nodeName}: ${m}\n`));
    this.agent = new Agent(opts.paths, { log: this.#log });
    this.api = new KbpfApi(opts.kube);
  }

  async start(): Promise<void> {
    await this.agent.start();
    // a log endpoint that cannot start (port taken, token Secret missing) serves nothing, and
    // says so; the agent's programs are more important than its logs endpoint
    if (this.opts.logs)
      await this.startLogs(this.opts.logs).catch((e) => this.#log(`not serving event logs: ${errorText(e)}`));
    this.#kick = coalesced(
      () => this.reconcileAll(),
      (e) => this.#log(`reconcile: ${errorText(e)}`),
    );
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    this.#reflector = new Reflector<BpfNodeInstance>(this.opts.kube, {
      path: `/apis/${GROUP}/${VERSION}/${PLURAL.nodeInstances}`,
      list: () => this.api.list(PLURAL.nodeInstances, { fieldSelector }),
      fieldSelector,
      onChange: () => this.#kick(),
      log: this.#log,
    });
    await this.#reflector.start();
    this.#timer = setInterval(() => {
      this.#failed.clear();
      this.#kick();
    }, this.opts.resyncMs ?? 30_000);
    this.#timer.unref();
  }

  /** Stops watching; programs keep running (a restarted agent adopts them). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#reflector?.stop();
    await this.#logsServer?.close();
    await this.agent.close();
  }

  /** Where this agent serves logs (undefined when it does not). */
  get logsEndpoint(): NodeLogsEndpoint | undefined {
    return this.#logsEndpoint;
  }

  private async startLogs(o: NonNullable<NodeAgentOptions['logs']>): Promise<void> {
    let token: string | undefined;
    let tokenSecret: string | undefined;
    if (o.tokenSecret) {
      const [namespace, name] = o.tokenSecret.includes('/')
        ? (o.tokenSecret.split('/', 2) as [string, string])
        : [this.opts.namespace, o.tokenSecret];
      let secret: V1Secret;
      try {
        secret = await this.opts.kube.core.readNamespacedSecret({ name, namespace });
      } catch (e) {
        throw new Error(
          `log endpoint token Secret ${namespace}/${name}: ${statusCode(e) === 404 ? 'not found' : errorText(e)}`,
        );
      }
      const raw = secret.data?.token;
      if (!raw) throw new Error(`log endpoint token Secret ${namespace}/${name} has no data.token`);
      token = Buffer.from(raw, 'base64').toString('utf8').trim();
      tokenSecret = `${namespace}/${name}`;
    }
    const agent = this.agent;
    this.#logsServer = new NodeLogsServer({
      host: o.host,
      port: o.port,
      ...(o.advertiseHost ? { advertiseHost: o.advertiseHost } : {}),
      ...(token ? { token } : {}),
      source: {
        has: (n) => agent.list().some((s) => s.name === n),
        read: (n, opts) => agent.logs.read(n, opts),
        followBatches: (n, opts, signal) => agent.logs.followBatches(n, opts, signal),
      },
    });
    const url = await this.#logsServer.start();
    this.#logsEndpoint = { url, ...(tokenSecret ? { tokenSecret } : {}) };
    this.#log(
      `serving event logs at ${url}/v1/logs/DEPLOYMENT${tokenSecret ? ` (bearer token from Secret ${tokenSecret})` : ''}`,
    );
  }

  private async reconcileAll(): Promise<void> {
    if (this.#stopped) return;
    const wanted = new Map<string, BpfNodeInstance>();
    for (const ni of this.#reflector.cache.values()) wanted.set(ni.spec.deployment, ni);
    // instances of deployments this node should no longer run (their object is gone)
    for (const st of this.agent.list()) {
      if (!wanted.has(st.name)) {
        this.#log(`${st.name}: no BpfNodeInstance for this node; removing it`);
        await this.agent.remove(st.name, { force: true }).catch((e) => this.#log(`remove ${st.name}: ${errorText(e)}`));
      }
    }
    for (const ni of wanted.values()) {
      if (this.#stopped) return;
      try {
        await this.reconcile(ni);
      } catch (e) {
        this.#log(`${ni.metadata.name}: ${errorText(e)}`);
      }
    }
  }

  private async reconcile(ni: BpfNodeInstance): Promise<void> {
    const name = ni.spec.deployment;
    const local = this.agent.list().find((s) => s.name === name);
    if (ni.metadata.deletionTimestamp) {
      await this.writeStatus(ni, { phase: 'Deleting', message: 'removing the instance from this node' });
      if (local) await this.agent.remove(name, { force: true });
      await this.api.update(PLURAL.nodeInstances, ni.metadata.name, (o) => {
        if (!o.metadata.finalizers?.includes(FINALIZER_NODE_CLEANUP)) return undefined;
        o.metadata.finalizers = o.metadata.finalizers.filter((f) => f !== FINALIZER_NODE_CLEANUP);
        return o;
      });
      this.#failed.delete(name);
      return;
    }
    const gen = ni.metadata.generation ?? 0;
    if (this.#failed.get(name) === gen) return;
    const config = ni.spec.config ?? {};
    const attach = this.localAttach(ni);
    if (local && local.phase === 'running' && this.matches(name, ni)) {
      await this.writeStatus(ni, this.runningStatus(ni));
      return;
    }
    try {
      await this.writeStatus(ni, {
        phase: 'Loading',
        message: local ? `moving to revision ${ni.spec.revision}` : `loading revision ${ni.spec.revision}`,
      });
      await this.pull(ni);
      const image = this.localRef(ni);
      if (!local) {
        await this.agent.run({ image, name, config, attach });
      } else if (!this.matches(name, ni)) {
        await this.agent.upgrade(name, { image, config, attach });
      } else {
        await this.agent.startInstance(name);
      }
      this.#failed.delete(name);
      await this.writeStatus(ni, this.runningStatus(ni));
    } catch (e) {
      this.#failed.set(name, gen);
      const msg = errorText(e);
      this.#log(`${name}: revision ${ni.spec.revision} failed: ${msg}`);
      const st: Partial<BpfNodeInstanceStatus> = { phase: 'Failed', message: msg.slice(0, 32_000) };
      // what runs is still reported (a failed upgrade leaves the old revision running)
      const cur = this.agent.list().find((s) => s.name === name);
      if (cur) Object.assign(st, this.programsOf(name));
      await this.writeStatus(ni, st);
    }
  }

  /** Does the local instance run exactly the package, config and attach points of the spec? */
  private matches(name: string, ni: BpfNodeInstance): boolean {
    const st = this.agent.inspect(name);
    const rev = this.agent.history(name).find((r) => r.revision === st.revision);
    return (
      st.digest === ni.spec.digest &&
      canonicalJson(st.config ?? {}) === canonicalJson(ni.spec.config ?? {}) &&
      canonicalJson(rev?.attach ?? {}) === canonicalJson(this.localAttach(ni))
    );
  }

  /** The deployment's attach overrides with cgroup paths resolved on this node. */
  private localAttach(ni: BpfNodeInstance): Attach {
    const a: Attach = structuredClone(ni.spec.attach ?? {});
    const root = this.opts.cgroupRoot;
    if (!root) return a;
    const resolve = (p: string): string => (p.startsWith('/') ? p : join(root, p));
    a.cgroup = a.cgroup !== undefined ? resolve(a.cgroup) : root;
    return a;
  }

  private programsOf(name: string): Partial<BpfNodeInstanceStatus> {
    const st = this.agent.inspect(name);
    return {
      programs: st.programs.map((p) => ({
        name: p.name,
        type: p.type,
        attach: p.attach,
        ...(p.progId !== undefined ? { progId: p.progId } : {}),
        ...(p.linkId !== undefined ? { linkId: p.linkId } : {}),
      })),
      mapIds: st.maps.map((m) => m.mapId).filter((id): id is number => id !== undefined),
      digest: st.digest,
    };
  }

  private runningStatus(ni: BpfNodeInstance): Partial<BpfNodeInstanceStatus> {
    const st = this.agent.inspect(ni.spec.deployment);
    return {
      phase: 'Running' as NodePhase,
      revision: ni.spec.revision,
      ...this.programsOf(ni.spec.deployment),
      ...(st.message ? { message: st.message } : { message: undefined }),
    };
  }

  /**
   * The name the package has in this node's store: the repository path without the registry
   * host, by digest (kbpf/tcpconnect@sha256:…). The agent keeps references in its revision
   * history and cuts a name at the first ':' when it resolves one after a restart, so a
   * registry host:port must not be part of it.
   */
  private localRef(ni: BpfNodeInstance): string {
    const withoutDigest = ni.spec.image.replace(/@sha256:[a-f0-9]{64}$/, '');
    const parts = withoutDigest.split('/');
    const first = parts[0]!;
    if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) parts.shift();
    return `${parts.join('/').replace(/:[^/:]*$/, '')}@${ni.spec.digest}`;
  }

  private async pull(ni: BpfNodeInstance): Promise<void> {
    if (await this.agent.store.hasBlob(ni.spec.digest).catch(() => false)) {
      try {
        await this.agent.store.resolve(this.localRef(ni));
        return;
      } catch {
        /* blob without the reference: pull (only missing blobs are fetched) */
      }
    }
    const credentials = ni.spec.pullSecret ? await this.secretCredentials(ni.spec.pullSecret) : {};
    const client = new RegistryClient({
      credentials: async (registry) => credentials[registry],
      ...(this.opts.insecureRegistries?.length ? { insecure: this.opts.insecureRegistries } : {}),
    });
    try {
      const r = await client.pull(ni.spec.image, this.agent.store, { tag: this.localRef(ni) });
      if (r.digest !== ni.spec.digest) throw new Error(`the registry answered ${r.digest}, not ${ni.spec.digest}`);
    } catch (e) {
      throw new Error(`pull ${ni.spec.image}: ${errorText(e)}`);
    }
  }

  /** Registry credentials from a kubernetes.io/dockerconfigjson Secret in the agent's namespace. */
  private async secretCredentials(name: string): Promise<Record<string, Credentials>> {
    let secret: V1Secret;
    try {
      secret = await this.opts.kube.core.readNamespacedSecret({ name, namespace: this.opts.namespace });
    } catch (e) {
      throw new Error(
        `pull secret ${this.opts.namespace}/${name}: ${statusCode(e) === 404 ? 'not found' : errorText(e)}`,
      );
    }
    const raw = secret.data?.['.dockerconfigjson'];
    if (!raw) throw new Error(`pull secret ${this.opts.namespace}/${name} has no .dockerconfigjson`);
    return credentialsFromDockerConfig(
      Buffer.from(raw, 'base64').toString('utf8'),
      `pull secret ${this.opts.namespace}/${name}`,
    );
  }

  /** Writes status if it differs from what the object has (retrying on 409 Conflict). */
  private async writeStatus(ni: BpfNodeInstance, st: Partial<BpfNodeInstanceStatus>): Promise<void> {
    await this.api.update(
      PLURAL.nodeInstances,
      ni.metadata.name,
      (o) => {
        const next: BpfNodeInstanceStatus = {
          ...(o.status ?? {}),
          ...st,
          observedGeneration: o.metadata.generation ?? 0,
          logs: this.#logsEndpoint,
        };
        for (const k of Object.keys(next) as (keyof BpfNodeInstanceStatus)[]) if (next[k] === undefined) delete next[k];
        if (next.phase !== 'Running' && next.phase !== 'Failed' && st.revision === undefined) {
          /* keep the revision it last ran */
        }
        const { updatedAt: _a, ...prev } = o.status ?? {};
        const { updatedAt: _b, ...cmp } = next;
        if (canonicalJson(prev) === canonicalJson(cmp)) return undefined;
        next.updatedAt = new Date().toISOString();
        o.status = next;
        o.apiVersion = API_VERSION;
        return o;
      },
      { status: true },
    );
  }
}
