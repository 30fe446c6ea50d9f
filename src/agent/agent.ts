// The node agent: owns desired state (instances, revisions, config) in its state directory,
// realises it in the kernel through the runtime, pins everything under its bpffs directory,
// pumps events into per-instance logs, and on restart re-adopts what is pinned instead of
// attaching twice. Where desired state comes from (the local API, or the Kubernetes API in a
// cluster) does not change how it is realised here.

import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError } from '../bpf/errors.js';
import { type KernelFeatures, probeFeatures } from '../bpf/features.js';
import { libbpf } from '../bpf/ffi/libbpf.js';
import { libc } from '../bpf/ffi/libc.js';
import { Link } from '../bpf/link/link.js';
import { BpfMap } from '../bpf/map.js';
import { ensureBpffs } from '../bpf/mounts.js';
import { Program } from '../bpf/program.js';
import { PackageError } from '../package/errors.js';
import { LayoutStore, type PackageSummary, type ResolvedPackage } from '../package/layout-store.js';
import { describeAttach, type PackageSpec, resolveAttach } from '../package/package-spec.js';
import { parseReference, referenceName } from '../package/reference.js';
import { jsonValue } from '../util/json.js';
import { EventPump } from './event-pump.js';
import { faultPoint } from './fault.js';
import { LogStore } from './log-store.js';
import type { AgentPaths } from './paths.js';
import { PidLock } from './pid-lock.js';
import { InstancePins, pinnedInstances } from './pins.js';
import { openConfigured, realize, removeRevisionPins, unrealizeLinks } from './realizer.js';
import { NAME_RE, StateStore } from './state-store.js';
import {
  AgentError,
  type InstanceRecord,
  type InstanceStatus,
  type Phase,
  type ProgramStatus,
  type ResolvedImage,
  type Revision,
  type RunRequest,
  type UpgradeRequest,
} from './types.js';

const HISTORY_LIMIT = 10;

interface Live {
  phase: Phase;
  message?: string;
  pump?: EventPump;
  /** events counted by pumps that were closed (upgrade, stop) */
  received: number;
  lost: number;
}

export interface AgentOptions {
  log?: (msg: string) => void;
  /** hold BPF_ENABLE_STATS(BPF_STATS_RUN_TIME) while running: run counts and times in metrics */
  bpfStats?: boolean;
}

/** The name part of a reference (registry host and port kept): `127.0.0.1:5000/x/y:1.0` -> `127.0.0.1:5000/x/y`. */
function repositoryOf(ref: string): string {
  return referenceName(parseReference(ref));
}

export class Agent {
  readonly store: LayoutStore;
  readonly logs: LogStore;
  readonly #state: StateStore;
  readonly #live = new Map<string, Live>();
  readonly #images = new Map<string, ResolvedImage>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #log: (msg: string) => void;
  readonly #wantStats: boolean;
  #statsFd = -1;
  readonly #pidLock: PidLock;

  constructor(
    readonly paths: AgentPaths,
    opts: AgentOptions = {},
  ) {
    this.#wantStats = !!opts.bpfStats;
    this.#pidLock = new PidLock(join(paths.stateDir, 'agent.pid'));
    mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
    this.store = new LayoutStore(paths.storeDir);
    this.logs = new LogStore(paths.logsDir);
    this.#state = new StateStore(paths.instancesDir);
    this.#log = opts.log ?? ((m) => process.stderr.write(`kbpf agent: ${m}\n`));
  }

  // ---- life cycle of the agent itself ----

