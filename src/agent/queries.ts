// The agent's read-only answers, from its view of the instances (instance-view.ts): status
// (ps, inspect), the metrics snapshot, and map dumps. Status reads no pins; metrics ask the
// kernel only for the figures that change (run counts and times, by program id); a map dump
// opens the pinned maps it reads (the package's maps, and the data sections of its global
// variables, decoded by the BTF the kernel keeps with them).
import { BpfMap, codecFor, infoOfId } from 'kbpf/bpf';
import { NotFoundError } from '../errors.js';
import { describeAttach, instanceLogLimits, resolveAttach } from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import type { InstanceView } from './instance-view.js';
import type { MetricsSnapshot } from './metrics.js';
import { globalsPinStem, objectOfGlobalsPin } from './pins.js';
import type { InstanceStatus, MapDump, ProgramStatus, Revision, VariableDump } from './types.js';

export type { MapDump, VariableDump } from './types.js';

const MAX_MAP_ENTRIES = 10_000;
/** Global variables larger than this (a tool's scratch buffers) are listed without their value. */
const MAX_VARIABLE_BYTES = 64 * 1024;

export function instanceStatus(view: InstanceView): InstanceStatus {
  const record = view.record;
  const rev = view.revision!;
  const spec = view.spec;
  if (!spec) return unreadableStatus(view);
  const programs: ProgramStatus[] = spec.programs.map((p) => {
    const choice = view.choices?.programs.get(p.name);
    let attach: string;
    if (spec.guest) attach = `by the guest (${p.section})`;
    else
      try {
        attach = describeAttach(choice?.attach ?? resolveAttach(p, rev.attach));
      } catch {
        attach = describeAttach(p.attach);
      }
    const st: ProgramStatus = { name: p.name, type: p.type, attach };
    if (choice) st.state = choice.state === 'run' ? 'running' : choice.state;
    if (choice?.reason) st.reason = choice.reason;
    const progId = view.ids.progs.get(p.name);
    const linkId = view.ids.links.get(p.name);
    if (linkId !== undefined) st.linkId = linkId;
    if (progId !== undefined) st.progId = progId;
    return st;
  });
  const maps = spec.maps
    .filter((m) => m.pin)
    .map((m) => ({ name: m.name, type: m.type, mapId: view.ids.maps.get(m.name) }));
  return {
    name: record.name,
    image: rev.image,
    digest: rev.digest,
    package: { name: spec.name, version: spec.version },
    revision: record.current,
    desired: record.desired,
    phase: view.events?.ended?.phase ?? view.phase,
    message: view.events?.ended?.message ?? view.message,
    createdAt: record.createdAt,
    programs,
    maps,
    config: { ...rev.config },
    events: {
      received: view.eventsReceived,
      lost: view.eventsLost,
      ...(view.events?.processed ? { processor: { ...view.events.processed } } : {}),
    },
    logs: instanceLogLimits(spec, rev.attach),
    ...(spec.guest ? { guest: structuredClone(spec.guest) } : {}),
    ...(view.warnings.length ? { warnings: [...view.warnings] } : {}),
    ...objectsStatus(rev),
  };
}

/**
 * The status of an instance whose package could not be read (a corrupted store after a
 * restart): what its pins hold, by the names they are pinned under.
 */
function unreadableStatus(view: InstanceView): InstanceStatus {
  const record = view.record;
  const rev = view.revision!;
  const programs: ProgramStatus[] = [...view.ids.progs].map(([name, progId]) => {
    const st: ProgramStatus = { name, type: '?', attach: '?', progId };
    const linkId = view.ids.links.get(name);
    if (linkId !== undefined) st.linkId = linkId;
    return st;
  });
  return {
    name: record.name,
    image: rev.image,
    digest: rev.digest,
    package: { name: '?', version: '?' },
    revision: record.current,
    desired: record.desired,
    phase: view.phase,
    message: view.message,
    createdAt: record.createdAt,
    programs,
    maps: [...view.ids.maps].map(([name, mapId]) => ({ name, type: '?', mapId })),
    config: { ...rev.config },
    events: { received: view.eventsReceived, lost: view.eventsLost },
    ...(view.warnings.length ? { warnings: [...view.warnings] } : {}),
    ...objectsStatus(rev),
  };
}

export function metricsSnapshot(views: Iterable<InstanceView>): MetricsSnapshot {
  const instances: MetricsSnapshot['instances'] = [];
  for (const view of views) {
    const programs = [...view.ids.progs].map(([name, progId]) => {
      const info = infoOfId('prog', progId);
      return info ? { name, progId, runCount: info.runCount, runTimeNs: info.runTimeNs } : { name };
    });
    instances.push({
      name: view.name,
      phase: view.phase,
      eventsReceived: view.eventsReceived,
      eventsLost: view.eventsLost,
      ...(view.events?.processed ? { processed: view.events.processed } : {}),
      programs,
    });
  }
  return { instances };
}

/** A global variable's data section, as pinned: where, and which object's. */
export interface GlobalsPin {
  name: string;
  path: string;
}

