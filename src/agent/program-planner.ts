// The planner of instances made of BPF programs in the kernel. A revision is realised in these
// steps, each with its undo:
//
//   choose the programs this kernel runs         (program-choice.ts: variants, skipped ones, or
//                                                 a refusal naming the feature; nothing loaded yet)
//   open the package's objects with the config   (validates config and map sizes before the
//                                                 kernel sees them; programs not chosen are not
//                                                 loaded; the open objects give the event codecs)
//   use maps shared by other instances           (same layout, or refused)
//   carry maps over from an earlier revision     (same name and layout: the map is reused)
//   load the objects
//   pin maps, global variables' data sections    undo: drop the revision's pins
//   (.bss, .data, .rodata) and programs under
//   rev-<n>/
//   attach the programs, or switch the links     undo: switch the links back
//   of the running revision in place, pin links
//
// Everything it pins lives under <bpffsDir>/<instance>/ (pins.ts).
import { rmSync } from 'node:fs';
import {
  BpfMap,
  type BpfObject,
  isGlobalSection,
  Link,
  onlyStructOpsMap,
  Program,
  readIterBytes,
  switchStructOps,
  switchStructOpsBack,
  USDT_IP_MAP,
  USDT_SPECS_MAP,
} from 'kbpf/bpf';
import { ConflictError, InvalidError } from '../errors.js';
import { type AttachOverrides, describeAttach, type PackageSpec, resolveAttach } from '../package/package-spec.js';
import { compileProcessor } from '../wasm/processor.js';
import { setAttachGlobals } from './attach-globals.js';
import { EventPump, type EventSink, eventCodecs, eventCodecsOf } from './event-pump.js';
import { positionFor } from './hook-order.js';
import { iterEntries } from './iter-output.js';
import { loadObjects, recordedAlternatives } from './object-choice.js';
import type { FetchedPackage } from './package-cache.js';
import { globalsPinName, InstancePins, pinnedInstances } from './pins.js';
import type { Plan } from './plan.js';
import type { Adopted, EventSource, InstancePlanner, Realization, RevisionTarget, RunningRevision } from './planner.js';
import { fillProgArrays } from './prog-arrays.js';
import { choosePrograms, type ProgramChoices } from './program-choice.js';
import {
  attachProgram,
  describeLayout,
  isComplete,
  layoutOf,
  linkPinNames,
  noKernelIds,
  openConfigured,
  pinnedIds,
  removeRevisionPins,
  sameLayout,
  switchLinksBack,
  unrealizeLinks,
  updatable,
} from './realizer.js';

const USDT_MAPS = new Set([USDT_SPECS_MAP, USDT_IP_MAP]);

interface RealizeOptions {
  /** maps pinned in this revision are reused when name and layout match (upgrade, start) */
  carryMapsFrom?: number;
  /** links of this revision are switched to the new programs in place where possible */
  linksFrom?: RunningRevision;
}

export class ProgramPlanner implements InstancePlanner {
  readonly kind = 'bpf-programs';

  constructor(readonly bpffsDir: string) {}

  pins(instance: string): InstancePins {
    return new InstancePins(this.bpffsDir, instance);
  }

  handles(spec: PackageSpec): boolean {
    return Array.isArray(spec.objects) && Array.isArray(spec.programs) && spec.guest === undefined;
  }

  check(plan: Plan, target: RevisionTarget): void {
    plan.step(`check which programs of ${target.pkg.reference} this kernel runs`, () => {
      choosePrograms(target.pkg.spec, target.attach);
    });
    plan.step(`check the config of ${target.pkg.reference}`, () => {
      for (const o of openConfigured(target.pkg, target.config, target.attach.mapSizes).values()) o.close();
    });
  }

  run(plan: Plan, instance: string, target: RevisionTarget): Realization {
    return this.realize(plan, instance, target, {});
  }

  start(plan: Plan, instance: string, target: RevisionTarget): Realization {
    const pins = this.pins(instance);
    const carry = pins.revisions().at(-1);
    const { rev } = target;
    if (pins.names(rev, 'links').length || pins.names(rev, 'progs').length)
      plan.step(`detach what is left of revision ${rev}`, () => unrealizeLinks(pins, rev));
    const out = this.realize(plan, instance, target, { carryMapsFrom: carry });
    if (carry !== undefined && carry !== rev) plan.onCommit(`drop revision ${carry}`, () => pins.removeRevision(carry));
    return out;
  }

