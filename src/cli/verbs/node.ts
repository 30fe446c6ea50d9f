// The node itself: what its kernel supports (doctor) and which versions run (version).
import type { Command } from 'commander';
import { KBPF_VERSION } from '../../version.js';
import type { CliContext } from '../context.js';
import { outputOption } from '../options.js';
import { renderDoctor } from '../render/doctor.js';
import { LIST_FORMATS, type ListFormat, TEXT_FORMATS, type TextFormat } from '../render/output.js';
import { renderVersions } from '../render/version.js';

export function addNodeVerbs(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('show what this kernel supports (program and map types, hooks)')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (opts: { output: ListFormat }, c: Command) => {
      ctx.out(renderDoctor(opts.output, await ctx.client(c).doctor()));
    });

  program
    .command('version')
    .description('print the versions of this CLI and of the agent')
    .addOption(outputOption(TEXT_FORMATS))
    .action(async (opts: { output: TextFormat }, c: Command) => {
      let agent: { version: string; api: string } | { error: string };
      try {
        agent = await ctx.client(c).version();
      } catch (e) {
        agent = { error: (e as Error).message };
      }
      const client = { version: KBPF_VERSION, node: process.version };
      ctx.out(renderVersions(opts.output, { client, agent }, ctx.paths(c).socketPath));
    });
}
