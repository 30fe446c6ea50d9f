// The node reconciler: what makes a node's `Agent` (the same one as standalone kbpf) follow the
// cluster. Its desired state is the BpfNodeInstances of its own node instead of the local API:
// for each instance it pulls the package by digest into the agent's store (a digest already
// stored is not pulled again), runs or upgrades it through the agent's one code path, and writes
// that node's status. An instance being deleted is removed from the kernel before its finalizer
// is released; a local instance without an object is removed.
//
// Shape: a watcher + store of this node's instances (fieldSelector spec.nodeName), a work queue
// keyed by deployment name (= the agent's instance name), one reconcile per key with its own
// requeue after `resyncMs`. A reconcile asks the agent about its one instance (O(1) per instance),
// so a pass over N instances costs O(N) agent calls.
import { join } from 'node:path';
import { Agent } from '../../agent/agent.js';
import type { AgentPaths } from '../../agent/paths.js';
import { ensureNodeKey, nodeKeyPaths } from '../../agent/trust.js';
import type { InstanceStatus, Revision } from '../../agent/types.js';
import { CorruptedError, KbpfError, kindOf, NotFoundError, Unavailable } from '../../errors.js';
import type { Credentials } from '../../package/auth.js';
import { RegistryClient } from '../../package/registry-client.js';
import {
  API_VERSION,
  type Attach,
  type BpfNodeInstance,
  type BpfNodeInstanceStatus,
  type BpfPackage,
  canonicalJson,
  FINALIZER_NODE_CLEANUP,
  GROUP,
  LOGS_READER_ACCOUNT,
  type NodeLogsEndpoint,
  type NodePhase,
  nodeInstanceName,
  PLURAL,
  VERSION,
} from '../api.js';
import { clusterStoreName, importPackageObject, packageObjectName, parseClusterRef } from '../cluster-packages.js';
import { errorText, KbpfApi, type Kube } from '../kube.js';
import { pullCredentials, readPullSecret } from '../pull-secrets.js';
import { finalize, type Update } from '../runtime/finalizer.js';
import { type Action, WorkQueue } from '../runtime/queue.js';
import { Store } from '../runtime/store.js';
import { apiListWatch, Watcher } from '../runtime/watcher.js';
import { type ClusterTrustPolicy, TrustPolicyWatch } from '../trust-policy.js';
import { LogsAuthenticator } from './logs-auth.js';
import { NodeLogsServer } from './logs-server.js';
import type { NodeAgent } from './node-agent.js';
import { publishLogsEndpoint, reportNode } from './node-report.js';
import { selfSignedCertificate } from './serving-cert.js';

export interface NodeReconcilerOptions {
  nodeName: string;
  kube: Kube;
  paths: AgentPaths;
  /** the kbpf namespace (the agent's own: the trust policy, the log endpoint's token) */
  namespace: string;
  /**
   * namespace of pull secrets (default: `namespace`); only Secrets labelled
   * kbpf.io/pull-secret=true are read there, and only for the deployments they allow
   */
  pullSecretNamespace?: string;
  log?: (msg: string) => void;
  /** how often each instance is reconciled even without a change (ms) */
  resyncMs?: number;
  /**
   * This node's cgroup2 root (in a pod: the host's, mounted). A relative `attach.cgroup` of a
   * deployment is resolved against it, and cgroup programs attach here when none is given.
   */
  cgroupRoot?: string;
  /**
   * Serve the instances' event logs over HTTPS on this node address (kubectl bpf logs reads
   * them; the URL and the certificate are advertised in the node's BpfNode status.logs). Off
   * when not given.
   */
  logs?: {
    host: string;
    port: number;
    /** host to advertise (default: host) */
    advertiseHost?: string;
    /**
     * users whose tokens (reviewed by the API server for this node's audience) may read
     * (default: the service account kbpf-logs-reader of the agent's namespace)
     */
    readers?: string[];
  };
  /** registries (host[:port]) reached over plain HTTP (default: only loopback ones) */
  insecureRegistries?: string[];
  /** the node's agent (default: a real `Agent` on `paths`) */
  agent?: NodeAgent;
}

/** The agent's instance as the reconciler needs it: its status and the attach points of its revision. */
interface Local {
  status: InstanceStatus;
  attach: Attach;
}

