// The `kbpf` command line: the root command with its global options, and the verb groups in
// src/cli/verbs/ (what they print is made in src/cli/render/). Everything but `agent`, `build`,
// `push`, `pull`, `key`, `sign` and `verify` goes through the agent's API (src/agent/api-client.ts).
import { Command, CommanderError } from 'commander';
import { DEFAULT_STATE_DIR } from '../agent/paths.js';
import { KBPF_VERSION } from '../version.js';
import { CliContext } from './context.js';
import { CliError, reportError } from './errors.js';
import type { CliIo } from './io.js';
import { escapeLines } from './render/escape.js';
import { addAgentVerbs } from './verbs/agent.js';
import { addCompletionVerbs, completeWords } from './verbs/completion.js';
import { addFlowVerbs } from './verbs/flows.js';
import { addInstanceVerbs } from './verbs/instances.js';
import { addLogVerbs } from './verbs/logs.js';
import { addNodeVerbs } from './verbs/node.js';
import { addPackageVerbs } from './verbs/packages.js';
import { addTestVerbs } from './verbs/test.js';
import { addTrustVerbs } from './verbs/trust.js';
import { addUiVerbs } from './verbs/ui.js';
import { addVmVerbs } from './verbs/vm.js';

export function buildProgram(io: CliIo): Command {
  const program = new Command('kbpf');
  program
    .description('eBPF programs shipped and run like containers')
    .version(KBPF_VERSION, '-V, --version', 'print the kbpf version')
    .option('--state-dir <dir>', `the agent's state directory (env KBPF_STATE_DIR; default ${DEFAULT_STATE_DIR})`)
    .option('--socket <path>', "the agent's API socket (env KBPF_SOCKET; default STATE_DIR/agent.sock)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      outputError: (s, write) => write(`kbpf: ${escapeLines(s.replace(/^error: /, ''))}`),
    })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nAliases of the first prototype: list (ps), log (logs), delete (rm), packages (images), show (inspect), clear (rm every instance).\nSee docs/cli.md.',
    );

  const ctx = new CliContext(io);
  addAgentVerbs(program, ctx);
  addPackageVerbs(program, ctx);
  addTrustVerbs(program, ctx);
  addInstanceVerbs(program, ctx);
  addLogVerbs(program, ctx);
  addFlowVerbs(program, ctx);
  addNodeVerbs(program, ctx);
  addUiVerbs(program, ctx);
  addTestVerbs(program, ctx);
  addVmVerbs(program, ctx);
  addCompletionVerbs(program, io);
  return program;
}

/** Parses argv (without node and script) and runs the verb; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  if (argv[0] === '__complete') {
    await completeWords(program, argv.slice(1), io);
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are exit 0; usage errors were already printed by commander
      return e.exitCode;
    }
    reportError(io, e);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
