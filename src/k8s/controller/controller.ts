// The controller: for each BpfDeployment it keeps one BpfRevision per distinct template (package,
// config, attach), decides which nodes run it (all, a label selector, or names), creates one
// BpfNodeInstance per selected node, moves nodes to the newest revision no faster than the
// rolling strategy's maxUnavailable allows, and rolls the nodes' status up into the deployment's
// counts and conditions. It is level-triggered: every change to a deployment, node instance,
// revision or Node reconciles everything again from the watch caches.
import type { V1Node } from '@kubernetes/client-node';
import { type Credentials, credentialsFromDockerConfig } from '../../package/auth.js';
import { RegistryClient } from '../../package/registry-client.js';
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
  maxUnavailableOf,
  type NodeLike,
  nodeInstanceName,
  PLURAL,
  selectorMatches,
  type Template,
  templateHash,
  templateOf,
  VERSION,
} from '../api.js';
import { coalesced, errorText, KbpfApi, type Kube, Reflector, statusCode } from '../kube.js';

export interface ControllerOptions {
  kube: Kube;
  namespace: string;
  log?: (msg: string) => void;
  resyncMs?: number;
  /** resolves a package reference to its manifest digest (default: ask the registry) */
  resolveDigest?: (image: string, credentials: Record<string, Credentials>) => Promise<string>;
  /** registries (host[:port]) reached over plain HTTP (default: only loopback ones) */
  insecureRegistries?: string[];
}

const DIGEST_RE = /@(sha256:[a-f0-9]{64})$/;

export class Controller {
  readonly api: KbpfApi;
  #deployments!: Reflector<BpfDeployment>;
  #instances!: Reflector<BpfNodeInstance>;
  #revisions!: Reflector<BpfRevision>;
  #nodes!: Reflector<V1Node & NodeLike>;
  #kick!: () => void;
  #timer?: NodeJS.Timeout;
  #stopped = false;
  /** digest resolution failures per deployment generation (reported as Degraded) */
  readonly #resolveErrors = new Map<string, string>();
  readonly #log: (msg: string) => void;