  /** Re-adopts pinned instances, reconciles them to desired state, removes orphans. */
  async start(): Promise<void> {
    this.#pidLock.acquire();
    ensureBpffs();
    mkdirSync(this.paths.bpffsDir, { recursive: true });
    if (this.#wantStats) {
      this.#statsFd = libbpf.enableStats(0 /* BPF_STATS_RUN_TIME */);
      if (this.#statsFd < 0)
        this.#log(`cannot enable BPF stats: ${new BpfError('enable', 'BPF stats', -this.#statsFd).message}`);
    }
    await this.store.init();
    const records = this.#state.list();
    const known = new Set(records.map((r) => r.name));
    for (const dir of pinnedInstances(this.paths.bpffsDir)) {
      if (known.has(dir)) continue;
      this.#log(`removing orphaned pins of unknown instance "${dir}"`);
      this.teardown(new InstancePins(this.paths.bpffsDir, dir));
    }
    for (const record of records) {
      await this.locked(record.name, () => this.recover(record));
    }
  }

  /** Stops reading events. Programs keep running; a restarted agent adopts them. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#live.values()].map((l) => l.pump?.close()));
    await this.logs.close();
    if (this.#statsFd >= 0) libc.close(this.#statsFd);
    this.#statsFd = -1;
    this.#pidLock.release();
  }

  private async recover(record: InstanceRecord): Promise<void> {
    const pins = this.pins(record.name);
    const live = this.liveOf(record.name);
    if (record.transition) {
      const { from, to } = record.transition;
      this.#log(
        `${record.name}: revision ${to} did not commit before the agent stopped; returning to revision ${from}`,
      );
      this.switchLinksBack(pins, from);
      if (to !== from) pins.removeRevision(to);
      delete record.transition;
      this.#state.save(record);
      live.message = `an upgrade to revision ${to} was interrupted by an agent restart and rolled back`;
    }
    for (const rev of pins.revisions()) if (rev !== record.current) pins.removeRevision(rev);
    const rev = this.currentRevision(record);
    try {
      const image = await this.resolveImage(rev.digest, rev.image);
      if (record.desired === 'running') {
        if (this.isComplete(pins, record.current, image.spec)) {
          this.#log(`${record.name}: adopted revision ${record.current} (programs kept running)`);
        } else {
          this.#log(`${record.name}: revision ${record.current} is not fully in the kernel; attaching it`);
          if (pins.revisions().includes(record.current)) unrealizeLinks(pins, record.current);
          realize({
            pins,
            rev: record.current,
            image,
            config: rev.config,
            attach: rev.attach,
            carryMapsFrom: record.current,
          });
        }
        live.phase = 'running';
        this.startPump(record.name, image, record.current);
      } else {
        if (pins.revisions().includes(record.current)) unrealizeLinks(pins, record.current);
        live.phase = 'stopped';
      }
    } catch (e) {
      live.phase = 'failed';
      live.message = (e as Error).message;
      this.#log(`${record.name}: ${live.message}`);
    }
  }

  /** After a crash mid-upgrade: every link of revision `rev` points at that revision's program again. */
  private switchLinksBack(pins: InstancePins, rev: number): void {
    for (const name of pins.names(rev, 'links')) {
      if (!pins.has(rev, 'progs', name)) continue;
      const link = Link.fromPin(pins.path(rev, 'links', name));
      const prog = Program.fromPin(pins.path(rev, 'progs', name));
      try {
        if (link.info().progId !== prog.info().id) link.update(prog);
      } finally {
        link.close();
        prog.close();
      }
    }
  }

  private isComplete(pins: InstancePins, rev: number, spec: PackageSpec): boolean {
    if (!pins.revisions().includes(rev)) return false;
    return spec.programs.every(
      (p) => pins.has(rev, 'progs', p.name) && (p.attach.hook === 'none' || pins.has(rev, 'links', p.name)),
    );
  }

  // ---- queries ----

  list(): InstanceStatus[] {
    return this.#state.list().map((r) => this.status(r));
  }

  inspect(name: string): InstanceStatus {
    return this.status(this.record(name));
  }

  history(name: string): Revision[] {
    return this.record(name).revisions;
  }

  maps(name: string, only?: string): { name: string; type: string; entries: [unknown, unknown][] }[] {
    const record = this.record(name);
    const pins = this.pins(name);
    const names = pins.names(record.current, 'maps').filter((m) => !only || m === only);
    if (only && names.length === 0)
      throw new AgentError(
        404,
        `instance ${name} has no pinned map "${only}" (maps: ${pins.names(record.current, 'maps').join(', ') || 'none'})`,
      );
    return names.map((m) => {
      const map = BpfMap.fromPin(pins.path(record.current, 'maps', m));
      try {
        const type = map.type;
        const readable = ![
          'ringbuf',
          'perf_event_array',
          'sockmap',
          'sockhash',
          'prog_array',
          'queue',
          'stack',
          'bloom_filter',
        ].includes(type);
        const entries = readable ? map.entries() : [];
        const list: [unknown, unknown][] = [];
        for (const [k, v] of entries) {
          list.push([jsonValue(k), jsonValue(v)]);
          if (list.length >= 10_000) break;
        }
        return { name: m, type, entries: list };
      } finally {
        map.close();
      }
    });
  }

  async images(): Promise<PackageSummary[]> {
    return this.store.list();
  }

  async inspectImage(ref: string): Promise<{ reference: string; digest: string; spec: PackageSpec }> {
    const img = await this.resolveImage(ref);
    return { reference: img.reference, digest: img.digest, spec: img.spec };
  }

  async doctor(): Promise<KernelFeatures> {
    return probeFeatures();
  }

  metricsSnapshot(): {
    instances: {
      name: string;
      phase: string;
      eventsReceived: number;
      eventsLost: number;
      programs: { name: string; progId?: number; runCount?: bigint; runTimeNs?: bigint }[];
    }[];
  } {
    return {
      instances: this.#state.list().map((r) => {
        const live = this.liveOf(r.name);
        const pins = this.pins(r.name);
        const programs = pins.names(r.current, 'progs').map((p) => {
          try {
            const prog = Program.fromPin(pins.path(r.current, 'progs', p));
            try {
              const info = prog.info();
              return { name: p, progId: info.id, runCount: info.runCount, runTimeNs: info.runTimeNs };
            } finally {
              prog.close();
            }
          } catch {
            return { name: p };
          }
        });
        return {
          name: r.name,
          phase: live.phase,
          eventsReceived: live.received + (live.pump?.received ?? 0),
          eventsLost: live.lost + (live.pump?.lost ?? 0),
          programs,
        };
      }),
    };
  }

  // ---- verbs that change state ----

  async run(req: RunRequest): Promise<InstanceStatus> {
    const image = await this.resolveImage(req.image);
    const name = req.name ?? `${image.spec.name}-${randomBytes(3).toString('hex')}`;
    if (!NAME_RE.test(name))
      throw new AgentError(
        400,
        `invalid instance name "${name}": use lower-case letters, digits, '-', '_' and '.', at most 63 characters`,
      );
    return this.locked(name, async () => {
      if (this.#state.get(name))
        throw new AgentError(409, `an instance named "${name}" already exists (remove it with: kbpf rm ${name})`);
      const config = req.config ?? {};
      for (const o of openConfigured(image, config).values()) o.close(); // refuse bad config before the kernel sees anything
      const revision: Revision = {
        revision: 1,
        image: req.image,
        digest: image.digest,
        config,
        attach: req.attach ?? {},
        createdAt: new Date().toISOString(),
        cause: 'run',
      };
      const pins = this.pins(name);
      try {
        realize({ pins, rev: 1, image, config, attach: revision.attach });
      } catch (e) {
        pins.removeAll();
        throw this.asAgentError(e, `run ${req.image}`);
      }
      faultPoint('run-after-attach');
      const record: InstanceRecord = {
        name,
        desired: 'running',
        current: 1,
        revisions: [revision],
        createdAt: revision.createdAt,
      };
      try {
        this.#state.save(record);
      } catch (e) {
        this.teardown(pins);
        throw e;
      }
      const live = this.liveOf(name);
      live.phase = 'running';
      live.message = undefined;
      this.startPump(name, image, 1);
      return this.status(record);
    });
  }

  async stop(name: string): Promise<InstanceStatus> {
    return this.locked(name, async () => {
      const record = this.record(name);
      record.desired = 'stopped';
      this.#state.save(record);
      await this.stopPump(name);
      unrealizeLinks(this.pins(name), record.current);
      const live = this.liveOf(name);
      live.phase = 'stopped';
      live.message = undefined;
      return this.status(record);
    });
  }

  async startInstance(name: string): Promise<InstanceStatus> {
    return this.locked(name, async () => {
      const record = this.record(name);
      const live = this.liveOf(name);
      if (record.desired === 'running' && live.phase === 'running') return this.status(record);
      const rev = this.currentRevision(record);
      const image = await this.resolveImage(rev.digest, rev.image);
      const pins = this.pins(name);
      const carry = pins.revisions().at(-1);
      try {
        realize({ pins, rev: record.current, image, config: rev.config, attach: rev.attach, carryMapsFrom: carry });
      } catch (e) {
        throw this.asAgentError(e, `start ${name}`);
      }
      if (carry !== undefined && carry !== record.current) pins.removeRevision(carry);
      record.desired = 'running';
      this.#state.save(record);
      live.phase = 'running';
      live.message = undefined;
      this.startPump(name, image, record.current);
      return this.status(record);
    });
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.locked(name, async () => {
      const record = this.record(name);
      if (record.desired === 'running' && !opts.force) {
        throw new AgentError(409, `instance ${name} is running: stop it first, or remove it with rm -f`);
      }
      await this.stopPump(name);
      this.teardown(this.pins(name));
      this.#state.delete(name);
      this.#live.delete(name);
      await this.logs.remove(name);
    });
  }

  async upgrade(name: string, req: UpgradeRequest, cause: Revision['cause'] = 'upgrade'): Promise<InstanceStatus> {
    const image = await this.resolveImage(req.image);
    return this.locked(name, async () => {
      const record = this.record(name);
      const from = this.currentRevision(record);
      const oldImage = await this.resolveImage(from.digest, from.image);
      const known = new Set(image.spec.config.map((c) => c.name));
      const config = req.config ?? Object.fromEntries(Object.entries(from.config).filter(([k]) => known.has(k)));
      for (const o of openConfigured(image, config).values()) o.close();
      const to = Math.max(...record.revisions.map((r) => r.revision)) + 1;
      const revision: Revision = {
        revision: to,
        image: req.image,
        digest: image.digest,
        config,
        attach: req.attach ?? from.attach,
        createdAt: new Date().toISOString(),
        cause,
      };
      const pins = this.pins(name);
      if (record.desired === 'running') {
        record.transition = { from: record.current, to, startedAt: revision.createdAt };
        this.#state.save(record);
        try {
          realize({
            pins,
            rev: to,
            image,
            config,
            attach: revision.attach,
            carryMapsFrom: record.current,
            linksFrom: { rev: record.current, attach: from.attach, spec: oldImage.spec },
          });
        } catch (e) {
          delete record.transition;
          this.#state.save(record);
          throw this.asAgentError(e, `upgrade ${name} to ${req.image}`);
        }
        faultPoint('upgrade-after-attach');
      }
      // commit
      const old = record.current;
      delete record.transition;
      record.current = to;
      record.revisions.push(revision);
      if (record.revisions.length > HISTORY_LIMIT) record.revisions.splice(0, record.revisions.length - HISTORY_LIMIT);
      this.#state.save(record);
      if (record.desired === 'running') {
        await this.stopPump(name);
        await removeRevisionPins(pins, old);
        this.startPump(name, image, to);
      }
      const live = this.liveOf(name);
      live.message = undefined;
      return this.status(record);
    });
  }

  /** Goes back to an earlier revision (default: the one before the current), as a new revision. */
  async rollback(name: string, opts: { toRevision?: number } = {}): Promise<InstanceStatus> {
    const record = this.record(name);
    const idx = record.revisions.findIndex((r) => r.revision === record.current);
    const target =
      opts.toRevision !== undefined
        ? record.revisions.find((r) => r.revision === opts.toRevision)
        : record.revisions[idx - 1];
    if (!target) {
      throw new AgentError(
        409,
        opts.toRevision !== undefined
          ? `instance ${name} has no revision ${opts.toRevision} (revisions: ${record.revisions.map((r) => r.revision).join(', ')})`
          : `instance ${name} has no earlier revision to roll back to`,
      );
    }
    const ref = await this.referenceFor(target);
    return this.upgrade(name, { image: ref, config: target.config, attach: target.attach }, 'rollback');
  }

  async removeImage(
    ref: string,
    opts: { force?: boolean } = {},
  ): Promise<{ removed: string[]; instancesRemoved: string[] }> {
    const img = await this.resolveImage(ref);
    const users = this.#state
      .list()
      .filter((r) => r.revisions.some((v) => v.digest === img.digest && v.revision === r.current));
    if (users.length && !opts.force) {
      throw new AgentError(
        409,
        `image ${ref} is used by instance(s) ${users.map((u) => u.name).join(', ')}: remove them first, or use rmi --force (which removes them too)`,
      );
    }
    const instancesRemoved: string[] = [];
    for (const u of users) {
      await this.remove(u.name, { force: true });
      instancesRemoved.push(u.name);
    }
    const removed = await this.store.remove(ref);
    this.#images.delete(img.digest);
    return { removed, instancesRemoved };
  }

  // ---- internals ----

  private pins(name: string): InstancePins {
    return new InstancePins(this.paths.bpffsDir, name);
  }

  private record(name: string): InstanceRecord {
    const r = this.#state.get(name);
    if (!r) throw new AgentError(404, `no instance named "${name}" (see: kbpf ps)`);
    return r;
  }

  private currentRevision(record: InstanceRecord): Revision {
    const rev = record.revisions.find((r) => r.revision === record.current);
    if (!rev) throw new AgentError(500, `instance ${record.name}: revision ${record.current} missing from its history`);
    return rev;
  }

  private liveOf(name: string): Live {
    let l = this.#live.get(name);
    if (!l) {
      l = { phase: 'pending', received: 0, lost: 0 };
      this.#live.set(name, l);
    }
    return l;
  }

  private startPump(name: string, image: ResolvedImage, rev: number): void {
    if (image.spec.events.length === 0) return;
    const live = this.liveOf(name);
    try {
      live.pump = new EventPump(name, image, this.pins(name), rev, this.logs).start();
    } catch (e) {
      live.message = `events unavailable: ${(e as Error).message}`;
    }
  }

  private async stopPump(name: string): Promise<void> {
    const live = this.#live.get(name);
    if (!live?.pump) return;
    const pump = live.pump;
    live.pump = undefined;
    await pump.close();
    live.received += pump.received;
    live.lost += pump.lost;
  }

  /** Detaches and unpins everything of an instance. */
  private teardown(pins: InstancePins): void {
    for (const rev of pins.revisions()) {
      try {
        unrealizeLinks(pins, rev);
      } catch (e) {
        this.#log(`while removing ${pins.instance} revision ${rev}: ${(e as Error).message}`);
      }
    }
    pins.removeAll();
  }

  /** Resolves a reference in the local store, with the package's objects (cached by digest). */
  private async resolveImage(ref: string, fallbackRef?: string): Promise<ResolvedImage> {
    if (ref.startsWith('sha256:')) {
      const hit = this.#images.get(ref);
      if (hit) return hit;
      if (fallbackRef) return this.resolveImage(`${repositoryOf(fallbackRef)}@${ref}`);
    }
    let pkg: ResolvedPackage;
    try {
      pkg = await this.store.resolve(ref);
    } catch (e) {
      if (e instanceof PackageError) throw new AgentError(404, `image ${ref}: ${e.message}`);
      throw e;
    }
    const hit = this.#images.get(pkg.digest);
    if (hit) return hit;
    const spec = pkg.config as unknown as PackageSpec;
    if (!Array.isArray(spec.objects) || !Array.isArray(spec.programs))
      throw new AgentError(400, `image ${ref} is not a kbpf package`);
    const objects = new Map<string, Uint8Array>();
    for (const file of spec.objects) objects.set(file, (await this.store.getLayer(pkg, file)).bytes);
    const image: ResolvedImage = { reference: pkg.reference, digest: pkg.digest, spec, objects };
    this.#images.set(pkg.digest, image);
    return image;
  }

  private async referenceFor(rev: Revision): Promise<string> {
    return `${repositoryOf(rev.image)}@${rev.digest}`;
  }

  private status(record: InstanceRecord): InstanceStatus {
    const rev = this.currentRevision(record);
    const image = this.#images.get(rev.digest);
    const live = this.liveOf(record.name);
    const pins = this.pins(record.name);
    const programs: ProgramStatus[] = (image?.spec.programs ?? []).map((p) => {
      const st: ProgramStatus = { name: p.name, type: p.type, attach: describeAttach(resolveAttach(p, rev.attach)) };
      try {
        if (pins.has(record.current, 'links', p.name)) {
          const link = Link.fromPin(pins.path(record.current, 'links', p.name));
          try {
            const info = link.info();
            st.linkId = info.id;
            st.progId = info.progId;
          } finally {
            link.close();
          }
        } else if (pins.has(record.current, 'progs', p.name)) {
          const prog = Program.fromPin(pins.path(record.current, 'progs', p.name));
          try {
            st.progId = prog.info().id;
          } finally {
            prog.close();
          }
        }
      } catch {
        /* reported through phase/message */
      }
      return st;
    });
    const maps = (image?.spec.maps ?? [])
      .filter((m) => m.pin)
      .map((m) => {
        let mapId: number | undefined;
        if (pins.has(record.current, 'maps', m.name)) {
          try {
            const map = BpfMap.fromPin(pins.path(record.current, 'maps', m.name));
            mapId = map.id;
            map.close();
          } catch {
            /* gone */
          }
        }
        return { name: m.name, type: m.type, mapId };
      });
    return {
      name: record.name,
      image: rev.image,
      digest: rev.digest,
      package: { name: image?.spec.name ?? '?', version: image?.spec.version ?? '?' },
      revision: record.current,
      desired: record.desired,
      phase: live.phase,
      message: live.message,
      createdAt: record.createdAt,
      programs,
      maps,
      config: rev.config,
      events: { received: live.received + (live.pump?.received ?? 0), lost: live.lost + (live.pump?.lost ?? 0) },
    };
  }

  private asAgentError(e: unknown, what: string): Error {
    if (e instanceof AgentError) return e;
    if (e instanceof BpfError) return new AgentError(400, `${what}: ${e.message}`, { code: e.code });
    return e as Error;
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
