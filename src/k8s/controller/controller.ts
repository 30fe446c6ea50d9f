// The controller: for each BpfDeployment it keeps one BpfRevision per distinct template (package,
// config, attach), decides which nodes run it (all, a label selector, or names), creates one
// BpfNodeInstance per selected node, moves nodes to the newest revision no faster than the
// rolling strategy's maxUnavailable allows (planned by rollout.ts), and rolls the nodes' status
// up into the deployment's counts and conditions.
//
// Shape: one watcher + store per kind (deployments, node instances, revisions, Nodes); mappers
// (mappers.ts) route each change to the deployments it concerns, into a work queue keyed by
// deployment name (coalesced, never two reconciles of one deployment at once, per-deployment
// backoff on failure, and a requeue after `resyncMs`). A second queue, keyed by instance,
// releases the finalizer of instances whose Node is gone (no agent will).
import type { V1Node } from '@kubernetes/client-node';
import { KbpfError, kindOf, NotFoundError, Unknown } from '../../errors.js';
import type { Credentials } from '../../package/auth.js';
import { RegistryClient } from '../../package/registry-client.js';
import { checkTrust } from '../../package/trust/policy.js';
import { registrySignatures, type SignatureSource } from '../../package/trust/signing.js';
import {
  API_VERSION,
  type BpfDeployment,
  type BpfDeploymentStatus,
  type BpfNodeInstance,
  type BpfRevision,
  type Condition,
  canonicalJson,
  FINALIZER_NODE_CLEANUP,
  GROUP,
  instanceReady,
  LABEL_DEPLOYMENT,
  LABEL_NODE,
  LABEL_PACKAGE,
  maxUnavailableOf,
  type NodeLike,
  nodeInstanceName,
  PLURAL,
  type Template,
  templateHash,
  templateOf,
  VERSION,
} from '../api.js';
import { clusterStoreName, objectSignatures, packageObjectName, parseClusterRef } from '../cluster-packages.js';
import { errorText, KbpfApi, type Kube, statusCode } from '../kube.js';
import { PullSecretWatch, pullCredentials, pullSecretRefusal } from '../pull-secrets.js';
import { finalize } from '../runtime/finalizer.js';
import { type Action, WorkQueue } from '../runtime/queue.js';
import { type Change, Store } from '../runtime/store.js';
import { apiListWatch, type ListWatch, type WatchEvent, Watcher } from '../runtime/watcher.js';
import { type ClusterTrustPolicy, TrustPolicyWatch } from '../trust-policy.js';
import {
  deploymentsForNode,
  deploymentsOfOwned,
  instancesToFinalizeOnNode,
  instanceToFinalize,
  ownerDeployment,
  selectsNode,
} from './mappers.js';
import { planRollout } from './rollout.js';

export interface ControllerOptions {
  kube: Kube;
  namespace: string;
  log?: (msg: string) => void;
  /** each deployment is reconciled again this often even without a change (ms, default 10 s) */
  resyncMs?: number;
  /** deployments reconciled at once (default 4) */
  concurrency?: number;
  /** resolves a package reference to its manifest digest (default: ask the registry) */
  resolveDigest?: (image: string, credentials: Record<string, Credentials>) => Promise<string>;
  /** registries (host[:port]) reached over plain HTTP (default: only loopback ones) */
  insecureRegistries?: string[];
  /** the cluster's trust policy (default: the kbpf-trust-policy ConfigMap in `namespace`) */
  trustPolicy?: () => Promise<ClusterTrustPolicy | undefined>;
  /**
   * namespace of pull secrets (default: `namespace`): only Secrets labelled
   * kbpf.io/pull-secret=true there are read (watched), each for the deployments it allows
   */
  pullSecretNamespace?: string;
}

const DIGEST_RE = /@(sha256:[a-f0-9]{64})$/;

type Node = V1Node & NodeLike;

