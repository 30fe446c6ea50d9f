// `kbpf run --engine userspace --iface IF IMAGE`: an observe-only run in the foreground of the
// CLI (no agent, no kernel program): the package's xdp, tc and socket filter programs see a copy
// of the interface's packets in the user-space engine; their events are printed as they come
// (one JSON line each) and, at the end (--duration, Ctrl-C), what they decided and their maps.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { plain } from '../../pkgtest/values.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { renderObserveReport } from '../render/observe.js';
import type { TextFormat } from '../render/output.js';

export interface ObserveOptions {
  iface?: string;
  config?: Record<string, string>;
  durationMs?: number;
  output: TextFormat;
}

export async function runObserved(
  ctx: CliContext,
  image: string,
  opts: ObserveOptions,
  storeDir: string,
): Promise<void> {
  if (!opts.iface) throw new CliError('--engine userspace needs --iface: the interface whose packets the programs see');
  const { observeInterface } = await import('../../embed/observe.js');
  const obs = await observeInterface(
    image,
    opts.iface,
    { store: storeDir, ...(opts.config ? { config: opts.config } : {}) },
    (map, record) => ctx.out(`${JSON.stringify({ map, event: plain(record) })}\n`),
  );
  ctx.note(`observing ${opts.iface} with ${image} in the user-space engine (observe-only)`);
  try {
    const stop: Promise<unknown>[] = [];
    if (opts.durationMs !== undefined) stop.push(sleep(opts.durationMs));
    const signal = ctx.io.signal;
    if (signal) stop.push(signal.aborted ? Promise.resolve() : once(signal, 'abort'));
    else stop.push(Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]));
    await Promise.race(stop);
  } finally {
    const report = obs.report();
    obs.close();
    ctx.out(renderObserveReport(opts.output, report));
  }
}