export class NodeReconciler {
  readonly agent: NodeAgent;
  readonly api: KbpfApi;
  #instances = this.newStore();
  #watcher?: Watcher<BpfNodeInstance>;
  #queue?: WorkQueue<string>;
  #sweep?: NodeJS.Timeout;
  #trust?: TrustPolicyWatch;
  #stopped = false;
  /** a generation that failed, per instance: not retried until the spec changes or `retryAt` */
  readonly #failed = new Map<string, { generation: number; retryAt: number }>();
  /** the last error logged per instance, so a failure that repeats is logged once */
  readonly #lastError = new Map<string, string>();
  readonly #log: (msg: string) => void;
  readonly #resyncMs: number;
  #logsServer?: NodeLogsServer;
  #logsEndpoint?: NodeLogsEndpoint;
  /** reconciles so far, per deployment (what a change cost: the cluster benchmark reads it) */
  readonly reconciles = new Map<string, number>();

  constructor(readonly opts: NodeReconcilerOptions) {
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf node ${opts.nodeName}: ${m}\n`));
    this.#resyncMs = opts.resyncMs ?? 30_000;
    this.agent = opts.agent ?? new Agent(opts.paths, { log: this.#log });
    this.api = new KbpfApi(opts.kube);
  }

  private newStore(): Store<BpfNodeInstance> {
    return new Store<BpfNodeInstance>({ indexes: { deployment: (ni) => ni.spec.deployment } });
  }

  async start(): Promise<void> {
    this.#stopped = false;
    // the policy in force changes as its ConfigMap does (and is checked before each load)
    this.#trust = new TrustPolicyWatch(this.opts.kube, this.opts.namespace, {
      log: this.#log,
      onChange: () => void this.refreshTrust().catch((e) => this.#log(`trust policy: ${errorText(e)}`)),
    });
    await this.#trust.start();
    await this.refreshTrust();
    await this.agent.start();
    // what this node's kernel supports, for kubectl bpf doctor (a failure costs only that)
    void reportNode(this.opts.kube, this.opts.nodeName, () => this.agent.doctor()).catch((e) =>
      this.#log(`not reporting the kernel's features (BpfNode ${this.opts.nodeName}): ${errorText(e)}`),
    );
    // a log endpoint that cannot start (port taken, token Secret missing) serves nothing, and
    // says so; the agent's programs are more important than its logs endpoint
    if (this.opts.logs)
      await this.startLogs(this.opts.logs).catch((e) => this.#log(`not serving event logs: ${errorText(e)}`));
    const queue = new WorkQueue<string>({
      reconcile: async (name) => {
        const action = await this.reconcile(name);
        this.#lastError.delete(name);
        return action;
      },
      onError: (name, e) => {
        const msg = errorText(e);
        if (this.#lastError.get(name) === msg) return;
        this.#lastError.set(name, msg);
        this.#log(`${name}: ${msg}`);
      },
      backoff: { maxMs: Math.max(200, this.#resyncMs) },
    });
    this.#queue = queue;
    const store = this.newStore();
    this.#instances = store;
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    this.#watcher = new Watcher<BpfNodeInstance>(
      apiListWatch(this.opts.kube, {
        path: `/apis/${GROUP}/${VERSION}/${PLURAL.nodeInstances}`,
        list: () => this.api.list(PLURAL.nodeInstances, { fieldSelector }),
        fieldSelector,
      }),
      (e) => {
        for (const c of store.apply(e)) for (const o of [c.before, c.after]) if (o) queue.add(o.spec.deployment);
      },
      { what: PLURAL.nodeInstances, log: this.#log },
    );
    await this.#watcher.start();
    // local instances without an object are removed (the one full listing of the agent per pass)
    this.sweep();
    queue.start();
    this.#sweep = setInterval(() => this.sweep(), this.#resyncMs);
    this.#sweep.unref();
  }

  /** Stops watching; programs keep running (a restarted reconciler's agent adopts them). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweep);
    this.#watcher?.stop();
    this.#trust?.stop();
    await this.#queue?.stop();
    await this.#logsServer?.close();
    await this.agent.close();
  }

  /** Queues the agent's instances that have no BpfNodeInstance (their reconcile removes them). */
  private sweep(): void {
    for (const st of this.agent.list())
      if (this.#instances.byIndex('deployment', st.name).length === 0) this.#queue?.add(st.name);
  }

  /** Where this agent serves logs (undefined when it does not). */
  get logsEndpoint(): NodeLogsEndpoint | undefined {
    return this.#logsEndpoint;
  }

  private async startLogs(o: NonNullable<NodeReconcilerOptions['logs']>): Promise<void> {
    const node = this.opts.nodeName;
    const advertise = o.advertiseHost ?? o.host;
    // a new key per start, in memory only: what the BpfNode publishes is what clients pin
    const tls = selfSignedCertificate(`kbpf-node-logs ${node}`, [advertise]);
    const readers = o.readers ?? [`system:serviceaccount:${this.opts.namespace}:${LOGS_READER_ACCOUNT}`];
    const auth = new LogsAuthenticator({ kube: this.opts.kube, node, users: readers });
    const agent = this.agent;
    this.#logsServer = new NodeLogsServer({
      host: o.host,
      port: o.port,
      ...(o.advertiseHost ? { advertiseHost: o.advertiseHost } : {}),
      tls,
      authenticate: (h) => auth.check(h),
      source: {
        has: (n) => agentHas(agent, n),
        read: (n, opts) => agent.logs.read(n, opts),
        followBatches: (n, opts, signal) => agent.logs.followBatches(n, opts, signal),
        inspect: (n) => agent.inspect(n),
        maps: (n, map) => agent.maps(n, map),
      },
    });
    const url = await this.#logsServer.start();
    this.#logsEndpoint = { url, certificate: tls.cert };
    await publishLogsEndpoint(this.opts.kube, node, this.#logsEndpoint);
    this.#log(
      `serving event logs at ${url}/v1/logs/DEPLOYMENT (certificate sha256 ${tls.fingerprint}, tokens of ${readers.join(', ')} for audience ${auth.audience})`,
    );
  }

  /** This node's instance of a deployment (named by the controller; any other name is found too). */
  private instanceOf(deployment: string): BpfNodeInstance | undefined {
    const ni = this.#instances.get(nodeInstanceName(deployment, this.opts.nodeName));
    if (ni?.spec.deployment === deployment) return ni;
    return this.#instances.byIndex('deployment', deployment)[0];
  }

  /** The agent's instance of that name (one status query), if it has one. */
  private local(name: string): Local | undefined {
    if (!agentHas(this.agent, name)) return undefined;
    const history: Revision[] = this.agent.history(name);
    const status: InstanceStatus = this.agent.inspect(name);
    return { status, attach: history.find((r) => r.revision === status.revision)?.attach ?? {} };
  }

  /** Makes the agent's instance `name` (a deployment's name) what this node's BpfNodeInstance says. */
  private async reconcile(name: string): Promise<Action | undefined> {
    if (this.#stopped) return undefined;
    this.reconciles.set(name, (this.reconciles.get(name) ?? 0) + 1);
    const resync: Action = { requeueAfterMs: this.#resyncMs };
    const ni = this.instanceOf(name);
    const exists = agentHas(this.agent, name);
    if (!ni) {
      // a deployment this node should no longer run (its object is gone)
      this.#failed.delete(name);
      if (exists) {
        this.#log(`${name}: no BpfNodeInstance for this node; removing it`);
        await this.agent.remove(name, { force: true });
      }
      return undefined;
    }
    const update: Update<BpfNodeInstance> = (n, edit) => this.api.update(PLURAL.nodeInstances, n, edit);
    const removed = await finalize(ni, FINALIZER_NODE_CLEANUP, update, async () => {
      await this.writeStatus(ni, { phase: 'Deleting', message: 'removing the instance from this node' });
      if (exists) await this.agent.remove(name, { force: true });
    });
    if (removed || ni.metadata.deletionTimestamp) {
      // going without our finalizer (released by someone else): nothing of it stays here either
      if (!removed && exists) await this.agent.remove(name, { force: true });
      this.#failed.delete(name);
      return undefined;
    }
    const gen = ni.metadata.generation ?? 0;
    const failed = this.#failed.get(name);
    const now = Date.now();
    if (failed?.generation === gen && now < failed.retryAt) return { requeueAfterMs: failed.retryAt - now };
    const local = exists ? this.local(name) : undefined;
    const config = ni.spec.config ?? {};
    const attach = this.localAttach(ni);
    const matches = !!local && this.matches(local, ni);
    if (local && matches && local.status.phase === (ni.spec.stopped ? 'stopped' : 'running')) {
      this.#failed.delete(name);
      await this.writeStatus(ni, this.runningStatus(ni, local.status));
      return resync;
    }
    if (local && matches && ni.spec.stopped) {
      // kubectl bpf stop: the programs go, the instance (and its history) stays
      await this.agent.stop(name);
      this.#failed.delete(name);
      await this.writeStatus(ni, this.runningStatus(ni, this.agent.inspect(name)));
      return resync;
    }
    let st: InstanceStatus;
    try {
      await this.writeStatus(ni, {
        phase: 'Loading',
        message: local ? `moving to revision ${ni.spec.revision}` : `loading revision ${ni.spec.revision}`,
      });
      await this.refreshTrust();
      await this.pull(ni);
      const image = this.localRef(ni);
      if (!local) st = await this.agent.run({ image, name, config, attach });
      else if (!matches) st = await this.agent.upgrade(name, { image, config, attach });
      else st = await this.agent.startInstance(name);
      if (ni.spec.stopped) st = await this.agent.stop(name);
    } catch (e) {
      this.#failed.set(name, { generation: gen, retryAt: Date.now() + this.#resyncMs });
      const msg = errorText(e);
      this.#log(`${name}: revision ${ni.spec.revision} failed: ${msg}`);
      const failure: Partial<BpfNodeInstanceStatus> = { phase: 'Failed', message: msg.slice(0, 32_000) };
      // what runs is still reported (a failed upgrade leaves the old revision running)
      const after = this.local(name);
      if (after) Object.assign(failure, this.programsOf(after.status));
      await this.writeStatus(ni, failure);
      return resync;
    }
    this.#failed.delete(name);
    await this.writeStatus(ni, this.runningStatus(ni, st));
    return resync;
  }

  /** Does the local instance run exactly the package, config and attach points of the spec? */
  private matches(local: Local, ni: BpfNodeInstance): boolean {
    return (
      local.status.digest === ni.spec.digest &&
      canonicalJson(local.status.config ?? {}) === canonicalJson(ni.spec.config ?? {}) &&
      canonicalJson(local.attach) === canonicalJson(this.localAttach(ni))
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

  private programsOf(st: InstanceStatus): Partial<BpfNodeInstanceStatus> {
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

  private runningStatus(ni: BpfNodeInstance, st: InstanceStatus): Partial<BpfNodeInstanceStatus> {
    return {
      phase: (st.phase === 'stopped' ? 'Stopped' : 'Running') as NodePhase,
      revision: ni.spec.revision,
      ...this.programsOf(st),
      ...(st.message ? { message: st.message } : { message: undefined }),
    };
  }

  /**
   * The name the package has in this node's store: the remote name, registry host kept, by
   * digest (registry.example.com/kbpf/tcpconnect@sha256:…). The trust policy's rules match
   * that name, and only a name without a registry counts as built on this node.
   */
  private localRef(ni: BpfNodeInstance): string {
    const inCluster = parseClusterRef(ni.spec.image);
    if (inCluster) return `${clusterStoreName(inCluster.name)}@${ni.spec.digest}`;
    const withoutDigest = ni.spec.image.replace(/@sha256:[a-f0-9]{64}$/, '');
    return `${withoutDigest.replace(/:[^/:]*$/, '')}@${ni.spec.digest}`;
  }

  /** the policy text last applied to the agent ('' for none) */
  #trustText?: string;

  /**
   * Applies the cluster's trust policy to the agent. A policy that cannot be read leaves the
   * last one in force, or, when none was ever read, one that trusts nothing.
   */
  private async refreshTrust(): Promise<void> {
    let cluster: ClusterTrustPolicy | undefined;
    try {
      cluster = await this.#trust!.read();
    } catch (e) {
      this.#log(`trust policy: ${errorText(e)}`);
      if (this.#trustText === undefined) {
        this.#trustText = '\0unreadable';
        this.agent.setTrust({ policy: { mode: 'enforce', allowLocal: false, rules: [] } });
      }
      return;
    }
    const text = cluster?.text ?? '';
    if (text === this.#trustText) return;
    this.#trustText = text;
    if (!cluster) {
      this.agent.setTrust(undefined);
      return;
    }
    const nodeKey = await ensureNodeKey(this.opts.paths.stateDir);
    this.agent.setTrust({
      policy: cluster.policy,
      nodeKey,
      nodeKeyPath: nodeKeyPaths(this.opts.paths.stateDir).privatePath,
    });
    this.#log('trust policy applied: packages are checked against it before they load');
  }

  private async pull(ni: BpfNodeInstance): Promise<void> {
    // a pull secret this deployment may not use refuses it even when the package is here already
    const credentials = ni.spec.pullSecret ? await this.pullCredentials(ni.spec.pullSecret, ni.spec.deployment) : {};
    if (await this.agent.store.hasBlob(ni.spec.digest).catch(() => false)) {
      try {
        await this.agent.store.resolve(this.localRef(ni));
        return;
      } catch {
        /* blob without the reference: pull (only missing blobs are fetched) */
      }
    }
    const inCluster = parseClusterRef(ni.spec.image);
    if (inCluster) return this.pullFromCluster(inCluster.name, ni.spec.digest);
    const client = new RegistryClient({
      credentials: async (registry) => credentials[registry],
      ...(this.opts.insecureRegistries?.length ? { insecure: this.opts.insecureRegistries } : {}),
    });
    try {
      const r = await client.pull(ni.spec.image, this.agent.store, { tag: this.localRef(ni) });
      if (r.digest !== ni.spec.digest)
        throw new CorruptedError(`the registry answered ${r.digest}, not ${ni.spec.digest}`);
    } catch (e) {
      throw withKind(e, `pull ${ni.spec.image}: ${errorText(e)}`);
    }
  }

  /**
   * A package stored in the cluster: its BpfPackage, read through the API server with this
   * agent's own credentials, every digest checked, imported with its signatures.
   */
  private async pullFromCluster(name: string, digest: string): Promise<void> {
    const objName = packageObjectName(name, digest);
    let obj: BpfPackage | undefined;
    try {
      obj = await this.api.get(PLURAL.packages, objName);
    } catch (e) {
      throw withKind(e, `reading BpfPackage ${objName}: ${errorText(e)}`);
    }
    if (!obj) throw new NotFoundError(`pull bpfpackage://${name}@${digest}: no BpfPackage ${objName} in the cluster`);
    await importPackageObject(obj, this.agent.store, digest);
  }

  /**
   * Registry credentials from a pull secret (a dockerconfigjson Secret labelled
   * kbpf.io/pull-secret=true, read by a label-selected list) that allows this deployment.
   */
  private async pullCredentials(name: string, deployment: string): Promise<Record<string, Credentials>> {
    const namespace = this.opts.pullSecretNamespace ?? this.opts.namespace;
    const secret = await readPullSecret(this.opts.kube, namespace, name);
    return pullCredentials(secret, { namespace, name }, deployment);
  }

  /**
   * Writes status if it differs from what the object has: compared with (and written over) the
   * watch's copy, so an unchanged status costs no request and a changed one a single PUT (a
   * stale copy: a 409 Conflict, a read and a retry).
   */
  private async writeStatus(ni: BpfNodeInstance, st: Partial<BpfNodeInstanceStatus>): Promise<void> {
    const cached = this.#instances.get(ni.metadata.name) ?? ni;
    const written = await this.api.update(
      PLURAL.nodeInstances,
      ni.metadata.name,
      (o) => {
        const next: BpfNodeInstanceStatus = {
          ...(o.status ?? {}),
          ...st,
          observedGeneration: o.metadata.generation ?? 0,
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
      { status: true, from: cached },
    );
    if (written && written !== cached) this.#instances.observe(written);
  }
}

/** Does the agent have an instance of that name? (No status query: history reads its records only.) */
function agentHas(agent: NodeAgent, name: string): boolean {
  try {
    agent.history(name);
    return true;
  } catch {
    return false;
  }
}

/** `message` as an error of the kind of `cause` (a registry that cannot be reached: Unavailable). */
function withKind(cause: unknown, message: string): KbpfError {
  return new KbpfError(kindOf(cause) ?? Unavailable, message, { cause });
}
