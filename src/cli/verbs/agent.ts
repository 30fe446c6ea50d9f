// kbpf agent: the node agent in the foreground (its code is loaded only for this verb).
import { mkdirSync } from 'node:fs';
import { type Command, Option } from 'commander';
import type { EventsPriority } from '../../agent/event-priority.js';
import { DEFAULT_BPFFS_DIR } from '../../agent/paths.js';
import type { AgentTrust } from '../../agent/trust.js';
import type { TrustMode, TrustPolicy } from '../../package/trust/policy.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** host:port, [v6addr]:port, :port (host 127.0.0.1) */
function metricsAddress(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) throw new CliError(`--metrics-address: expected host:port, got "${s}"`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
}

interface AgentVerbOptions {
  metricsAddress?: string;
  bpfStats?: boolean;
  trust?: string[];
  trustPolicy?: string;
  trustMode: string;
  allowLocal?: boolean;
  eventsPriority: EventsPriority;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The trust of --trust/--trust-policy (undefined: neither given, every package runs). */
async function trustOf(opts: AgentVerbOptions, stateDir: string): Promise<AgentTrust | undefined> {
  if (opts.trustMode !== 'enforce' && opts.trustMode !== 'warn')
    throw new CliError(`--trust-mode: expected enforce or warn, got "${opts.trustMode}"`);
  if (!opts.trust?.length && !opts.trustPolicy) {
    if (opts.allowLocal) throw new CliError('--allow-local needs --trust or --trust-policy');
    return undefined;
  }
  if (opts.trust?.length && opts.trustPolicy) throw new CliError('give --trust or --trust-policy, not both');
  const { loadPublicKey } = await import('../../package/trust/keys.js');
  const { loadTrustPolicy, policyFromKeys } = await import('../../package/trust/policy.js');
  const { ensureNodeKey, nodeKeyPaths } = await import('../../agent/trust.js');
  let policy: TrustPolicy;
  if (opts.trustPolicy) {
    policy = await loadTrustPolicy(opts.trustPolicy);
    if (opts.allowLocal) policy.allowLocal = true;
  } else {
    const keys = await Promise.all((opts.trust ?? []).map((k) => loadPublicKey(k)));
    policy = policyFromKeys(keys, { mode: opts.trustMode as TrustMode, allowLocal: !!opts.allowLocal });
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  return {
    policy,
    nodeKey: await ensureNodeKey(stateDir),
    nodeKeyPath: nodeKeyPaths(stateDir).privatePath,
  };
}

export function addAgentVerbs(program: Command, ctx: CliContext): void {
  program
    .command('agent')
    .description('run the node agent in the foreground (programs keep running when it stops)')
    .option('--bpffs-dir <dir>', `the agent's directory in bpffs (env KBPF_BPFFS_DIR; default ${DEFAULT_BPFFS_DIR})`)
    .option('--metrics-address <host:port>', 'also serve GET /metrics over TCP here (the API stays on the unix socket)')
    .option(
      '--bpf-stats',
      "turn on the kernel's BPF run-time statistics while the agent runs (program run count and time in metrics; costs a little per program run)",
    )
    .option(
      '--trust <pub>',
      'run only packages signed by this public key (repeat for several; a package of either passes)',
      collect,
    )
    .option('--trust-policy <file>', 'run only packages the trust policy file allows (keys per registry or name)')
    .option(
      '--trust-mode <mode>',
      'with --trust: enforce (refuse untrusted packages) or warn (run them, and say so)',
      'enforce',
    )
    .option(
      '--allow-local',
      'with --trust: packages built on this node (no registry in the name) run unsigned; without it they need the node key (STATE_DIR/node.key, which kbpf build signs with)',
    )
    .addOption(
      new Option(
        '--events-priority <p>',
        "idle: while rings carry events and have room, the agent's threads read them on CPU time the node's workloads leave (SCHED_IDLE), normal again when a ring backs up or the events go quiet; normal: always the normal share",
      )
        .choices(['idle', 'normal'])
        .default('idle'),
    )
    .addHelpText(
      'after',
      `
The API listens on --socket (mode 0600); SIGINT/SIGTERM stop the agent, leaving programs attached.

With --trust or --trust-policy, run, upgrade, rollback and start refuse a package that no
trusted key signed, before anything of it is loaded; the error names the digest and the keys
tried. The agent then keeps a node key (STATE_DIR/node.key and node.pub): packages built on this
node are signed with it by kbpf build, and it is trusted for them only.

Examples:
  kbpf agent
  kbpf agent --trust release.pub
  kbpf agent --trust release.pub --trust ci.pub --allow-local
  kbpf agent --trust-policy /etc/kbpf/trust.yaml`,
    )
    .action(async (opts: AgentVerbOptions, c: Command) => {
      const metrics = opts.metricsAddress ? metricsAddress(opts.metricsAddress) : undefined;
      const paths = ctx.paths(c);
      const trust = await trustOf(opts, paths.stateDir);
      const { runAgent } = await import('../run-agent.js');
      await runAgent(paths, {
        io: ctx.io,
        metrics,
        signal: ctx.io.signal,
        bpfStats: !!opts.bpfStats,
        trust,
        eventsPriority: opts.eventsPriority,
      });
      ctx.io.onAgentStopped?.();
    });
}
