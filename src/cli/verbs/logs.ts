// kbpf logs: an instance's events from the agent's bounded log, once or followed.
import type { Command } from 'commander';
import type { ApiClient } from '../../agent/api-client.js';
import type { LogRecord } from '../../agent/log-store.js';
import type { EventFormat } from '../../package/package-spec.js';
import type { CliContext } from '../context.js';
import { nonNegativeInt, outputOption, parseSinceArg } from '../options.js';
import { LOG_FORMATS, type LogFormat, LogTable, renderRecords, sourceMatches } from '../render/logs.js';
import { symbolizeRecords } from '../stacks.js';

/** Records that arrive together are printed together, so the table's widths fit a first screenful. */
const BATCH_MS = 20;
const BATCH_MAX = 512;

interface LogsOptions {
  follow?: boolean;
  since?: string;
  tail?: number;
  source?: string[];
  output: LogFormat;
}

function hasStacks(f: EventFormat): boolean {
  return Object.values(f).some((x) => x.kind === 'stack' || x.kind === 'stack-id');
}

/**
 * How the fields of each of the instance's event sources read, from its package's spec; none
 * when the package cannot be looked up (the table then shows the values as decoded).
 */
async function eventFormats(api: ApiClient, name: string): Promise<Map<string, EventFormat>> {
  const out = new Map<string, EventFormat>();
  try {
    const st = await api.inspect(name);
    const pkg = await api.inspectPackage(st.image);
    if (pkg.digest !== st.digest) return out;
    for (const ev of pkg.spec.events) if (ev.format) out.set(ev.map, ev.format);
  } catch {
    // formatting is a nicety: the logs show without it
  }
  return out;
}

export function addLogVerbs(program: Command, ctx: CliContext): void {
  program
    .command('logs')
    .alias('log')
    .description("show an instance's events (decoded from BTF) from the agent's bounded log")
    .argument('<instance>')
    .option('-f, --follow', 'keep printing new events')
    .option('--since <duration|time>', 'only events since then: 30s, 5m, 1h30m, or 2024-05-01T10:00:00Z', (v: string) =>
      parseSinceArg(v),
    )
    .option('--tail <n>', 'only the last N events', nonNegativeInt('--tail'))
    .option(
      '--source <name>',
      'only records from this event buffer, or "printk" for the bpf_printk lines (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .addOption(outputOption(LOG_FORMATS))
    .addHelpText(
      'after',
      '\nThe table shows addresses, ports, pointers, flags and stacks (as symbols) as the package says its fields read; JSON and YAML keep the data as decoded.\nbpf_printk lines of the instance\'s programs show as "printk: …".\nExamples:\n  kbpf logs -f snoop\n  kbpf logs --source printk snoop',
    )
    .action(async (name: string, opts: LogsOptions, c: Command) => {
      const { io } = ctx;
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      io.signal?.addEventListener('abort', stop, { once: true });
      if (opts.follow && !io.signal) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      const api = ctx.client(c);
      const formats = opts.output === 'table' ? await eventFormats(api, name) : undefined;
      const t = new LogTable((s) => ctx.out(s), formats);
      const stacks = formats && [...formats.values()].some(hasStacks) ? formats : undefined;
      const sources = opts.source ?? [];
      let batch: LogRecord[] = [];
      let flushTimer: NodeJS.Timeout | undefined;
      // with stacks, a batch waits for the agent's symbols; the batches still print in order
      let printed = Promise.resolve();
      const flush = (): void => {
        clearTimeout(flushTimer);
        flushTimer = undefined;
        const b = batch;
        batch = [];
        if (opts.output !== 'table') ctx.out(renderRecords(opts.output, b));
        else if (!stacks) t.add(b);
        else printed = printed.then(async () => t.add(await symbolizeRecords(api, name, b, stacks)));
      };
      try {
        const q: { follow?: boolean; since?: string; tail?: number } = {};
        if (opts.follow) q.follow = true;
        if (opts.since) q.since = opts.since;
        if (opts.tail !== undefined) q.tail = opts.tail;
        for await (const r of api.logs(name, q, ac.signal)) {
          if (!sourceMatches(r, sources)) continue;
          batch.push(r);
          if (batch.length >= BATCH_MAX) flush();
          else flushTimer ??= setTimeout(flush, BATCH_MS);
        }
      } finally {
        flush();
        await printed;
        io.signal?.removeEventListener('abort', stop);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
