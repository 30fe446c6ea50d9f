// The planner of instances that are Wasm guests (packages with a `guest` section): a revision is
// one guest process (src/wasm/guest-process.ts) running the package's module against the
// wasm_bpf host, within its capability manifest, memory limit and CPU budget. The guest loads
// and attaches its own programs; the agent pins nothing of it but its maps, under
// <bpffsDir>/<instance>/guest-rev-<n>/, for `kbpf maps` (removed when the guest ends).
//
// A guest does not outlive its agent: when the agent stops (or is killed), the guest's process
// is killed with it and the kernel releases what the guest loaded. A restarted agent starts the
// guests meant to run again, from the start (their kernel objects loaded anew, maps empty).
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidError } from '../errors.js';
import type { LayoutStore } from '../package/layout-store.js';
import type { PackageSpec } from '../package/package-spec.js';
import { type GuestProcess, GuestSpares, type HostEvent } from '../wasm/index.js';
import type { EventSink } from './event-pump.js';
import { type FetchedPackage, repositoryOf } from './package-cache.js';
import type { Plan } from './plan.js';
import type { Adopted, EventSource, InstancePlanner, Realization, RevisionTarget, RunningRevision } from './planner.js';
import { type KernelIds, noKernelIds } from './realizer.js';

/** Lines held for a guest whose log is not open yet (they are counted as lost past this). */
const MAX_HELD_LINES = 10_000;
const MODULE_CACHE = 8;

interface RunningGuest {
  instance: string;
  rev: number;
  process: GuestProcess;
  ids: KernelIds;
  sink?: EventSink;
  held: object[];
  received: number;
  lost: number;
}

export class WasmPlanner implements InstancePlanner {
  readonly kind = 'wasm-guest';
  readonly #guests = new Map<string, RunningGuest>();
  #spares?: GuestSpares;
  readonly #modules = new Map<string, Uint8Array>();

  constructor(
    readonly bpffsDir: string,
    readonly store: LayoutStore,
  ) {}

  handles(spec: PackageSpec): boolean {
    return spec.guest !== undefined;
  }

  check(plan: Plan, target: RevisionTarget): void {
    plan.step(`check the guest module of ${target.pkg.reference}`, async () => {
      const bytes = await this.module(target.pkg);
      new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
    });
  }

  run(plan: Plan, instance: string, target: RevisionTarget): Realization {
    return this.realize(plan, instance, target);
  }

  start(plan: Plan, instance: string, target: RevisionTarget): Realization {
    plan.step(`stop what is left of the guest of ${instance}`, () => this.stopGuest(instance, target.rev));
    return this.realize(plan, instance, target);
  }

  upgrade(plan: Plan, instance: string, target: RevisionTarget, _from: RunningRevision): Realization {
    return this.realize(plan, instance, target);
  }

  retire(plan: Plan, instance: string, rev: number): void {
    plan.onCommit(`stop the guest of revision ${rev}`, () => this.stopGuest(instance, rev));
  }

  stop(plan: Plan, instance: string, rev: number): void {
    plan.step(`stop the guest of revision ${rev}`, () => this.stopGuest(instance, rev));
  }

  teardown(instance: string, _log: (msg: string) => void): void {
    for (const g of this.guestsOf(instance)) {
      this.#guests.delete(key(instance, g.rev));
      void g.process.stop();
    }
    rmSync(join(this.bpffsDir, instance), { recursive: true, force: true });
  }

