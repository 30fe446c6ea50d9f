// The node agent: owns desired state (instances, revisions, config) in its state directory,
// realises it through planners (one per kind of instance; today BPF programs in the kernel,
// program-planner.ts), pins everything under its bpffs directory, moves events into
// per-instance logs, and on restart re-adopts what is pinned instead of attaching twice. Where
// desired state comes from (the local API, or the Kubernetes API in a cluster) does not change
// how it is realised here.
//
// Every verb that changes an instance goes fetch → plan → execute: the package is fetched
// (package-cache.ts), a plan of steps with their undo is made (plan.ts; the planner's steps and
// the agent's record steps), and one executor runs it, unwinding on failure. What the plan's
// steps derive (kernel ids, event codecs) is kept in the agent's view of the instance
// (instance-view.ts), which the queries (queries.ts) read.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, ensureBpffs, type KernelFeatures, limitMallocRetention, RunTimeStats } from 'kbpf/bpf';
import { ConflictError, CorruptedError, errorMessage, InvalidError, NotFoundError } from '../errors.js';
import { LayoutStore, type PackageSummary } from '../package/layout-store.js';
import { effectiveOrder, instanceLogLimits, type PackageSpec, parseShare } from '../package/package-spec.js';
import { faultPoint } from './fault.js';
import { hookOrders, peerPrograms } from './hook-order.js';
import { checkInstanceName, isInstanceName } from './instance-name.js';
import { InstanceView } from './instance-view.js';
import { LogStore } from './log-store.js';
import type { MetricsSnapshot } from './metrics.js';
import { type FetchedPackage, PackageCache } from './package-cache.js';
import type { AgentPaths } from './paths.js';
import { PidLock } from './pid-lock.js';
import { removeRootIfEmpty } from './pins.js';
import { execute, Plan } from './plan.js';
import type { InstancePlanner, Realization, RevisionTarget } from './planner.js';
import { ProgramPlanner } from './program-planner.js';
import { dumpMaps, instanceStatus, type MapDump, metricsSnapshot } from './queries.js';
import { noKernelIds } from './realizer.js';
import { type StackRequest, symbolizeDumps, symbolizeStacks } from './stacks.js';
import { type StagedRecord, StateStore } from './state-store.js';
import { type AgentTrust, type TrustOutcome, trustCheck } from './trust.js';
import type {
  InstanceRecord,
  InstanceStatus,
  ObjectChoices,
  PackageRemoval,
  Revision,
  RunRequest,
  UpgradeRequest,
} from './types.js';
import { WasmPlanner } from './wasm-planner.js';

const HISTORY_LIMIT = 10;

export interface AgentOptions {
  log?: (msg: string) => void;
  /** hold BPF_ENABLE_STATS(BPF_STATS_RUN_TIME) while running: run counts and times in metrics */
  bpfStats?: boolean;
  /** the trust policy: packages not signed by a trusted key are refused (none: every package runs) */
  trust?: AgentTrust;
}

/** What a package looks like to `kbpf inspect` of a package. */
export interface PackageDescription {
  reference: string;
  digest: string;
  spec: PackageSpec;
}

export class Agent {
  readonly store: LayoutStore;
  readonly logs: LogStore;
  readonly #packages: PackageCache;
  readonly #state: StateStore;
  readonly #views = new Map<string, InstanceView>();
  readonly #planners: readonly InstancePlanner[];
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #log: (msg: string) => void;
  readonly #wantStats: boolean;
  #stats?: RunTimeStats;
  #closed = false;
  readonly #pidLock: PidLock;
  #trust?: AgentTrust;

