// `kbpf agent`: the node daemon in the foreground. It adopts what a previous agent left pinned,
// serves the API on the unix socket and, on SIGINT/SIGTERM, stops reading events and exits,
// leaving every program attached (a restarted agent adopts them again).
import { Agent } from '../agent/agent.js';
import { ensureSocketFree, startApiServer, startMetricsServer } from '../agent/api-server.js';
import { type EventsPriority, eventPriority } from '../agent/event-priority.js';
import type { AgentPaths } from '../agent/paths.js';
import type { AgentTrust } from '../agent/trust.js';
import { KBPF_VERSION } from '../version.js';
import type { CliIo } from './io.js';
import { escapeLines } from './render/escape.js';

export interface RunAgentOptions {
  io: CliIo;
  metrics?: { host: string; port: number };
  /** stops the agent (default: SIGINT / SIGTERM) */
  signal?: AbortSignal;
  /** called once the API is served */
  onReady?: () => void;
  /** enable the kernel's BPF run-time stats while the agent runs */
  bpfStats?: boolean;
  /** the trust policy (kbpf agent --trust / --trust-policy) */
  trust?: AgentTrust;
  /** the agent's threads' priority while rings carry events (event-priority.ts; default normal) */
  eventsPriority?: EventsPriority;
}

function describeTrust(t: AgentTrust): string {
  const keys = new Set(t.policy.rules.flatMap((r) => r.keys.map((k) => k.name)));
  const mode = t.policy.rules.every((r) => r.mode === 'warn') ? 'warns about' : 'refuses';
  return `${mode} packages not signed by ${[...keys].join(', ')}${t.policy.allowLocal ? ' (local packages allowed)' : ` (local packages: node key ${t.nodeKey?.keyId ?? 'none'})`}`;
}

export async function runAgent(paths: AgentPaths, opts: RunAgentOptions): Promise<void> {
  const log = (m: string): void => opts.io.stderr(`${new Date().toISOString()} kbpf agent: ${escapeLines(m)}\n`);
  // refuse before touching anything if another agent already serves this socket
  await ensureSocketFree(paths.socketPath);
  eventPriority().mode = opts.eventsPriority ?? 'normal';
  const agent = new Agent(paths, { log, bpfStats: opts.bpfStats, ...(opts.trust ? { trust: opts.trust } : {}) });
  await agent.start();
  let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
  let metrics: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  try {
    api = await startApiServer(agent, paths.socketPath);
    if (opts.metrics) metrics = await startMetricsServer(agent, opts.metrics.host, opts.metrics.port);
  } catch (e) {
    await api?.close();
    await agent.close();
    throw e;
  }
  log(
    `kbpf ${KBPF_VERSION} serving ${paths.socketPath}${opts.trust ? `, ${describeTrust(opts.trust)}` : ''}${metrics ? `, metrics on http://${metrics.address}/metrics` : ''} (state ${paths.stateDir}, bpffs ${paths.bpffsDir}); ${agent.list().length} instance(s)`,
  );
  opts.onReady?.();

  await new Promise<void>((resolve) => {
    if (opts.signal) {
      if (opts.signal.aborted) return resolve();
      opts.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        log(`${sig}: stopping (programs keep running)`);
        resolve();
      } else {
        log(`${sig} again: exiting now`);
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await metrics?.close();
  await api.close();
  await agent.close();
  eventPriority().normal();
  log('stopped');
}
