// The agent's read-only answers, from its view of the instances (instance-view.ts): status
// (ps, inspect), the metrics snapshot, and map dumps. Status reads no pins; metrics ask the
// kernel only for the figures that change (run counts and times, by program id); a map dump
// opens the one pinned map it reads.
import { BpfMap, infoOfId } from 'kbpf/bpf';
import { NotFoundError } from '../errors.js';
import { describeAttach, instanceLogLimits, resolveAttach } from '../package/package-spec.js';
import { jsonValue } from '../util/json.js';
import type { InstanceView } from './instance-view.js';
import type { MetricsSnapshot } from './metrics.js';
import type { InstanceStatus, ProgramStatus, Revision } from './types.js';

const MAX_MAP_ENTRIES = 10_000;

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

export interface MapDump {
  name: string;
  type: string;
  entries: [unknown, unknown][];
}

/**
 * The entries of an instance's pinned maps (or of the one named `only`), as JSON values, at
 * most 10,000 per map. Maps the kernel does not let user space read as key/value pairs (ring
 * and perf buffers, socket maps, queues, …) are listed without entries.
 */
export function dumpMaps(view: InstanceView, pinOf: (map: string) => string | undefined, only?: string): MapDump[] {
  const pinned = (view.spec?.maps ?? []).filter((m) => m.pin && pinOf(m.name) !== undefined).map((m) => m.name);
  const names = pinned.filter((m) => !only || m === only);
  if (only && names.length === 0)
    throw new NotFoundError(`instance ${view.name} has no pinned map "${only}" (maps: ${pinned.join(', ') || 'none'})`);
  return names.map((name) => {
    const map = BpfMap.fromPin(pinOf(name)!);
    try {
      return { name, type: map.type, entries: readEntries(map) };
    } finally {
      map.close();
    }
  });
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