  constructor(
    readonly paths: AgentPaths,
    opts: AgentOptions = {},
  ) {
    this.#wantStats = !!opts.bpfStats;
    this.#trust = opts.trust;
    this.#pidLock = new PidLock(join(paths.stateDir, 'agent.pid'));
    mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
    this.store = new LayoutStore(paths.storeDir);
    this.#packages = new PackageCache(this.store);
    this.logs = new LogStore(paths.logsDir);
    this.#state = new StateStore(paths.instancesDir);
    this.#planners = [new ProgramPlanner(paths.bpffsDir), new WasmPlanner(paths.bpffsDir, this.store)];
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf agent: ${m}\n`));
  }

  // ---- life cycle of the agent itself ----

  /** Re-adopts pinned instances, reconciles them to desired state, removes orphans. */
  async start(): Promise<void> {
    this.#pidLock.acquire();
    limitMallocRetention(); // a node agent loads objects all day: memory libbpf freed goes back

    ensureBpffs();
    if (this.#wantStats) {
      try {
        this.#stats = RunTimeStats.enable();
      } catch (e) {
        this.#log(`cannot enable BPF stats: ${errorMessage(e)}`);
      }
    }
    await this.store.init();
    for (const record of this.#state.list()) this.#views.set(record.name, new InstanceView(record));
    for (const s of this.#state.skipped) this.#log(`skipping state file ${s.file}: ${s.reason}`);
    for (const planner of this.#planners) {
      for (const name of planner.realised()) {
        if (this.#views.has(name)) continue;
        this.#log(`removing orphaned pins of unknown instance "${name}"`);
        planner.teardown(name, this.#log);
      }
    }
    await this.sweepLogs();
    for (const view of this.#views.values()) await this.locked(view.name, () => this.recover(view));
    removeRootIfEmpty(this.paths.bpffsDir);
  }

  /** Removes the logs of instances that have no record (removed while the agent stopped half-way). */
  private async sweepLogs(): Promise<void> {
    let dirs: string[];
    try {
      dirs = readdirSync(this.paths.logsDir);
    } catch {
      return; // no logs yet
    }
    for (const d of dirs) {
      // a record that was skipped (unreadable) keeps its log: it may be repaired
      if (this.#views.has(d) || !isInstanceName(d) || existsSync(join(this.paths.instancesDir, `${d}.json`))) continue;
      this.#log(`removing the log of removed instance "${d}"`);
      await this.logs.remove(d).catch((e) => this.#log(`could not remove the log of "${d}": ${errorMessage(e)}`));
    }
  }

  /** Stops reading events. Programs keep running; a restarted agent adopts them. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#views.values()].map((v) => v.closeEvents()));
    await Promise.allSettled(this.#planners.map((p) => p.close?.()));
    await this.logs.close();
    this.#stats?.close();
    this.#stats = undefined;
    this.#pidLock.release();
  }

  private async recover(view: InstanceView): Promise<void> {
    const record = view.record;
    const name = record.name;
    const rev = this.currentRevision(record);
    let pkg: FetchedPackage | undefined;
    let fetchError: unknown;
    try {
      pkg = await this.#packages.fetch(rev.digest, rev.image);
    } catch (e) {
      fetchError = e;
    }
    const planner = this.plannerFor(pkg?.spec);
    const transition = record.transition;
    if (transition)
      this.#log(
        `${name}: revision ${transition.to} did not commit before the agent stopped; returning to revision ${transition.from}`,
      );
    if (pkg) this.logs.setLimits(name, instanceLogLimits(pkg.spec, rev.attach));
    try {
      const adopted = planner.adopt(name, record.current, pkg?.spec, transition, rev.attach);
      if (transition) {
        const next = structuredClone(record);
        delete next.transition;
        this.#state.save(next);
        view.record = next;
        view.message = `an upgrade to revision ${transition.to} was interrupted by an agent restart and rolled back`;
      }
      view.ids = adopted.ids;
      view.choices = adopted.choices;
      if (!pkg && record.desired === 'running') {
        // what is attached keeps running: the kernel does not need the package, only a reload would
        if (adopted.ids.progs.size === 0 && adopted.ids.links.size === 0) throw fetchError;
        view.phase = 'running';
        view.message = `running, package unreadable (${errorMessage(fetchError)})`;
        this.#log(`${name}: adopted revision ${record.current}, ${view.message}`);
        return;
      }
      if (pkg) view.spec = pkg.spec;
      if (record.desired === 'running' && pkg) {
        if (adopted.complete) {
          this.#log(`${name}: adopted revision ${record.current} (programs kept running)`);
        } else {
          this.#log(`${name}: revision ${record.current} is not fully in the kernel; attaching it`);
          const plan = new Plan(`start ${name}`);
          const trusted = this.trustStep(plan, pkg, rev.image);
          const realised = planner.start(plan, name, this.target(name, record.current, pkg, rev, true));
          this.recordObjectsStep(plan, view, realised);
          await execute(plan, this.#log);
          this.realised(view, realised);
          if (trusted.warning) view.message = `untrusted (warn): ${trusted.warning}`;
        }
        view.phase = 'running';
        this.openEvents(view, planner, pkg);
      } else {
        const plan = new Plan(`stop ${name}`);
        planner.stop(plan, name, record.current);
        await execute(plan, this.#log);
        view.ids = { ...noKernelIds(), maps: view.ids.maps };
        view.phase = 'stopped';
      }
    } catch (e) {
      view.phase = 'failed';
      view.message = errorMessage(e);
      this.#log(`${name}: ${view.message}`);
    }
  }

  // ---- queries ----

  list(): InstanceStatus[] {
    return this.views().map(instanceStatus);
  }

  inspect(name: string): InstanceStatus {
    const view = this.view(name);
    const hooks = hookOrders(view, this.#views.values());
    return hooks.length ? { ...instanceStatus(view), hooks } : instanceStatus(view);
  }

  history(name: string): Revision[] {
    return structuredClone(this.view(name).record.revisions);
  }

  maps(name: string, only?: string): MapDump[] {
    const view = this.view(name);
    const planner = this.plannerFor(view.spec);
    const rev = view.record.current;
    const pinOf = (m: string): string | undefined => planner.mapPin(name, rev, m);
    return symbolizeDumps(view, pinOf, dumpMaps(view, pinOf, only, planner.globalsPins?.(name, rev)));
  }

  /** Stacks of an instance's events as symbols: addresses, or ids in its stack trace maps. */
  stacks(name: string, requests: readonly StackRequest[]): string[][] {
    const view = this.view(name);
    const planner = this.plannerFor(view.spec);
    return symbolizeStacks(view, (m) => planner.mapPin(name, view.record.current, m), requests);
  }

  /**
   * Where map `map` of instance `name`'s running revision is pinned: how applications next to
   * the agent reach an instance's maps (see also instanceMapPin in pins.ts, for other processes).
   */
  instanceMapPath(name: string, map: string): string {
    const view = this.view(name);
    const path = this.plannerFor(view.spec).mapPin(name, view.record.current, map);
    if (!path) throw new NotFoundError(`instance ${name} has no pinned map "${map}" (is it running?)`);
    return path;
  }

  /** Opens map `map` of instance `name`'s running revision. close() it when done. */
  instanceMap(name: string, map: string): BpfMap {
    return BpfMap.fromPin(this.instanceMapPath(name, map));
  }

  async packages(): Promise<PackageSummary[]> {
    return this.store.list();
  }

  async inspectPackage(ref: string): Promise<PackageDescription> {
    const pkg = await this.#packages.fetch(ref);
    return { reference: pkg.reference, digest: pkg.digest, spec: pkg.spec };
  }

  async doctor(): Promise<KernelFeatures> {
    const { probeFeatures } = await import('../bpf/features.js');
    return probeFeatures();
  }

  metricsSnapshot(): MetricsSnapshot {
    return metricsSnapshot(this.views());
  }

  // ---- verbs that change state ----

  async run(req: RunRequest): Promise<InstanceStatus> {
    const pkg = await this.#packages.fetch(req.image);
    const name = req.name ?? `${pkg.spec.name}-${randomBytes(3).toString('hex')}`;
    checkInstanceName(name);
    return this.locked(name, async () => {
      if (this.#views.has(name))
        throw new ConflictError(`an instance named "${name}" already exists (remove it with: kbpf rm ${name})`);
      const planner = this.plannerFor(pkg.spec);
      const revision: Revision = {
        revision: 1,
        image: req.image,
        digest: pkg.digest,
        config: req.config ?? {},
        attach: req.attach ?? {},
        createdAt: new Date().toISOString(),
        cause: 'run',
      };
      const record: InstanceRecord = {
        name,
        desired: 'running',
        current: 1,
        revisions: [revision],
        createdAt: revision.createdAt,
      };
      const plan = new Plan(`run ${req.image}`);
      const trusted = this.trustStep(plan, pkg, req.image);
      // the record is written while the programs load, and made current once they are attached
      let staged: StagedRecord | undefined;
      plan.step(
        `write the record of ${name}`,
        () => {
          staged = this.#state.stage(record);
        },
        () => staged?.discard(),
      );
      const realised = planner.run(plan, name, this.target(name, 1, pkg, revision));
      plan.step('fault point run-after-attach', () => faultPoint('run-after-attach'));
      plan.step(
        `save the record of ${name}`,
        async () => {
          if (!realised.objects) return staged!.commit();
          // an object runs from its other build: the record says so (written anew)
          revision.objects = realised.objects;
          staged!.discard();
          this.#state.save(record);
        },
        () => this.#state.delete(name),
      );
      await execute(plan, this.#log);
      const view = new InstanceView(record);
      view.spec = pkg.spec;
      this.realised(view, realised);
      view.phase = 'running';
      if (trusted.warning) view.message = `untrusted (warn): ${trusted.warning}`;
      this.#views.set(name, view);
      this.openEventsSoon(view, planner, pkg);
      return instanceStatus(view);
    });
  }

  async stop(name: string): Promise<InstanceStatus> {
    return this.locked(name, async () => {
      const view = this.view(name);
      const plan = new Plan(`stop ${name}`);
      this.recordStep(plan, view, 'record that it is stopped', (r) => {
        r.desired = 'stopped';
      });
      plan.step('stop its events', () => view.closeEvents());
      this.plannerFor(view.spec).stop(plan, name, view.record.current);
      await execute(plan, this.#log);
      view.ids = { ...noKernelIds(), maps: view.ids.maps };
      view.phase = 'stopped';
      view.message = undefined;
      return instanceStatus(view);
    });
  }

  async startInstance(name: string): Promise<InstanceStatus> {
    return this.locked(name, async () => {
      const view = this.view(name);
      const record = view.record;
      if (record.desired === 'running' && view.phase === 'running') return instanceStatus(view);
      const rev = this.currentRevision(record);
      const pkg = await this.#packages.fetch(rev.digest, rev.image);
      const planner = this.plannerFor(pkg.spec);
      const plan = new Plan(`start ${name}`);
      const trusted = this.trustStep(plan, pkg, rev.image);
      const realised = planner.start(plan, name, this.target(name, record.current, pkg, rev, true));
      this.recordStep(plan, view, 'record that it runs', (r) => {
        r.desired = 'running';
        setObjects(r, realised);
      });
      await execute(plan, this.#log);
      view.spec = pkg.spec;
      this.realised(view, realised);
      view.phase = 'running';
      view.message = trusted.warning ? `untrusted (warn): ${trusted.warning}` : undefined;
      this.openEvents(view, planner, pkg);
      return instanceStatus(view);
    });
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.locked(name, async () => {
      const view = this.view(name);
      const users = this.mapUsersOf(name);
      if (users.length && !opts.force)
        throw new ConflictError(
          `instance ${name} shares its maps with instance(s) ${users.join(', ')}: remove those first, or remove it anyway with rm -f (they keep the maps)`,
        );
      if (view.record.desired === 'running' && !opts.force) {
        throw new ConflictError(`instance ${name} is running: stop it first, or remove it with rm -f`);
      }
      await view.closeEvents();
      // the record goes first: an agent that stops before the pins are gone finds pins without a
      // record at its start, and removes them as orphans instead of attaching them again
      this.#state.delete(name);
      this.#views.delete(name);
      faultPoint('rm-midway');
      this.plannerFor(view.spec).teardown(name, this.#log);
      await this.logs.remove(name);
      removeRootIfEmpty(this.paths.bpffsDir);
    });
  }

  async upgrade(name: string, req: UpgradeRequest, cause: Revision['cause'] = 'upgrade'): Promise<InstanceStatus> {
    const pkg = await this.#packages.fetch(req.image);
    return this.locked(name, () =>
      this.switchTo(
        this.view(name),
        pkg,
        { image: req.image, config: req.config, attach: req.attach, cause },
        `upgrade ${name} to ${req.image}`,
      ),
    );
  }

  /** Goes back to an earlier revision (default: the one before the current), as a new revision. */
  async rollback(name: string, opts: { toRevision?: number } = {}): Promise<InstanceStatus> {
    return this.locked(name, async () => {
      const view = this.view(name);
      const record = view.record;
      const idx = record.revisions.findIndex((r) => r.revision === record.current);
      const target =
        opts.toRevision !== undefined
          ? record.revisions.find((r) => r.revision === opts.toRevision)
          : record.revisions[idx - 1];
      if (!target) {
        if (opts.toRevision !== undefined)
          throw new NotFoundError(
            `instance ${name} has no revision ${opts.toRevision} (revisions: ${record.revisions.map((r) => r.revision).join(', ')})`,
          );
        throw new ConflictError(`instance ${name} has no earlier revision to roll back to`);
      }
      const pkg = await this.#packages.fetch(target.digest, target.image);
      // the new revision shows the reference the user gave for the one it goes back to
      return this.switchTo(
        view,
        pkg,
        {
          image: target.image,
          config: target.config,
          attach: target.attach,
          cause: 'rollback',
          objects: target.objects,
        },
        `roll ${name} back to revision ${target.revision}`,
      );
    });
  }

  async removePackage(ref: string, opts: { force?: boolean } = {}): Promise<PackageRemoval> {
    const pkg = await this.#packages.fetch(ref);
    const users = this.views().filter((v) => v.revision?.digest === pkg.digest);
    if (users.length && !opts.force) {
      throw new ConflictError(
        `package ${ref} is used by instance(s) ${users.map((u) => u.name).join(', ')}: remove them first, or use rmi --force (which removes them too)`,
      );
    }
    const instancesRemoved: string[] = [];
    for (const u of users) {
      await this.remove(u.name, { force: true });
      instancesRemoved.push(u.name);
    }
    const removed = await this.store.remove(ref);
    this.#packages.forget(pkg.digest);
    // the blobs no tag and no instance's revision (what rollback needs) still names go too
    const keep = this.views().flatMap((v) => v.record.revisions.map((r) => r.digest));
    const gc = await this.store.gc({ keep });
    return { removed, instancesRemoved, blobsRemoved: gc.removed.length, freedBytes: gc.freedBytes };
  }

  /** Replaces the trust policy (the cluster's policy resource changed); undefined: every package runs. */
  setTrust(trust: AgentTrust | undefined): void {
    this.#trust = trust;
  }

  get trust(): AgentTrust | undefined {
    return this.#trust;
  }

  // ---- internals ----

  /**
   * The plan's first step: the package must be trusted before any of its objects is opened.
   * `reference` is the one the verb was given (its name picks the policy's rule and where the
   * signatures are; the cached package may have been read under another name). The outcome (a
   * warning in warn mode) is filled in when the step runs.
   */
  private trustStep(plan: Plan, pkg: FetchedPackage, reference: string): TrustOutcome {
    const outcome: TrustOutcome = {};
    const trust = this.#trust;
    if (!trust) return outcome;
    const ref = reference.startsWith('sha256:') ? pkg.reference : reference;
    plan.step(`check the signature of ${ref} (${pkg.digest})`, async () => {
      Object.assign(outcome, await trustCheck(trust, this.store, ref, pkg.digest));
      if (outcome.warning) this.#log(`${ref}: untrusted, running anyway (warn mode): ${outcome.warning}`);
    });
    return outcome;
  }

  /** Upgrade and rollback: plans revision n+1 of `pkg` next to the running one and switches to it. */
  private async switchTo(
    view: InstanceView,
    pkg: FetchedPackage,
    req: UpgradeRequest & { cause: Revision['cause']; objects?: ObjectChoices },
    subject: string,
  ): Promise<InstanceStatus> {
    const name = view.name;
    const record = view.record;
    const from = this.currentRevision(record);
    const fromSpec = view.spec ?? (await this.#packages.fetch(from.digest, from.image)).spec;
    const known = new Set(pkg.spec.config.map((c) => c.name));
    const config = req.config ?? Object.fromEntries(Object.entries(from.config).filter(([k]) => known.has(k)));
    const to = Math.max(...record.revisions.map((r) => r.revision)) + 1;
    const revision: Revision = {
      revision: to,
      image: req.image,
      digest: pkg.digest,
      config,
      attach: req.attach ?? from.attach,
      createdAt: new Date().toISOString(),
      cause: req.cause,
      // a rollback loads what the revision it goes back to loaded; an upgrade decides afresh
      ...(req.objects ? { objects: structuredClone(req.objects) } : {}),
    };
    const planner = this.plannerFor(pkg.spec);
    const target = this.target(name, to, pkg, revision, true);
    const running = record.desired === 'running';
    const old = record.current;
    const plan = new Plan(subject);
    const trusted = this.trustStep(plan, pkg, req.image);
    let realised: Realization = { ids: noKernelIds(), warnings: [], iterOutput: [] };
    if (running) {
      this.recordStep(plan, view, `record the switch to revision ${to}`, (r) => {
        r.transition = { from: old, to, startedAt: revision.createdAt };
      });
      realised = planner.upgrade(plan, name, target, { rev: old, spec: fromSpec, attach: from.attach });
      plan.step('fault point upgrade-after-attach', () => faultPoint('upgrade-after-attach'));
    } else {
      planner.check(plan, target);
    }
    this.recordStep(plan, view, `commit revision ${to}`, (r) => {
      delete r.transition;
      r.current = to;
      if (running) setObjects(revision, realised);
      r.revisions.push(revision);
      if (r.revisions.length > HISTORY_LIMIT) r.revisions.splice(0, r.revisions.length - HISTORY_LIMIT);
    });
    if (running) {
      plan.onCommit(`stop the events of revision ${old}`, () => view.closeEvents());
      planner.retire(plan, name, old);
    }
    try {
      await execute(plan, this.#log);
    } finally {
      if (view.record.current === to) {
        view.spec = pkg.spec;
        if (running) this.realised(view, realised);
      }
    }
    if (running) this.openEvents(view, planner, pkg);
    view.message = trusted.warning ? `untrusted (warn): ${trusted.warning}` : undefined;
    return instanceStatus(view);
  }

  /**
   * After a start: a step that records which objects of the current revision run from their
   * other build, when that changed (the default build is refused now, or loads again).
   */
  private recordObjectsStep(plan: Plan, view: InstanceView, realised: Realization): void {
    plan.step('record which build of its objects runs', () => {
      const rev = view.revision;
      if (!rev || JSON.stringify(rev.objects) === JSON.stringify(realised.objects)) return;
      const next = structuredClone(view.record);
      setObjects(next.revisions.find((r) => r.revision === next.current)!, realised);
      this.#state.save(next);
      view.record = next;
    });
  }

  /** A step that saves a changed copy of the instance's record; its undo saves the record as it was. */
  private recordStep(plan: Plan, view: InstanceView, does: string, change: (r: InstanceRecord) => void): void {
    let before: InstanceRecord | undefined;
    plan.step(
      does,
      () => {
        before = view.record;
        const next = structuredClone(before);
        change(next);
        this.#state.save(next);
        view.record = next;
      },
      () => {
        this.#state.save(before!);
        view.record = before!;
      },
    );
  }

  private target(name: string, rev: number, pkg: FetchedPackage, revision: Revision, again = false): RevisionTarget {
    for (const prog of Object.keys(revision.attach.order ?? {}))
      if (!pkg.spec.programs.some((p) => p.name === prog))
        throw new InvalidError(
          `--order ${prog}: the package has no program "${prog}" (programs: ${pkg.spec.programs.map((p) => p.name).join(', ')})`,
        );
    // the instance's log is as big as its package (or run --log-size) says, from its first record
    this.logs.setLimits(name, instanceLogLimits(pkg.spec, revision.attach));
    return {
      rev,
      pkg,
      config: revision.config,
      attach: revision.attach,
      sharedMaps: this.sharedMaps(pkg.spec, revision.attach, again),
      objects: revision.objects,
      peers: pkg.spec.programs.some((p) => effectiveOrder(p, revision.attach))
        ? peerPrograms(this.#views.values(), name)
        : undefined,
    };
  }

  /**
   * The maps a revision uses from other instances (kbpf.yaml maps.X.share, run --share-map): the
   * pin of each in its owner's running revision. A first run needs every owner running; a
   * restart or upgrade whose owner is gone keeps the map it already has (carried over).
   */
  private sharedMaps(
    spec: PackageSpec,
    attach: Revision['attach'],
    again: boolean,
  ): Map<string, { owner: string; path: string }> | undefined {
    const wanted = new Map<string, string>();
    for (const m of spec.maps) if (m.share) wanted.set(m.name, m.share);
    for (const [map, share] of Object.entries(attach.shareMaps ?? {})) wanted.set(map, share);
    if (wanted.size === 0) return undefined;
    const out = new Map<string, { owner: string; path: string }>();
    for (const [map, share] of wanted) {
      if (!spec.maps.some((m) => m.name === map))
        throw new InvalidError(
          `--share-map ${map}=${share}: the package has no map "${map}" (maps: ${spec.maps.map((m) => m.name).join(', ') || 'none'})`,
        );
      const s = parseShare(share, map);
      if (!s) throw new InvalidError(`--share-map ${map}=${share}: expected MAP=INSTANCE[:MAP]`);
      const owner = this.#views.get(s.instance);
      const path =
        owner && owner.phase === 'running'
          ? this.plannerFor(owner.spec).mapPin(s.instance, owner.record.current, s.map)
          : undefined;
      if (!path) {
        if (again) continue;
        throw new NotFoundError(
          owner
            ? `map ${map} is to be shared from instance ${s.instance}, which has no running map "${s.map}" (its maps: ${(owner.spec?.maps ?? []).map((m) => m.name).join(', ') || 'none'})`
            : `map ${map} is to be shared from instance ${s.instance}, which does not exist (see: kbpf ps)`,
        );
      }
      out.set(map, { owner: s.instance, path });
    }
    return out;
  }

  /** Instances whose running revision uses a map of `owner`. */
  private mapUsersOf(owner: string): string[] {
    const users: string[] = [];
    for (const v of this.#views.values()) {
      if (v.name === owner || !v.spec) continue;
      const shares = [
        ...v.spec.maps.filter((m) => m.share).map((m) => [m.name, m.share!] as const),
        ...Object.entries(v.revision?.attach.shareMaps ?? {}),
      ];
      if (shares.some(([map, share]) => parseShare(share, map)?.instance === owner)) users.push(v.name);
    }
    return users;
  }

  /** Keeps what a plan's steps derived in the view, and writes iterator output to the log. */
  private realised(view: InstanceView, r: Realization): void {
    view.ids = r.ids;
    view.choices = r.choices ?? view.choices;
    view.warnings = [...(r.choices?.warnings ?? []), ...r.warnings];
    for (const { program, entries } of r.iterOutput)
      for (const event of entries) this.logs.append(view.name, { source: program, event });
  }

  private plannerFor(spec: PackageSpec | undefined): InstancePlanner {
    if (!spec) return this.#planners[0]!;
    const planner = this.#planners.find((p) => p.handles(spec));
    if (!planner) throw new InvalidError(`package ${spec.name}:${spec.version} is of no kind this agent runs`);
    return planner;
  }

  private openEvents(view: InstanceView, planner: InstancePlanner, pkg: FetchedPackage): void {
    try {
      view.events = planner.openEvents(view.name, view.record.current, pkg, this.logs);
    } catch (e) {
      view.message = `events unavailable: ${errorMessage(e)}`;
    }
  }

  /**
   * Opens the events once the verb has answered (its caller waits for the programs, not for the
   * reader of their events; the ring keeps what they submit meanwhile), as the next operation
   * on the instance, so a stop or rm that follows finds the events open.
   */
  private openEventsSoon(view: InstanceView, planner: InstancePlanner, pkg: FetchedPackage): void {
    const current = view.record.current;
    setImmediate(() => {
      void this.locked(view.name, async () => {
        if (
          this.#closed ||
          this.#views.get(view.name) !== view ||
          view.phase !== 'running' ||
          view.record.current !== current
        )
          return;
        if (!view.events) this.openEvents(view, planner, pkg);
      });
    });
  }

  private views(): InstanceView[] {
    return [...this.#views.values()].sort((a, b) => a.record.createdAt.localeCompare(b.record.createdAt));
  }

  private view(name: string): InstanceView {
    const v = this.#views.get(name);
    if (!v) throw new NotFoundError(`no instance named "${name}" (see: kbpf ps)`);
    return v;
  }

  private currentRevision(record: InstanceRecord): Revision {
    const rev = record.revisions.find((r) => r.revision === record.current);
    if (!rev) throw new CorruptedError(`instance ${record.name}: revision ${record.current} missing from its history`);
    return rev;
  }

  /** Serialises operations on one instance. */
  private locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.#locks.set(name, settled);
    void settled.then(() => {
      if (this.#locks.get(name) === settled) this.#locks.delete(name);
    });
    return next;
  }
}

/** Records in a revision (or the current one of a record) which objects run from their other build. */
function setObjects(r: Revision | InstanceRecord, realised: Realization): void {
  const rev = 'revisions' in r ? r.revisions.find((x) => x.revision === r.current) : r;
  if (!rev) return;
  if (realised.objects) rev.objects = realised.objects;
  else delete rev.objects;
}
