// kbpf logs: an instance's events from the agent's bounded log, once or followed.
import type { Command } from 'commander';
import type { LogRecord } from '../../agent/log-store.js';
import type { CliContext } from '../context.js';
import { nonNegativeInt, outputOption, parseSinceArg } from '../options.js';
import { LOG_FORMATS, type LogFormat, LogTable, renderRecords } from '../render/logs.js';

/** Records that arrive together are printed together, so the table's widths fit a first screenful. */
const BATCH_MS = 20;
const BATCH_MAX = 512;

interface LogsOptions {
  follow?: boolean;
  since?: string;
  tail?: number;
  output: LogFormat;
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
    .addOption(outputOption(LOG_FORMATS))
    .action(async (name: string, opts: LogsOptions, c: Command) => {
      const { io } = ctx;
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      io.signal?.addEventListener('abort', stop, { once: true });
      if (opts.follow && !io.signal) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      const t = new LogTable((s) => ctx.out(s));
      let batch: LogRecord[] = [];
      let flushTimer: NodeJS.Timeout | undefined;
      const flush = (): void => {
        clearTimeout(flushTimer);
        flushTimer = undefined;
        if (opts.output === 'table') t.add(batch);
        else ctx.out(renderRecords(opts.output, batch));
        batch = [];
      };
      try {
        const q: { follow?: boolean; since?: string; tail?: number } = {};
        if (opts.follow) q.follow = true;
        if (opts.since) q.since = opts.since;
        if (opts.tail !== undefined) q.tail = opts.tail;
        for await (const r of ctx.client(c).logs(name, q, ac.signal)) {
          batch.push(r);
          if (batch.length >= BATCH_MAX) flush();
          else flushTimer ??= setTimeout(flush, BATCH_MS);
        }
      } finally {
        flush();
        io.signal?.removeEventListener('abort', stop);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
