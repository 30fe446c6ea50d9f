// Prometheus text exposition (format 0.0.4) of the agent's metrics snapshot.
//
//   kbpf_info{version="..."} 1
//   kbpf_instances{phase="running"} N                  every phase, zeros included
//   kbpf_events_received_total{instance="..."}         events read from the instance's buffers
//   kbpf_events_lost_total{instance="..."}             events the kernel side dropped
//   kbpf_processor_records_total{instance,outcome}     the event processor: in, dropped, emitted
//   kbpf_program_run_count_total{instance,program}     from the kernel's BPF stats, when enabled
//   kbpf_program_run_time_seconds_total{instance,program}
//
// The kernel counts program runs only while BPF stats are enabled (sysctl
// kernel.bpf_stats_enabled=1, or a BPF_ENABLE_STATS fd); programs without figures are left out.
import type { Phase } from './types.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsSnapshot {
  instances: {
    name: string;
    phase: string;
    eventsReceived: number;
    eventsLost: number;
    processed?: { in: number; dropped: number; emitted: number };
    programs: { name: string; progId?: number; runCount?: bigint; runTimeNs?: bigint }[];
  }[];
}

const PHASES: readonly Phase[] = ['pending', 'running', 'stopped', 'failed'];

/** A label value with \, " and newline escaped. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** ns (bigint) → seconds, exactly for the integral part. */
function nsToSeconds(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  const whole = a / 1_000_000_000n;
  const frac = (a % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

class Family {
  readonly samples: string[] = [];
  constructor(
    readonly name: string,
    readonly type: 'gauge' | 'counter',
    readonly help: string,
  ) {}
  add(l: Record<string, string>, value: string): void {
    this.samples.push(`${this.name}${labels(l)} ${value}`);
  }
  text(): string {
    return (
      [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples].join('\n') +
      '\n'
    );
  }
}

export function formatMetrics(snapshot: MetricsSnapshot, opts: { version?: string } = {}): string {
  const families: Family[] = [];
  if (opts.version !== undefined) {
    const info = new Family('kbpf_info', 'gauge', 'kbpf agent version (always 1).');
    info.add({ version: opts.version }, '1');
    families.push(info);
  }

  const byPhase = new Map<string, number>(PHASES.map((p) => [p, 0]));
  for (const i of snapshot.instances) byPhase.set(i.phase, (byPhase.get(i.phase) ?? 0) + 1);
  const instances = new Family('kbpf_instances', 'gauge', 'Instances known to the agent, by phase.');
  for (const [phase, n] of byPhase) instances.add({ phase }, num(n));
  families.push(instances);

  const received = new Family(
    'kbpf_events_received_total',
    'counter',
    "Events read from the instance's ring or perf buffers.",
  );
  const lost = new Family(
    'kbpf_events_lost_total',
    'counter',
    "Events the instance's programs could not submit or the reader lost.",
  );
  const runCount = new Family(
    'kbpf_program_run_count_total',
    'counter',
    "Times the program ran, from the kernel's BPF stats (kernel.bpf_stats_enabled=1).",
  );
  const runTime = new Family(
    'kbpf_program_run_time_seconds_total',
    'counter',
    "Time spent in the program, from the kernel's BPF stats (kernel.bpf_stats_enabled=1).",
  );
  const processed = new Family(
    'kbpf_processor_records_total',
    'counter',
    "Records the instance's event processor saw (in), dropped, and emitted.",
  );
  const seen = new Set<string>();
  for (const i of snapshot.instances) {
    if (seen.has(i.name)) continue; // one series per label set
    seen.add(i.name);
    received.add({ instance: i.name }, num(i.eventsReceived));
    lost.add({ instance: i.name }, num(i.eventsLost));
    if (i.processed)
      for (const outcome of ['in', 'dropped', 'emitted'] as const)
        processed.add({ instance: i.name, outcome }, num(i.processed[outcome]));
    const progs = new Set<string>();
    for (const p of i.programs) {
      if (progs.has(p.name)) continue;
      progs.add(p.name);
      if (p.runCount !== undefined) runCount.add({ instance: i.name, program: p.name }, num(p.runCount));
      if (p.runTimeNs !== undefined) runTime.add({ instance: i.name, program: p.name }, nsToSeconds(p.runTimeNs));
    }
  }
  families.push(received, lost);
  if (processed.samples.length) families.push(processed);
  // a family without samples is left out entirely (no stats enabled)
  if (runCount.samples.length) families.push(runCount);
  if (runTime.samples.length) families.push(runTime);
  return families.map((f) => f.text()).join('');
}
