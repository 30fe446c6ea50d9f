// `kbpf test DIR|IMAGE`: a package's test cases (tests/*.yaml, carried in the package) in the
// user-space engine, the kernel (BPF_PROG_TEST_RUN), or both with their observations compared.
// A source directory is built into the local store first, as `kbpf run DIR` does; a package
// reference is read from the local store (after `kbpf build` or `kbpf pull`). Like `build`, it
// does not go through the agent. Exit status 1 when a case fails.
import type { Command } from 'commander';
import { Option } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { outputOption } from '../options.js';
import { TEXT_FORMATS, type TextFormat } from '../render/output.js';
import { renderTestReport } from '../render/tests.js';
import { buildForRun, runTarget } from './run-source.js';

export function addTestVerbs(program: Command, ctx: CliContext): void {
  program
    .command('test')
    .description("run a package's test cases in the user-space engine, the kernel, or both")
    .argument('<dir|image>', 'a source directory (built first) or a package in the local store')
    .addOption(
      new Option(
        '--engine <engine>',
        'vm (the Wasm compiler), interpreter, kernel (BPF_PROG_TEST_RUN) or both (vm and kernel, compared)',
      )
        .choices(['vm', 'interpreter', 'kernel', 'both'])
        .default('vm'),
    )
    .option('--case <text>', 'run only the cases whose "file: name" contains this')
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      `
Test cases live in tests/*.yaml beside the .bpf.c files (docs/testing.md) and are carried in the
package. With --engine both every case runs in both engines and fails when they disagree on r0,
the packet, any value map entry or any event record. The kernel runs xdp, tc and socket filter
programs (as root); the cases of other program types run in the VM only.

Examples:
  kbpf test examples/xdp-filter
  kbpf test --engine both -o json xdp-filter:1.0.0`,
    )
    .action(async (target: string, opts: { engine: string; case?: string; output: TextFormat }, c: Command) => {
      const t = runTarget(target, []);
      const reference = t.kind === 'source' ? await buildForRun(ctx, c, t, undefined, opts.output !== 'text') : t.image;
      const store = new LayoutStore(ctx.paths(c).storeDir);
      const { packageTestInput } = await import('../../pkgtest/package.js');
      const { runTests } = await import('../../pkgtest/runner.js');
      const report = runTests(await packageTestInput(store, reference), opts.engine as 'vm', {
        ...(opts.case ? { filter: opts.case } : {}),
      });
      ctx.out(renderTestReport(opts.output, report));
      if (report.failed) throw new CliError(`${report.failed} test case(s) failed`);
    });
}
