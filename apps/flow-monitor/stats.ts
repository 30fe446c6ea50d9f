// flow-monitor's own counters (the per-CPU array flow_stats, enum flow_stat in flow_monitor.bpf.c),
// summed over CPUs from a map dump (the agent's GET /v1/instances/NAME/maps/flow_stats).
export interface FlowStats {
  /** flows started */
  created: number;
  /** flows reported closed */
  closed: number;
  /** TCP flows pushed out of the LRU while their socket lived */
  evicted: number;
  /** reports written into the ring (open and closed) */
  reports: number;
  /** accepted connections not tracked, because their connecting end is */
  local_peer: number;
  /** drops of tracked flows' packets */
  drops: number;
  /** reports that woke the agent (the others waited for its next look at the ring) */
  wakeups: number;
}

const ORDER: Array<keyof FlowStats> = ['created', 'closed', 'evicted', 'reports', 'local_peer', 'drops', 'wakeups'];

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + num(x), 0);
  return 0;
}

export function flowStatsOf(dump: Array<{ entries: [unknown, unknown][] }>): FlowStats {
  const out: FlowStats = { created: 0, closed: 0, evicted: 0, reports: 0, local_peer: 0, drops: 0, wakeups: 0 };
  for (const [k, v] of dump[0]?.entries ?? []) {
    const name = ORDER[num(k)];
    if (name) out[name] = num(v);
  }
  return out;
}