  upgrade(plan: Plan, instance: string, target: RevisionTarget, from: RunningRevision): Realization {
    return this.realize(plan, instance, target, { carryMapsFrom: from.rev, linksFrom: from });
  }

  retire(plan: Plan, instance: string, rev: number): void {
    const pins = this.pins(instance);
    plan.onCommit(`drop revision ${rev}`, () => removeRevisionPins(pins, rev));
  }

  stop(plan: Plan, instance: string, rev: number): void {
    const pins = this.pins(instance);
    plan.step(`detach the programs of revision ${rev}`, () => unrealizeLinks(pins, rev));
  }

  teardown(instance: string, log: (msg: string) => void): void {
    const pins = this.pins(instance);
    for (const rev of pins.revisions()) {
      try {
        unrealizeLinks(pins, rev);
      } catch (e) {
        log(`while removing ${instance} revision ${rev}: ${(e as Error).message}`);
      }
    }
    pins.removeAll();
  }

  realised(): string[] {
    return pinnedInstances(this.bpffsDir);
  }

  adopt(
    instance: string,
    rev: number,
    spec: PackageSpec | undefined,
    transition?: { from: number; to: number },
    attach: AttachOverrides = {},
  ): Adopted {
    const pins = this.pins(instance);
    if (transition) {
      switchLinksBack(pins, transition.from);
      if (transition.to !== transition.from) pins.removeRevision(transition.to);
    }
    for (const r of pins.revisions()) if (r !== rev) pins.removeRevision(r);
    if (!spec) return { complete: false, ids: pinnedIds(pins, rev) };
    let choices: ProgramChoices | undefined;
    try {
      choices = choosePrograms(spec, attach);
    } catch {
      // it ran here before: what is pinned is what runs
    }
    const runs = choices ? runningNames(choices) : undefined;
    return { complete: isComplete(pins, rev, spec, runs), ids: pinnedIds(pins, rev), choices };
  }

  mapPin(instance: string, rev: number, map: string): string | undefined {
    const pins = this.pins(instance);
    return pins.has(rev, 'maps', map) ? pins.path(rev, 'maps', map) : undefined;
  }

  globalsPins(instance: string, rev: number): { name: string; path: string }[] {
    const pins = this.pins(instance);
    return pins.names(rev, 'globals').map((name) => ({ name, path: pins.path(rev, 'globals', name) }));
  }

  openEvents(instance: string, rev: number, pkg: FetchedPackage, sink: EventSink): EventSource | undefined {
    if (pkg.spec.events.length === 0) return undefined;
    if (pkg.spec.processor && pkg.processor && !pkg.processorModule)
      pkg.processorModule = compileProcessor(pkg.processor);
    const processor =
      pkg.spec.processor && pkg.processorModule ? { module: pkg.processorModule, spec: pkg.spec.processor } : undefined;
    return new EventPump(
      instance,
      pkg.spec.events,
      eventCodecs(pkg),
      this.pins(instance),
      rev,
      sink,
      processor,
    ).start();
  }

