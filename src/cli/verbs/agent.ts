// kbpf agent: the node agent in the foreground (its code is loaded only for this verb).
import type { Command } from 'commander';
import { DEFAULT_BPFFS_DIR } from '../../agent/paths.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';

/** host:port, [v6addr]:port, :port (host 127.0.0.1) */
function metricsAddress(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) throw new CliError(`--metrics-address: expected host:port, got "${s}"`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
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
    .addHelpText(
      'after',
      '\nThe API listens on --socket (mode 0600); SIGINT/SIGTERM stop the agent, leaving programs attached.',
    )
    .action(async (opts: { metricsAddress?: string; bpfStats?: boolean }, c: Command) => {
      const metrics = opts.metricsAddress ? metricsAddress(opts.metricsAddress) : undefined;
      const { runAgent } = await import('../run-agent.js');
      await runAgent(ctx.paths(c), { io: ctx.io, metrics, signal: ctx.io.signal, bpfStats: !!opts.bpfStats });
      ctx.io.onAgentStopped?.();
    });
}
