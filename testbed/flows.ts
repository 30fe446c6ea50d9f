// flow-monitor on a test bed, run by a real (throw-away) agent: build apps/flow-monitor, run it on
// the pods' parent cgroup, and read its flows through the collector and a FlowSource over the
// agent's own log store (what `kbpf flows` reads through the agent's API).
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Collector } from '../apps/flow-monitor/collector.js';
import type { Flow } from '../apps/flow-monitor/flow.js';
import { Identities } from '../apps/flow-monitor/identities.js';
import { AgentFlowSource, flowMonitorInput, type LogReader } from '../apps/flow-monitor/source.js';
import type { PodIdentity } from '../apps/shared/pods.js';
import type { Agent } from '../src/agent/agent.js';
import type { LogRecord } from '../src/agent/log-store.js';
import { type TestAgent, testAgent } from './agent.js';
import type { Cleanup } from './kernel.js';

export const FLOW_APP_DIR = fileURLToPath(new URL('../../apps/flow-monitor/', import.meta.url));

/** The agent's log store as a LogReader (in the agent's own process). */
export function agentLogReader(agent: Agent): LogReader {
  return {
    async *logs(name, q, signal): AsyncGenerator<LogRecord> {
      if (!q.follow) {
        yield* agent.logs.read(name, { tail: q.tail });
        return;
      }
      yield* agent.logs.follow(name, { tail: q.tail }, signal ?? new AbortController().signal);
    },
  };
}

export interface FlowMonitor {
  ta: TestAgent;
  name: string;
  ref: string;
  identities: Identities;
  collector: Collector;
  source: AgentFlowSource;
  /** waits until a flow report matching `pred` arrived (the newest such), or throws after timeoutMs */
  waitFor(pred: (f: Flow) => boolean, timeoutMs?: number): Promise<Flow>;
}

export async function runFlowMonitor(
  t: Cleanup,
  cgroup: string,
  opts: {
    name?: string;
    pods?: PodIdentity[];
    config?: Record<string, unknown>;
    mapSizes?: Record<string, number>;
    shareMaps?: Record<string, string>;
    agent?: { ta: TestAgent; ref?: string };
  } = {},
): Promise<FlowMonitor> {
  const ta = opts.agent?.ta ?? (await testAgent(t));
  const ref = opts.agent?.ref ?? (await ta.build(FLOW_APP_DIR));
  const name = opts.name ?? 'flows';
  await ta.agent.run({
    image: ref,
    name,
    config: opts.config,
    attach: { cgroup, mapSizes: opts.mapSizes, shareMaps: opts.shareMaps },
  });
  const identities = new Identities(opts.pods ?? []);
  const collector = new Collector({ node: hostname(), identities });
  const source = new AgentFlowSource(agentLogReader(ta.agent), [flowMonitorInput(name, collector)]).start();
  t.after(() => source.close());
  return {
    ta,
    name,
    ref,
    identities,
    collector,
    source,
    async waitFor(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = source.recent(100_000).filter(pred);
        if (hit.length > 0) return hit[hit.length - 1]!;
        if (Date.now() > deadline) throw new Error(`no such flow within ${timeoutMs} ms; flows: ${source.received}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