  /** Instances with guest map pins left on the node (an agent that was killed leaves them). */
  realised(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.bpffsDir);
    } catch {
      return [];
    }
    return names.filter((n) => {
      try {
        return readdirSync(join(this.bpffsDir, n)).some((d) => d.startsWith('guest-rev-'));
      } catch {
        return false;
      }
    });
  }

  adopt(instance: string): Adopted {
    // nothing of a guest survives its agent but the pins of its maps: drop them, start it again
    rmSync(join(this.bpffsDir, instance), { recursive: true, force: true });
    return { complete: false, ids: noKernelIds() };
  }

  mapPin(instance: string, rev: number, map: string): string | undefined {
    const g = this.#guests.get(key(instance, rev));
    if (!g || g.process.end || !g.ids.maps.has(map)) return undefined;
    return join(this.pinDir(instance, rev), map);
  }

  openEvents(instance: string, rev: number, _pkg: FetchedPackage, sink: EventSink): EventSource | undefined {
    const g = this.#guests.get(key(instance, rev));
    if (!g) return undefined;
    g.sink = sink;
    for (const r of g.held.splice(0)) sink.append(instance, r);
    return {
      get received() {
        return g.received;
      },
      get lost() {
        return g.lost;
      },
      get ended() {
        return g.process.end;
      },
      close: async () => {
        if (g.sink === sink) g.sink = undefined;
      },
    };
  }

  async close(): Promise<void> {
    this.#spares?.close();
    this.#spares = undefined;
    const all = [...this.#guests.values()];
    this.#guests.clear();
    await Promise.all(all.map((g) => g.process.stop()));
  }

  /** The guest running revision `rev` of `instance` (for tests and the benchmark). */
  guest(instance: string, rev: number): GuestProcess | undefined {
    return this.#guests.get(key(instance, rev))?.process;
  }

  // ---- internals ----

  private realize(plan: Plan, instance: string, target: RevisionTarget): Realization {
    const { rev, pkg } = target;
    const guest = pkg.spec.guest;
    if (!guest) throw new InvalidError(`package ${pkg.reference} is not a Wasm guest`);
    const ids = noKernelIds();
    plan.step(
      `start the guest of revision ${rev}`,
      async () => {
        const module = await this.module(pkg);
        const pinDir = this.pinDir(instance, rev);
        rmSync(pinDir, { recursive: true, force: true });
        mkdirSync(pinDir, { recursive: true });
        const g: RunningGuest = { instance, rev, process: undefined as never, ids, held: [], received: 0, lost: 0 };
        // the first guest since the agent started starts cold; from then on a spare process waits
        this.#spares ??= new GuestSpares();
        g.process = this.#spares.start({
          name: guest.module.replace(/\.wasm$/, ''),
          args: guest.args,
          module,
          capabilities: guest.capabilities,
          limits: guest.limits,
          pinDir,
          onRecord: (r) => this.record(g, r),
          onHostEvent: (e) => applyHostEvent(ids, e),
        });
        void g.process.exited.then(() => {
          ids.progs.clear();
          ids.links.clear();
          ids.maps.clear();
        });
        this.#guests.set(key(instance, rev), g);
        try {
          await g.process.started;
        } catch (e) {
          this.#guests.delete(key(instance, rev));
          await g.process.stop();
          throw e;
        }
      },
      () => this.stopGuest(instance, rev),
    );
    return { ids, warnings: [], iterOutput: [] };
  }

  private record(g: RunningGuest, r: { source: string; line: string }): void {
    g.received++;
    if (g.sink) g.sink.append(g.instance, r);
    else if (g.held.length < MAX_HELD_LINES) g.held.push(r);
    else g.lost++;
  }

  private async stopGuest(instance: string, rev: number): Promise<void> {
    const g = this.#guests.get(key(instance, rev));
    if (!g) return;
    this.#guests.delete(key(instance, rev));
    await g.process.stop();
  }

  private guestsOf(instance: string): RunningGuest[] {
    return [...this.#guests.values()].filter((g) => g.instance === instance);
  }

  private pinDir(instance: string, rev: number): string {
    return join(this.bpffsDir, instance, `guest-rev-${rev}`);
  }

  private async module(pkg: FetchedPackage): Promise<Uint8Array> {
    const hit = this.#modules.get(pkg.digest);
    if (hit) return hit;
    const stored = await this.store.resolve(`${repositoryOf(pkg.reference)}@${pkg.digest}`);
    const bytes = (await this.store.getLayer(stored, pkg.spec.guest!.module)).bytes;
    this.#modules.set(pkg.digest, bytes);
    while (this.#modules.size > MODULE_CACHE) this.#modules.delete(this.#modules.keys().next().value!);
    return bytes;
  }
}

function key(instance: string, rev: number): string {
  return `${instance}\u0000${rev}`;
}

function applyHostEvent(ids: KernelIds, e: HostEvent): void {
  switch (e.t) {
    case 'loaded':
      for (const [n, id] of Object.entries(e.progs)) ids.progs.set(n, id);
      for (const [n, id] of Object.entries(e.maps)) ids.maps.set(n, id);
      break;
    case 'attached':
      ids.links.set(e.program, e.link);
      break;
    case 'closed':
      for (const n of e.progs) {
        ids.progs.delete(n);
        ids.links.delete(n);
      }
      for (const n of e.maps) ids.maps.delete(n);
      break;
  }
}
