// kbpf logs: the stack fields of events (arrays of addresses, ids in a stack trace map, as the
// package's event formats say) replaced by their frames, which the agent resolves (it reads
// /proc/kallsyms and the processes' mappings as root). One request per batch of records.
import type { ApiClient } from '../agent/api-client.js';
import type { LogRecord } from '../agent/log-store.js';
import type { EventFormat } from '../package/package-spec.js';
import { stackEntries } from './render/fields.js';

const PER_REQUEST = 4096;

type StackRequest = { pid?: number; addresses?: unknown[]; map?: string; id?: number };

/** Records whose stack fields hold frames (strings); unchanged when the agent cannot say. */
export async function symbolizeRecords(
  api: ApiClient,
  instance: string,
  records: readonly LogRecord[],
  formats: ReadonlyMap<string, EventFormat>,
): Promise<LogRecord[]> {
  const requests: StackRequest[] = [];
  const fills: { event: Record<string, unknown>; field: string; at: number }[] = [];
  const out = records.map((r) => {
    const format = typeof r.source === 'string' ? formats.get(r.source) : undefined;
    const ev = r.event;
    if (!format || !ev || typeof ev !== 'object' || Array.isArray(ev)) return r;
    let copy: Record<string, unknown> | undefined;
    for (const [field, f] of Object.entries(format)) {
      if (f.kind !== 'stack' && f.kind !== 'stack-id') continue;
      const e = ev as Record<string, unknown>;
      const v = e[field];
      const pid = f.pid && f.space !== 'kernel' ? e[f.pid] : undefined;
      const req: StackRequest = typeof pid === 'number' ? { pid } : {};
      if (f.kind === 'stack' && Array.isArray(v)) req.addresses = [...stackEntries(v, f.size ? e[f.size] : undefined)];
      else if (f.kind === 'stack-id' && typeof v === 'number' && v >= 0) Object.assign(req, { map: f.map, id: v });
      else continue;
      copy ??= { ...e };
      fills.push({ event: copy, field, at: requests.length });
      requests.push(req);
    }
    return copy ? { ...r, event: copy } : r;
  });
  if (requests.length === 0) return out;
  try {
    const frames: string[][] = [];
    for (let i = 0; i < requests.length; i += PER_REQUEST)
      frames.push(...(await api.stacks(instance, requests.slice(i, i + PER_REQUEST))));
    for (const f of fills) {
      const fr = frames[f.at];
      if (fr?.length) f.event[f.field] = fr;
    }
  } catch {
    return [...records]; // an agent without symbols: the addresses show in hex
  }
  return out;
}