/**
 * The entries of an instance's pinned maps, at most 10,000 per map, then its global variables
 * by data section (.bss, .data, then .rodata: the config as the programs see it), as JSON
 * values. `only` keeps one map, one section (".bss") or one variable. Maps the kernel does not
 * let user space read as key/value pairs (ring and perf buffers, socket maps, queues, …) are
 * listed without entries.
 */
export function dumpMaps(
  view: InstanceView,
  pinOf: (map: string) => string | undefined,
  only?: string,
  globalsPins: GlobalsPin[] = [],
): MapDump[] {
  const pinned = (view.spec?.maps ?? []).filter((m) => m.pin && pinOf(m.name) !== undefined).map((m) => m.name);
  const sections = globalsPins
    .map(readGlobals)
    .filter((s) => s.variables.length > 0)
    .sort((a, b) => sectionRank(a) - sectionRank(b));
  const several = (view.spec?.objects.length ?? 1) > 1;
  const linear = new Set(view.spec?.linearHistograms ?? []);
  // a section's object is its pin's stem ("runqlen" of runqlen.bpf.o)
  const linearStems = new Set([...linear].map(globalsPinStem));
  for (const s of sections) if (s.object && linearStems.has(s.object)) s.linear = true;
  if (!several) for (const s of sections) delete s.object;
  const objectOf = new Map((view.spec?.maps ?? []).map((m) => [m.name, m.object]));
  const maps = pinned
    .filter((m) => !only || m === only)
    .map((name) => {
      const d = dumpPinned(name, pinOf(name)!);
      return linear.has(objectOf.get(name) ?? '') ? { ...d, linear: true } : d;
    });
  if (!only) return [...maps, ...sections];
  const kept = sections
    .map((s) => (s.section === only ? s : { ...s, variables: s.variables!.filter((v) => v.name === only) }))
    .filter((s) => s.variables.length > 0);
  if (maps.length === 0 && kept.length === 0) {
    const vars = sections.flatMap((s) => s.variables!.map((v) => v.name));
    throw new NotFoundError(
      `instance ${view.name} has no pinned map or global variable "${only}" (maps: ${pinned.join(', ') || 'none'}; variables: ${vars.join(', ') || 'none'})`,
    );
  }
  return [...maps, ...kept];
}

function dumpPinned(name: string, path: string): MapDump {
  const map = BpfMap.fromPin(path);
  try {
    return { name, type: map.type, entries: readEntries(map) };
  } finally {
    map.close();
  }
}

const SECTION_ORDER = ['.bss', '.data', '.rodata'];

function sectionRank(d: MapDump): number {
  const i = SECTION_ORDER.findIndex((s) => d.section === s || d.section!.startsWith(`${s}.`));
  return i < 0 ? SECTION_ORDER.length : i;
}

/**
 * The variables of a pinned data section, each decoded by its type in the section's BTF
 * DATASEC. Left out: bpf_printk's format strings and other static locals of functions
 * ("func.___fmt") in .rodata, and the markers KBPF_EVENT leaves ("__kbpf_event_MAP"). A variable
 * of more than 64 KiB is listed with "(N bytes, not shown)" for its value.
 */
function readGlobals(pin: GlobalsPin): MapDump & { variables: VariableDump[] } {
  const map = BpfMap.fromPin(pin.path);
  try {
    const btf = map.btf;
    const sec = btf?.type(map.valueTypeId);
    const raw = map.lookupRaw(new Uint8Array(4));
    const section = sec?.kind === 'DATASEC' ? sec.name : `.${pin.name.slice(pin.name.indexOf('@') + 1)}`;
    const variables: VariableDump[] = [];
    if (btf && sec?.kind === 'DATASEC' && raw)
      for (const v of sec.vars) {
        const t = btf.type(v.type);
        if (t.kind !== 'VAR' || t.name.startsWith('__kbpf_event_')) continue;
        if (section.startsWith('.rodata') && !/^[A-Za-z_]\w*$/.test(t.name)) continue;
        let value: unknown;
        if (v.size > MAX_VARIABLE_BYTES) value = `(${v.size} bytes, not shown)`;
        else
          try {
            value = jsonValue(codecFor(btf, t.type).decode(raw, v.offset));
          } catch {
            value = raw.subarray(v.offset, v.offset + v.size).toString('hex');
          }
        variables.push({ name: t.name, type: btf.typeName(t.type), value });
      }
    return { name: section, type: map.type, entries: [], section, object: objectOfGlobalsPin(pin.name), variables };
  } finally {
    map.close();
  }
}
function readEntries(map: BpfMap): [unknown, unknown][] {
  const list: [unknown, unknown][] = [];
  try {
    for (const [k, v] of map.entries()) {
      list.push([jsonValue(k), jsonValue(v)]);
      if (list.length >= MAX_MAP_ENTRIES) break;
    }
  } catch {
    return []; // not readable from user space as key/value pairs
  }
  return list;
}

/** The objects the revision runs from their other build, for its status. */
function objectsStatus(rev: Revision): Pick<InstanceStatus, 'objects'> {
  return rev.objects ? { objects: Object.entries(rev.objects).map(([object, c]) => ({ object, ...c })) } : {};
}
