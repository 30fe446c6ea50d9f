// kbpf ui: the web view (a live flow table with the filters of `kbpf flows`, a service map, a
// flow's detail), served from this process on localhost until SIGINT/SIGTERM.
import { spawn } from 'node:child_process';
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_UI_LISTEN, isLoopback, type ListenAddress, parseListen } from '../../ui/listen.js';
import { UiServer } from '../../ui/server.js';
import type { CliContext } from '../context.js';
import { DEFAULT_FLOW_INSTANCE, flowSourceFor } from '../flow-source.js';

/** finds the flows of an instance (tests give a fake) */
export type FlowSourceFor = typeof flowSourceFor;

interface UiOptions {
  listen: ListenAddress;
  instance: string;
  open?: boolean;
}

function listenArg(v: string): ListenAddress {
  try {
    return parseListen(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Resolves when the CLI's signal aborts, or on SIGINT / SIGTERM. */
function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** The desktop's browser, where there is one; a failure to start it only costs the convenience. */
function openInBrowser(url: string, note: (line: string) => void): void {
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', (e) => note(`kbpf ui: could not open a browser (${e.message}); open ${url}`));
  child.unref();
}

export function addUiVerbs(program: Command, ctx: CliContext, sourceFor: FlowSourceFor = flowSourceFor): void {
  program
    .command('ui')
    .description("serve the web view of flow-monitor's flows: live flow table, service map, a flow's detail")
    .option('--listen <host:port>', 'where to serve it', listenArg, parseListen(DEFAULT_UI_LISTEN))
    .option('--instance <name>', 'the flow-monitor instance whose flows to show', DEFAULT_FLOW_INSTANCE)
    .option('--open', 'open it in the desktop browser (xdg-open)')
    .addHelpText(
      'after',
      `\nThe page and its API (GET /api/flows, /api/flows/stream, /api/map) take the filters of kbpf flows as parameters.\nIt has no authentication: keep it on a loopback address (default ${DEFAULT_UI_LISTEN}).\nSee docs/web-view.md.`,
    )
    .action(async (opts: UiOptions, c: Command) => {
      const source = await sourceFor(ctx, c, opts.instance);
      const server = new UiServer({ ...opts.listen, source });
      const url = await server.start();
      ctx.note(`kbpf ui: the flows of ${opts.instance} at ${url} (Ctrl-C stops)`);
      if (!isLoopback(opts.listen.host))
        ctx.note(
          `kbpf ui: warning: ${opts.listen.host} is not a loopback address; anyone who reaches it sees the flows`,
        );
      if (opts.open) openInBrowser(url, (l) => ctx.note(l));
      try {
        await untilStopped(ctx.io.signal);
      } finally {
        await server.close();
      }
    });
}