/** The caches the controller reconciles from. */
interface Caches {
  deployments: Store<BpfDeployment>;
  instances: Store<BpfNodeInstance>;
  revisions: Store<BpfRevision>;
  nodes: Store<Node>;
}

export class Controller {
  readonly api: KbpfApi;
  #caches!: Caches;
  #watchers: Watcher<{ metadata: NodeLike['metadata'] }>[] = [];
  #deploymentQueue?: WorkQueue<string>;
  #finalizerQueue?: WorkQueue<string>;
  #trust?: TrustPolicyWatch;
  #pullSecrets?: PullSecretWatch;
  #stopped = false;
  /** the last error logged per key, so a failure that repeats is logged once */
  readonly #lastError = new Map<string, string>();
  readonly #log: (msg: string) => void;
  /** reconciles so far, per deployment (what a change cost: the cluster benchmark reads it) */
  readonly reconciles = new Map<string, number>();

  constructor(readonly opts: ControllerOptions) {
    this.api = new KbpfApi(opts.kube);
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf controller: ${m}\n`));
  }

  /** Watches everything, and once every cache has listed, starts reconciling. Can start again after stop. */
  async start(): Promise<void> {
    this.#stopped = false;
    const caches: Caches = {
      deployments: new Store(),
      instances: new Store({
        indexes: { node: (ni) => ni.spec.nodeName, deployment: (ni) => ownerDeployment(ni) },
      }),
      revisions: new Store({ indexes: { deployment: (r) => ownerDeployment(r) } }),
      nodes: new Store(),
    };
    this.#caches = caches;
    const resyncMs = this.opts.resyncMs ?? 10_000;
    const deployments = new WorkQueue<string>({
      reconcile: async (name) => {
        const action = await this.reconcileDeployment(name);
        this.#lastError.delete(name);
        return action;
      },
      onError: (name, e) => this.logError(name, e),
      concurrency: this.opts.concurrency ?? 4,
      // a failing deployment is retried at least as often as a resync
      backoff: { maxMs: Math.max(200, resyncMs) },
    });
    const finalizers = new WorkQueue<string>({
      reconcile: async (name) => {
        await this.releaseIfNodeGone(name);
        this.#lastError.delete(name);
        return undefined;
      },
      onError: (name, e) => this.logError(name, e),
    });
    this.#deploymentQueue = deployments;
    this.#finalizerQueue = finalizers;
    const onNode = (node: string) => caches.instances.byIndex('node', node);

    const path = (p: string): string => `/apis/${GROUP}/${VERSION}/${p}`;
    const watch = <T extends { metadata: NodeLike['metadata'] }>(
      what: string,
      source: ListWatch<T>,
      store: Store<T>,
      route: (c: Change<T>) => void,
    ): Watcher<T> =>
      new Watcher<T>(
        source,
        (e: WatchEvent<T>) => {
          for (const c of store.apply(e)) route(c);
        },
        { what, log: this.#log },
      );
    const watchers = [
      watch(
        PLURAL.deployments,
        apiListWatch(this.opts.kube, {
          path: path(PLURAL.deployments),
          list: () => this.api.list(PLURAL.deployments),
        }),
        caches.deployments,
        (c) => deployments.add((c.after ?? c.before)!.metadata.name),
      ),
      watch(
        PLURAL.nodeInstances,
        apiListWatch(this.opts.kube, {
          path: path(PLURAL.nodeInstances),
          list: () => this.api.list(PLURAL.nodeInstances),
        }),
        caches.instances,
        (c) => {
          for (const d of deploymentsOfOwned(c)) deployments.add(d);
          for (const ni of instanceToFinalize(c)) finalizers.add(ni);
        },
      ),
      watch(
        PLURAL.revisions,
        apiListWatch(this.opts.kube, {
          path: path(PLURAL.revisions),
          list: () => this.api.list(PLURAL.revisions),
        }),
        caches.revisions,
        (c) => {
          for (const d of deploymentsOfOwned(c)) deployments.add(d);
        },
      ),
      watch(
        'nodes',
        apiListWatch<Node>(this.opts.kube, {
          path: '/api/v1/nodes',
          list: async () => {
            const r = await this.opts.kube.core.listNode();
            return { items: r.items as Node[], resourceVersion: r.metadata?.resourceVersion ?? '' };
          },
        }),
        caches.nodes,
        (c) => {
          for (const d of deploymentsForNode(c, caches.deployments.values(), onNode)) deployments.add(d);
          for (const ni of instancesToFinalizeOnNode(c, onNode)) finalizers.add(ni);
        },
      ),
    ];
    this.#watchers = watchers as Watcher<{ metadata: NodeLike['metadata'] }>[];
    // a new trust policy may let a deployment go on, or stop it: every deployment is looked at again
    this.#trust = this.opts.trustPolicy
      ? undefined
      : new TrustPolicyWatch(this.opts.kube, this.opts.namespace, {
          log: this.#log,
          onChange: () => {
            for (const name of caches.deployments.keys()) deployments.add(name);
          },
        });
    // a pull secret labelled, unlabelled or allowing other deployments: those using it are looked at again
    this.#pullSecrets = new PullSecretWatch(this.opts.kube, this.pullSecretNamespace, {
      log: this.#log,
      onChange: (secret) => {
        for (const d of caches.deployments.values())
          if (d.spec.package.pullSecret === secret) deployments.add(d.metadata.name);
      },
    });
    // decide nothing before every cache is complete (a missing Node would look deleted)
    await Promise.all([...watchers.map((w) => w.start()), this.#trust?.start(), this.#pullSecrets.start()]);
    if (this.#stopped) return;
    deployments.start();
    finalizers.start();
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers) w.stop();
    this.#trust?.stop();
    this.#pullSecrets?.stop();
    void this.#deploymentQueue?.stop();
    void this.#finalizerQueue?.stop();
  }

  private logError(key: string, e: unknown): void {
    const msg = errorText(e);
    if (this.#lastError.get(key) === msg) return;
    this.#lastError.set(key, msg);
    this.#log(`${key}: ${msg}`);
  }

  /** An instance being deleted whose Node no longer exists: nobody else will release its finalizer. */
  private async releaseIfNodeGone(name: string): Promise<void> {
    const ni = this.#caches.instances.get(name);
    if (!ni || this.#caches.nodes.has(ni.spec.nodeName)) return;
    await finalize(
      ni,
      FINALIZER_NODE_CLEANUP,
      (n, edit) => this.api.update(PLURAL.nodeInstances, n, edit),
      async () => this.#log(`${name}: node ${ni.spec.nodeName} is gone; releasing the instance`),
    );
  }

  /** The nodes a deployment selects (Nodes being deleted are not counted). */
  selectedNodes(d: BpfDeployment): string[] {
    const out: string[] = [];
    for (const n of this.#caches.nodes.values())
      if (!n.metadata.deletionTimestamp && selectsNode(d, n)) out.push(n.metadata.name);
    return out.sort();
  }

  private ownerRef(d: BpfDeployment) {
    return [
      {
        apiVersion: API_VERSION,
        kind: 'BpfDeployment',
        name: d.metadata.name,
        uid: d.metadata.uid!,
        controller: true,
        blockOwnerDeletion: true,
      },
    ];
  }

  /** The revision for the deployment's current template: found, re-numbered (undo), or created. */
  private async updateRevision(d: BpfDeployment, revisions: BpfRevision[]): Promise<BpfRevision> {
    const template = templateOf(d.spec);
    const hash = templateHash(template);
    const max = Math.max(0, ...revisions.map((r) => r.revision));
    const existing = revisions.find((r) => r.templateHash === hash);
    if (existing) {
      if (existing.revision === max) return existing;
      // going back to an earlier template (rollout undo): it becomes the newest revision again
      const renumbered = await this.api.update(PLURAL.revisions, existing.metadata.name, (o) => ({
        ...o,
        revision: max + 1,
      }));
      if (!renumbered) throw new NotFoundError(`revision ${existing.metadata.name} vanished`);
      this.#caches.revisions.observe(renumbered);
      return renumbered;
    }
    const digest = await this.resolveDigest(template, d.metadata.name);
    const rev: BpfRevision = {
      apiVersion: API_VERSION,
      kind: 'BpfRevision',
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        labels: { [LABEL_DEPLOYMENT]: d.metadata.name },
        ownerReferences: this.ownerRef(d),
      },
      deployment: d.metadata.name,
      revision: max + 1,
      digest,
      templateHash: hash,
      template,
    };
    try {
      const created = await this.api.create(PLURAL.revisions, rev);
      this.#caches.revisions.observe(created);
      return created;
    } catch (e) {
      if (statusCode(e) === 409) {
        const got = await this.api.get(PLURAL.revisions, rev.metadata.name);
        if (got) return got;
      }
      throw e;
    }
  }

  /** digests found signed, per policy text: not asked of the registry again */
  readonly #trusted = new Map<string, string>();

  /**
   * Why the revision's package may not run under the cluster's trust policy ("signature missing
   * for sha256:…; keys tried: …"), or undefined when it may (or there is no policy).
   */
  private async untrusted(d: BpfDeployment, rev: BpfRevision): Promise<string | undefined> {
    let cluster: ClusterTrustPolicy | undefined;
    try {
      cluster = await (this.opts.trustPolicy ? this.opts.trustPolicy() : this.#trust!.read());
    } catch (e) {
      return `the trust policy cannot be read, so nothing is trusted: ${errorText(e)}`;
    }
    if (!cluster) return undefined;
    if (this.#trusted.get(rev.digest) === cluster.text) return undefined;
    let image = rev.template.package.image.replace(DIGEST_RE, '');
    try {
      let signatures: SignatureSource;
      const inCluster = parseClusterRef(rev.template.package.image);
      if (inCluster) {
        // a package stored in the cluster: its signatures are in its BpfPackage, its name the store's
        image = clusterStoreName(inCluster.name);
        const obj = await this.api.get(PLURAL.packages, packageObjectName(inCluster.name, rev.digest));
        if (!obj) throw new NotFoundError(`no BpfPackage holds ${inCluster.name}@${rev.digest}`);
        signatures = objectSignatures(obj);
      } else {
        const creds = rev.template.package.pullSecret
          ? this.pullCredentials(rev.template.package.pullSecret, d.metadata.name)
          : {};
        const client = new RegistryClient({
          credentials: async (registry) => creds[registry],
          ...(this.opts.insecureRegistries?.length ? { insecure: this.opts.insecureRegistries } : {}),
        });
        signatures = registrySignatures(client, image);
      }
      const decision = await checkTrust(cluster.policy, image, rev.digest, signatures);
      if (decision.trusted) this.#trusted.set(rev.digest, cluster.text);
      else this.#log(`${d.metadata.name}: untrusted package, rolled out anyway (warn mode): ${decision.warning}`);
      return undefined;
    } catch (e) {
      return errorText(e).replace(`${image}: `, '');
    }
  }

  private async resolveDigest(t: Template, deployment: string): Promise<string> {
    const m = DIGEST_RE.exec(t.package.image);
    if (m) return m[1]!;
    const inCluster = parseClusterRef(t.package.image);
    if (inCluster) return this.newestClusterPackage(inCluster.name, inCluster.version);
    const creds = t.package.pullSecret ? this.pullCredentials(t.package.pullSecret, deployment) : {};
    if (this.opts.resolveDigest) return this.opts.resolveDigest(t.package.image, creds);
    const client = new RegistryClient({
      credentials: async (registry) => creds[registry],
      ...(this.opts.insecureRegistries?.length ? { insecure: this.opts.insecureRegistries } : {}),
    });
    return (await client.getManifest(t.package.image)).digest;
  }

  /** bpfpackage://NAME[:VERSION]: the digest of the newest BpfPackage of that name (and version). */
  private async newestClusterPackage(name: string, version?: string): Promise<string> {
    const all = (await this.api.list(PLURAL.packages, { labelSelector: `${LABEL_PACKAGE}=${name}` })).items;
    const newest = all
      .filter((p) => version === undefined || p.spec.version === version)
      .sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)))
      .at(-1);
    if (!newest)
      throw new NotFoundError(
        `no BpfPackage of package ${name}${version ? ` version ${version}` : ''} (it has: ${all.map((p) => p.spec.version).join(', ') || 'none'})`,
      );
    return newest.spec.digest;
  }

  private get pullSecretNamespace(): string {
    return this.opts.pullSecretNamespace ?? this.opts.namespace;
  }

  /** Why the deployment may not use the pull secret it names (from the watch of labelled Secrets). */
  private pullSecretRefused(d: BpfDeployment): string | undefined {
    const name = d.spec.package.pullSecret;
    if (!name) return undefined;
    const where = { namespace: this.pullSecretNamespace, name };
    return pullSecretRefusal(this.#pullSecrets?.get(name), where, d.metadata.name)?.message;
  }

  private pullCredentials(name: string, deployment: string): Record<string, Credentials> {
    const namespace = this.pullSecretNamespace;
    return pullCredentials(this.#pullSecrets?.get(name), { namespace, name }, deployment);
  }

  private desiredSpec(d: BpfDeployment, node: string, rev: BpfRevision): BpfNodeInstance['spec'] {
    const t = rev.template;
    const name = t.package.image.replace(DIGEST_RE, '').replace(/:[^/:]*$/, '');
    return {
      deployment: d.metadata.name,
      nodeName: node,
      revision: rev.revision,
      image: `${name}@${rev.digest}`,
      digest: rev.digest,
      ...(t.package.pullSecret ? { pullSecret: t.package.pullSecret } : {}),
      ...(t.config ? { config: t.config } : {}),
      ...(t.attach ? { attach: t.attach } : {}),
      ...(d.spec.stopped ? { stopped: true } : {}),
    };
  }

  private async reconcileDeployment(name: string): Promise<Action | undefined> {
    if (this.#stopped) return undefined;
    this.reconciles.set(name, (this.reconciles.get(name) ?? 0) + 1);
    const d = this.#caches.deployments.get(name);
    if (!d || d.metadata.deletionTimestamp) return undefined; // owned objects go by garbage collection
    const uid = d.metadata.uid;
    const revisions = this.#caches.revisions
      .byIndex('deployment', name)
      .filter((r) => r.deployment === name && r.metadata.ownerReferences?.some((o) => o.uid === uid));
    const instances = this.#caches.instances
      .byIndex('deployment', name)
      .filter((n) => n.spec.deployment === name && n.metadata.ownerReferences?.some((o) => o.uid === uid));
    const nodes = this.selectedNodes(d);

    let update: BpfRevision | undefined;
    let resolveError: Error | undefined;
    // a deployment its pull secret does not allow goes to no node (and the nodes would refuse it too)
    const secretRefused = this.pullSecretRefused(d);
    if (secretRefused) this.#log(`${name}: PullSecretRefused: ${secretRefused}`);
    if (!d.spec.paused && !secretRefused) {
      try {
        update = await this.updateRevision(d, revisions);
      } catch (e) {
        // the kind stays (a tag that does not exist, a registry that is down)
        resolveError = new KbpfError(kindOf(e) ?? Unknown, `cannot resolve ${d.spec.package.image}: ${errorText(e)}`, {
          cause: e,
        });
      }
    } else {
      update = revisions.find((r) => r.templateHash === templateHash(templateOf(d.spec)));
    }

    // a package no trusted key signed goes to no node (and the nodes would refuse it too)
    const untrusted = update && !d.spec.paused && !secretRefused ? await this.untrusted(d, update) : undefined;
    if (untrusted) this.#log(`${name}: Untrusted: ${untrusted}`);

    const plan = planRollout({
      spec: d.spec,
      nodes,
      instances,
      ...(update ? { desired: (node: string) => this.desiredSpec(d, node, update) } : {}),
    });
    for (const ni of plan.remove) {
      this.#log(`${name}: node ${ni.spec.nodeName} is no longer selected`);
      await this.api.delete(PLURAL.nodeInstances, ni.metadata.name);
    }
    if (update && !untrusted && !secretRefused) {
      for (const node of plan.create) {
        const ni: BpfNodeInstance = {
          apiVersion: API_VERSION,
          kind: 'BpfNodeInstance',
          metadata: {
            name: nodeInstanceName(name, node),
            labels: { [LABEL_DEPLOYMENT]: name, [LABEL_NODE]: node },
            finalizers: [FINALIZER_NODE_CLEANUP],
            ownerReferences: this.ownerRef(d),
          },
          spec: this.desiredSpec(d, node, update),
        };
        try {
          this.#caches.instances.observe(await this.api.create(PLURAL.nodeInstances, ni));
        } catch (e) {
          if (statusCode(e) !== 409) throw e;
        }
      }
      for (const ni of plan.move) {
        this.#log(`${name}: node ${ni.spec.nodeName} to revision ${update.revision}`);
        const spec = this.desiredSpec(d, ni.spec.nodeName, update);
        const moved = await this.api.update(PLURAL.nodeInstances, ni.metadata.name, (o) => ({ ...o, spec }), {
          from: ni,
        });
        if (moved) this.#caches.instances.observe(moved);
      }
    }
    await this.pruneRevisions(d, revisions, instances, update);
    await this.writeStatus(d, nodes, update, resolveError?.message, untrusted, secretRefused);
    // the status says why; the queue retries with backoff (and at once on a change)
    if (resolveError) throw resolveError;
    return { requeueAfterMs: this.opts.resyncMs ?? 10_000 };
  }

  private async pruneRevisions(
    d: BpfDeployment,
    revisions: BpfRevision[],
    instances: BpfNodeInstance[],
    update?: BpfRevision,
  ): Promise<void> {
    const limit = d.spec.revisionHistoryLimit ?? 10;
    const inUse = new Set(instances.map((n) => n.spec.revision));
    const old = revisions
      .filter((r) => r.metadata.name !== update?.metadata.name && !inUse.has(r.revision))
      .sort((a, b) => a.revision - b.revision);
    for (const r of old.slice(0, Math.max(0, old.length - limit)))
      await this.api.delete(PLURAL.revisions, r.metadata.name);
  }

  private async writeStatus(
    d: BpfDeployment,
    nodes: string[],
    update: BpfRevision | undefined,
    resolveError?: string,
    untrusted?: string,
    secretRefused?: string,
  ): Promise<void> {
    const dname = d.metadata.name;
    const selected = new Set(nodes);
    const instances = this.#caches.instances
      .byIndex('deployment', dname)
      .filter((n) => n.spec.deployment === dname && selected.has(n.spec.nodeName) && !n.metadata.deletionTimestamp);
    const desired = nodes.length;
    const updated = update ? instances.filter((n) => n.spec.revision === update.revision) : [];
    const ready = instances.filter(instanceReady);
    const failed = instances.filter(
      (n) => n.status?.phase === 'Failed' && n.status.observedGeneration === n.metadata.generation,
    );
    const updatedReady = updated.filter(instanceReady);
    const complete = !!update && updatedReady.length === desired;
    const maxUnavailable = maxUnavailableOf(d.spec, desired);
    const gen = d.metadata.generation ?? 0;
    const prevConds = d.status?.conditions ?? [];
    const cond = (type: Condition['type'], ok: boolean, reason: string, message: string): Condition => {
      const status = ok ? 'True' : 'False';
      const prev = prevConds.find((c) => c.type === type);
      return {
        type,
        status,
        reason,
        message,
        observedGeneration: gen,
        lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime! : new Date().toISOString(),
      };
    };
    const failures = failed.map((n) => `${n.spec.nodeName}: ${n.status?.message ?? 'failed'}`).join('; ');
    const conditions: Condition[] = [
      cond(
        'Available',
        desired > 0 && ready.length >= desired - maxUnavailable && ready.length > 0,
        desired === 0
          ? 'NoNodesSelected'
          : ready.length >= desired - maxUnavailable && ready.length > 0
            ? 'MinimumNodesReady'
            : 'NodesUnavailable',
        `${ready.length} of ${desired} node(s) ready`,
      ),
      d.spec.paused
        ? cond('Progressing', false, 'Paused', 'the rollout is paused')
        : secretRefused
          ? cond('Progressing', false, 'PullSecretRefused', secretRefused)
          : resolveError
            ? cond('Progressing', false, 'PackageUnresolved', resolveError)
            : untrusted
              ? cond('Progressing', false, 'Untrusted', untrusted)
              : cond(
                  'Progressing',
                  !complete,
                  complete ? 'RolloutComplete' : 'RollingUpdate',
                  complete
                    ? `revision ${update!.revision} runs on all ${desired} node(s)`
                    : `${updatedReady.length} of ${desired} node(s) run revision ${update?.revision ?? '?'}`,
                ),
      cond(
        'Degraded',
        failed.length > 0 || !!resolveError || !!secretRefused,
        failed.length
          ? 'NodesFailed'
          : secretRefused
            ? 'PullSecretRefused'
            : resolveError
              ? 'PackageUnresolved'
              : 'AsExpected',
        failed.length
          ? `${failed.length} node(s) failed: ${failures}`.slice(0, 32_000)
          : (secretRefused ?? resolveError ?? 'no node failed'),
      ),
      ...(secretRefused
        ? [cond('PullSecretRefused', true, 'NotAllowed', secretRefused)]
        : prevConds.some((c) => c.type === 'PullSecretRefused')
          ? [
              cond(
                'PullSecretRefused',
                false,
                'Allowed',
                `pull secret ${d.spec.package.pullSecret ?? '(none)'} allows it`,
              ),
            ]
          : []),
      ...(untrusted
        ? [cond('Untrusted', true, 'SignatureNotTrusted', untrusted)]
        : prevConds.some((c) => c.type === 'Untrusted')
          ? [cond('Untrusted', false, 'Signed', `${update?.digest ?? 'the package'} is signed by a trusted key`)]
          : []),
    ];
    const status: BpfDeploymentStatus = {
      observedGeneration: gen,
      ...(update ? { updateRevision: update.revision, packageDigest: update.digest } : {}),
      ...(complete
        ? { currentRevision: update!.revision }
        : d.status?.currentRevision !== undefined
          ? { currentRevision: d.status.currentRevision }
          : {}),
      desiredNodes: desired,
      readyNodes: ready.length,
      updatedNodes: updated.length,
      failedNodes: failed.length,
      conditions,
    };
    if (canonicalJson(status) === canonicalJson(d.status ?? {})) return;
    const written = await this.api.update(
      PLURAL.deployments,
      dname,
      (o) => {
        if (o.metadata.generation !== d.metadata.generation) return undefined; // a newer spec: the next pass writes
        const strip = (s: BpfDeploymentStatus | undefined) =>
          canonicalJson({ ...s, conditions: s?.conditions?.map(({ lastTransitionTime: _t, ...c }) => c) });
        if (strip(o.status) === strip(status)) return undefined;
        o.status = status;
        return o;
      },
      { status: true, from: d },
    );
    if (written && written !== d) this.#caches.deployments.observe(written);
  }
}