  private realize(plan: Plan, instance: string, target: RevisionTarget, opts: RealizeOptions): Realization {
    const pins = this.pins(instance);
    const { rev, pkg } = target;
    const spec = pkg.spec;
    const out: Realization = { ids: noKernelIds(), warnings: [], iterOutput: [] };
    let objects = new Map<string, BpfObject>();
    const opened: { close(): void }[] = [];
    let runs = new Set<string>();
    plan.always(() => {
      for (const o of opened) o.close();
      for (const o of objects.values()) o.close();
    });

    plan.step(`check which programs of ${pkg.reference} this kernel runs`, () => {
      out.choices = choosePrograms(spec, target.attach);
      runs = runningNames(out.choices);
    });

    // the objects to open from their other build; the maps they use of others (replayed when the
    // load step opens the objects again)
    const alternative = recordedAlternatives(pkg, target.objects);
    const reused: { object: string; map: string; from: BpfMap }[] = [];
    const reuse = (object: string, map: string, from: BpfMap) => {
      objects.get(object)!.reuseMap(map, from);
      reused.push({ object, map, from });
    };
    const open = (alt: ReadonlySet<string>) => {
      objects = openConfigured(pkg, target.config, target.attach.mapSizes, alt);
      setAttachGlobals(objects.values(), cgroupOfChoices(out.choices!));
      for (const p of spec.programs) if (!runs.has(p.name)) objects.get(p.object)!.program(p.name).setAutoload(false);
    };
    plan.step(`open the objects of ${pkg.reference} with the config`, () => {
      open(alternative);
      pkg.eventCodecs ??= eventCodecsOf(spec, (file) => objects.get(file)!);
      out.codecs = pkg.eventCodecs;
    });

    const shared = target.sharedMaps;
    if (shared?.size)
      plan.step(`use the maps shared by ${[...new Set([...shared.values()].map((s) => s.owner))].join(', ')}`, () => {
        for (const [name, { owner, path }] of shared) {
          const m = spec.maps.find((x) => x.name === name);
          if (!m) throw new InvalidError(`--share-map ${name}: the package has no map "${name}"`);
          const theirs = BpfMap.fromPin(path);
          opened.push(theirs);
          const obj = objects.get(m.object)!;
          const ours = layoutOf(obj, name);
          if (!sameLayout(theirs, ours))
            throw new ConflictError(
              `map ${name} cannot be shared with instance ${owner}: its map is ${describeLayout(theirs)}, this package's is ${describeLayout(ours)}`,
              { hint: 'share only maps of the same type, key and value sizes and max_entries' },
            );
          reuse(m.object, name, theirs);
        }
      });

    const carry = opts.carryMapsFrom;
    const carriedGlobals = new Set<string>();
    if (carry !== undefined)
      plan.step(`carry maps over from revision ${carry}`, () => {
        // the same revision started again (the same code) keeps its .bss and .data as it keeps
        // its maps; .rodata is the config, written anew
        if (carry === rev)
          for (const [file, obj] of objects)
            for (const section of globalSections(obj)) {
              const name = globalsPinName(file, section);
              if (section.startsWith('.rodata') || !pins.has(carry, 'globals', name)) continue;
              const old = BpfMap.fromPin(pins.path(carry, 'globals', name));
              opened.push(old);
              if (sameLayout(old, layoutOf(obj, section))) {
                obj.reuseMap(section, old);
                carriedGlobals.add(name);
              }
            }
        for (const m of spec.maps) {
          // USDT argument specs are written anew for the new revision's links (the old ones
          // keep reading theirs until they are dropped);
          // the same for a struct_ops map: the new revision's is registered in its place
          if (!m.pin || shared?.has(m.name) || !pins.has(carry, 'maps', m.name)) continue;
          if (USDT_MAPS.has(m.name) || m.type === 'struct_ops') continue;
          const old = BpfMap.fromPin(pins.path(carry, 'maps', m.name));
          opened.push(old);
          if (sameLayout(old, layoutOf(objects.get(m.object)!, m.name))) reuse(m.object, m.name, old);
        }
      });

    plan.step(`load the objects of ${pkg.reference}`, () => {
      const loaded = loadObjects(pkg, objects, alternative, target.objects, (alt) => {
        for (const o of objects.values()) o.close();
        objects = new Map();
        open(alt);
        for (const r of reused) objects.get(r.object)!.reuseMap(r.map, r.from);
        return objects;
      });
      objects = loaded.objects;
      if (Object.keys(loaded.choices).length) out.objects = loaded.choices;
    });

    let instanceExisted = false;
    let revisionExisted = false;
    plan.step(
      `pin the maps and programs of revision ${rev}`,
      () => {
        instanceExisted = pins.revisions().length > 0;
        revisionExisted = pins.revisions().includes(rev);
        pins.prepare(rev);
        for (const m of spec.maps) {
          if (!m.pin) continue;
          const map = objects.get(m.object)!.map(m.name);
          if (!pins.has(rev, 'maps', m.name)) map.pin(pins.path(rev, 'maps', m.name));
          out.ids.maps.set(m.name, map.id);
        }
        for (const [file, obj] of objects)
          for (const section of globalSections(obj)) {
            const name = globalsPinName(file, section);
            if (carriedGlobals.has(name)) continue;
            const path = pins.path(rev, 'globals', name);
            rmSync(path, { force: true }); // the one a stopped revision left
            obj.map(section).pin(path);
          }
        for (const p of spec.programs) {
          if (!runs.has(p.name)) continue;
          const prog = objects.get(p.object)!.program(p.name);
          prog.pin(pins.path(rev, 'progs', p.name));
          out.ids.progs.set(p.name, prog.id);
        }
      },
      () => {
        if (!instanceExisted) pins.removeAll();
        else if (revisionExisted && carry === rev) {
          pins.removeKind(rev, 'links');
          pins.removeKind(rev, 'progs');
        } else pins.removeRevision(rev);
      },
    );

    if (spec.maps.some((m) => m.programs)) {
      let undoFill = () => {};
      plan.step(
        `fill the program arrays of revision ${rev}`,
        () => {
          const filled = fillProgArrays(spec, objects, runs);
          undoFill = filled.undo;
          for (const s of filled.skipped) out.choices!.warnings.push(`program array entry ${s} left empty`);
        },
        () => undoFill(),
      );
    }

    const switched: { link: Link; old: Program | BpfMap }[] = [];
    plan.step(
      `attach the programs of revision ${rev}`,
      () => {
        for (const p of spec.programs) {
          if (!runs.has(p.name)) continue;
          const obj = objects.get(p.object)!;
          const prog = obj.program(p.name);
          const attach = out.choices!.programs.get(p.name)!.attach;
          const from = opts.linksFrom;
          if (from && attach.hook === 'struct_ops' && pins.has(from.rev, 'links', p.name)) {
            // the new revision's map takes the old one's place on the same link, in one step
            const link = Link.fromPin(pins.path(from.rev, 'links', p.name));
            opened.push(link);
            const oldMap = link.info().mapId;
            switchStructOps(link, obj, attach.map ?? onlyStructOpsMap(obj, p.name));
            const old = oldMap !== undefined ? pinnedMapOfId(pins, from.rev, oldMap) : undefined;
            if (old && !switched.some((x) => x.link.id === link.id)) {
              opened.push(old);
              switched.push({ link, old });
            }
            link.pin(pins.path(rev, 'links', p.name));
            out.ids.links.set(p.name, link.id);
            continue;
          }
          if (from && updatable(attach) && pins.has(from.rev, 'links', p.name)) {
            const before = from.spec.programs.find((x) => x.name === p.name);
            if (before && describeAttach(resolveAttach(before, from.attach)) === describeAttach(attach)) {
              const link = Link.fromPin(pins.path(from.rev, 'links', p.name));
              opened.push(link);
              const old = Program.fromPin(pins.path(from.rev, 'progs', p.name));
              opened.push(old);
              link.update(prog);
              switched.push({ link, old });
              link.pin(pins.path(rev, 'links', p.name));
              out.ids.links.set(p.name, link.id);
              continue;
            }
          }
          const attached = attachProgram(
            prog,
            attach,
            obj,
            positionFor(p, attach, prog, target.peers ?? [], target.attach),
          );
          try {
            const names = linkPinNames(p.name, attached.links.length);
            attached.links.forEach((link, i) => {
              link.pin(pins.path(rev, 'links', names[i]!));
            });
            if (attached.links[0]) out.ids.links.set(p.name, attached.links[0].id);
            if (attached.warning) out.warnings.push(`program ${p.name}: ${attached.warning}`);
            if (attached.iterator) {
              const { bytes, cut } = readIterBytes(attached.links[0]!);
              const entries = iterEntries(bytes, p.record, obj.btf ?? undefined);
              if (cut) entries.push({ output: `… (cut at ${bytes.length} bytes)` });
              out.iterOutput.push({ program: p.name, entries });
            }
          } finally {
            for (const link of attached.links) link.close();
          }
        }
      },
      () => {
        // links attached anew die with the revision's pins (the step before undoes those)
        let failed: unknown;
        for (const { link, old } of switched.reverse()) {
          try {
            if (old instanceof BpfMap) switchStructOpsBack(link, old);
            else link.update(old);
          } catch (e) {
            failed ??= e;
          }
        }
        if (failed) throw failed;
      },
    );
    return out;
  }
}

/** The sections of an object's maps of global variables (.bss, .data, .rodata, .data.*). */
function globalSections(obj: BpfObject): string[] {
  return [...obj.maps.keys()].filter(isGlobalSection);
}

/** The map pinned in revision `rev` whose kernel id is `id`, opened (undefined when none is). */
function pinnedMapOfId(pins: InstancePins, rev: number, id: number): BpfMap | undefined {
  for (const name of pins.names(rev, 'maps')) {
    const m = BpfMap.fromPin(pins.path(rev, 'maps', name));
    if (m.id === id) return m;
    m.close();
  }
  return undefined;
}

/** The cgroup the instance's cgroup programs attach to (the first's), if it has any. */
export function cgroupOfChoices(choices: ProgramChoices): string | undefined {
  for (const c of choices.programs.values())
    if (c.state === 'run' && c.attach.hook === 'cgroup') return c.attach.target;
  return undefined;
}

/** The names of the programs that run. */
export function runningNames(choices: ProgramChoices): Set<string> {
  return new Set([...choices.programs.values()].filter((c) => c.state === 'run').map((c) => c.name));
}