  constructor(readonly opts: ControllerOptions) {
    this.api = new KbpfApi(opts.kube);
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf controller: ${m}\n`));
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#kick = coalesced(
      () => this.reconcileAll(),
      (e) => this.#log(`reconcile: ${errorText(e)}`),
    );
    const onChange = (): void => this.#kick();
    const path = (p: string): string => `/apis/${GROUP}/${VERSION}/${p}`;
    this.#deployments = new Reflector(this.opts.kube, {
      path: path(PLURAL.deployments),
      list: () => this.api.list(PLURAL.deployments),
      onChange,
      log: this.#log,
    });
    this.#instances = new Reflector(this.opts.kube, {
      path: path(PLURAL.nodeInstances),
      list: () => this.api.list(PLURAL.nodeInstances),
      onChange,
      log: this.#log,
    });
    this.#revisions = new Reflector(this.opts.kube, {
      path: path(PLURAL.revisions),
      list: () => this.api.list(PLURAL.revisions),
      onChange,
      log: this.#log,
    });
    this.#nodes = new Reflector(this.opts.kube, {
      path: '/api/v1/nodes',
      list: async () => {
        const r = await this.opts.kube.core.listNode();
        return { items: r.items as (V1Node & NodeLike)[], resourceVersion: r.metadata?.resourceVersion ?? '' };
      },
      onChange,
      log: this.#log,
    });
    await Promise.all([
      this.#deployments.start(),
      this.#instances.start(),
      this.#revisions.start(),
      this.#nodes.start(),
    ]);
    this.#timer = setInterval(onChange, this.opts.resyncMs ?? 10_000);
    this.#timer.unref();
    this.#kick();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const r of [this.#deployments, this.#instances, this.#revisions, this.#nodes]) r?.stop();
  }

  private async reconcileAll(): Promise<void> {
    if (this.#stopped) return;
    for (const d of this.#deployments.cache.values()) {
      if (this.#stopped) return;
      try {
        await this.reconcile(d);
      } catch (e) {
        this.#log(`${d.metadata.name}: ${errorText(e)}`);
      }
    }
    // instances whose node left the cluster: nobody will release their finalizer
    for (const ni of this.#instances.cache.values()) {
      if (
        ni.metadata.deletionTimestamp &&
        !this.#nodes.cache.has(ni.spec.nodeName) &&
        ni.metadata.finalizers?.includes(FINALIZER_NODE_CLEANUP)
      ) {
        await this.releaseFinalizer(ni.metadata.name);
      }
    }
  }

  private async releaseFinalizer(name: string): Promise<void> {
    await this.api.update(PLURAL.nodeInstances, name, (o) => {
      if (!o.metadata.finalizers?.includes(FINALIZER_NODE_CLEANUP)) return undefined;
      o.metadata.finalizers = o.metadata.finalizers.filter((f) => f !== FINALIZER_NODE_CLEANUP);
      return o;
    });
  }

  /** The nodes a deployment selects (Nodes being deleted are not counted). */
  selectedNodes(d: BpfDeployment): string[] {
    const out: string[] = [];
    for (const n of this.#nodes.cache.values()) {
      if (n.metadata.deletionTimestamp) continue;
      const name = n.metadata.name;
      if (d.spec.nodeNames) {
        if (!d.spec.nodeNames.includes(name)) continue;
      } else if (d.spec.nodeSelector && !selectorMatches(d.spec.nodeSelector, n.metadata.labels)) continue;
      out.push(name);
    }
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
      if (!renumbered) throw new Error(`revision ${existing.metadata.name} vanished`);
      this.#revisions.observe(renumbered);
      return renumbered;
    }
    const digest = await this.resolveDigest(template);
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
      this.#revisions.observe(created);
      return created;
    } catch (e) {
      if (statusCode(e) === 409) {
        const got = await this.api.get(PLURAL.revisions, rev.metadata.name);
        if (got) return got;
      }
      throw e;
    }
  }

  private async resolveDigest(t: Template): Promise<string> {
    const m = DIGEST_RE.exec(t.package.image);
    if (m) return m[1]!;
    const creds = t.package.pullSecret ? await this.secretCredentials(t.package.pullSecret) : {};
    if (this.opts.resolveDigest) return this.opts.resolveDigest(t.package.image, creds);
    const client = new RegistryClient({
      credentials: async (registry) => creds[registry],
      ...(this.opts.insecureRegistries?.length ? { insecure: this.opts.insecureRegistries } : {}),
    });
    return (await client.getManifest(t.package.image)).digest;
  }

  private async secretCredentials(name: string): Promise<Record<string, Credentials>> {
    const secret = await this.opts.kube.core.readNamespacedSecret({ name, namespace: this.opts.namespace });
    const raw = secret.data?.['.dockerconfigjson'];
    if (!raw) return {};
    return credentialsFromDockerConfig(
      Buffer.from(raw, 'base64').toString('utf8'),
      `pull secret ${this.opts.namespace}/${name}`,
    );
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
    };
  }

  private async reconcile(d: BpfDeployment): Promise<void> {
    if (d.metadata.deletionTimestamp) return; // owned objects go by garbage collection
    const dname = d.metadata.name;
    const revisions = [...this.#revisions.cache.values()].filter(
      (r) => r.deployment === dname && r.metadata.ownerReferences?.some((o) => o.uid === d.metadata.uid),
    );
    const instances = [...this.#instances.cache.values()].filter(
      (n) => n.spec.deployment === dname && n.metadata.ownerReferences?.some((o) => o.uid === d.metadata.uid),
    );
    const nodes = this.selectedNodes(d);
    const selected = new Set(nodes);

    let update: BpfRevision | undefined;
    let resolveError: string | undefined;
    if (!d.spec.paused) {
      try {
        update = await this.updateRevision(d, revisions);
        this.#resolveErrors.delete(dname);
      } catch (e) {
        resolveError = `cannot resolve ${d.spec.package.image}: ${errorText(e)}`;
        if (this.#resolveErrors.get(dname) !== resolveError) this.#log(`${dname}: ${resolveError}`);
        this.#resolveErrors.set(dname, resolveError);
      }
    } else {
      update = revisions.find((r) => r.templateHash === templateHash(templateOf(d.spec)));
    }
    const byNode = new Map(instances.map((n) => [n.spec.nodeName, n]));

    // nodes no longer selected (or gone): their instance goes (the agent cleans up first)
    for (const ni of instances) {
      if (!selected.has(ni.spec.nodeName) && !ni.metadata.deletionTimestamp) {
        this.#log(`${dname}: node ${ni.spec.nodeName} is no longer selected`);
        await this.api.delete(PLURAL.nodeInstances, ni.metadata.name);
      }
    }
    if (update && !d.spec.paused) {
      // nodes without an instance get the newest revision at once (like a DaemonSet)
      for (const node of nodes) {
        if (byNode.has(node)) continue;
        const ni: BpfNodeInstance = {
          apiVersion: API_VERSION,
          kind: 'BpfNodeInstance',
          metadata: {
            name: nodeInstanceName(dname, node),
            labels: { [LABEL_DEPLOYMENT]: dname, [LABEL_NODE]: node },
            finalizers: [FINALIZER_NODE_CLEANUP],
            ownerReferences: this.ownerRef(d),
          },
          spec: this.desiredSpec(d, node, update),
        };
        try {
          const created = await this.api.create(PLURAL.nodeInstances, ni);
          this.#instances.observe(created);
          byNode.set(node, created);
        } catch (e) {
          if (statusCode(e) !== 409) throw e;
        }
      }
      // rolling update: at most maxUnavailable selected nodes away from ready at once
      if ((d.spec.strategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
        const live = nodes
          .map((n) => byNode.get(n))
          .filter((n): n is BpfNodeInstance => !!n && !n.metadata.deletionTimestamp);
        const behind = live.filter(
          (n) => canonicalJson(n.spec) !== canonicalJson(this.desiredSpec(d, n.spec.nodeName, update!)),
        );
        const unavailable = live.filter((n) => !instanceReady(n)).length;
        let budget = maxUnavailableOf(d.spec, nodes.length) - unavailable;
        // not-ready nodes first: moving them costs no availability
        behind.sort(
          (a, b) =>
            Number(instanceReady(a)) - Number(instanceReady(b)) || a.spec.nodeName.localeCompare(b.spec.nodeName),
        );
        for (const ni of behind) {
          const costs = instanceReady(ni) ? 1 : 0;
          if (costs > budget) break;
          budget -= costs;
          this.#log(`${dname}: node ${ni.spec.nodeName} to revision ${update.revision}`);
          const spec = this.desiredSpec(d, ni.spec.nodeName, update);
          const moved = await this.api.update(PLURAL.nodeInstances, ni.metadata.name, (o) => ({ ...o, spec }));
          if (moved) this.#instances.observe(moved);
        }
      }
    }
    await this.pruneRevisions(d, revisions, instances, update);
    await this.writeStatus(d, nodes, update, resolveError);
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
  ): Promise<void> {
    const dname = d.metadata.name;
    const selected = new Set(nodes);
    const instances = [...this.#instances.cache.values()].filter(
      (n) => n.spec.deployment === dname && selected.has(n.spec.nodeName) && !n.metadata.deletionTimestamp,
    );
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
        : resolveError
          ? cond('Progressing', false, 'PackageUnresolved', resolveError)
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
        failed.length > 0 || !!resolveError,
        failed.length ? 'NodesFailed' : resolveError ? 'PackageUnresolved' : 'AsExpected',
        failed.length
          ? `${failed.length} node(s) failed: ${failures}`.slice(0, 32_000)
          : (resolveError ?? 'no node failed'),
      ),
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
    await this.api.update(
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
      { status: true },
    );
  }
}
