// `kbpf completion bash|zsh` prints the completion script; `kbpf __complete WORDS…` (what the
// scripts call) answers with candidates: verbs, flags, and the agent's instance and package
// names (see ../completion.ts).
import type { Command } from 'commander';
import { ApiClient } from '../../agent/api-client.js';
import { resolveAgentPaths } from '../../agent/paths.js';
import { bashScript, complete, completionOutput, flagValue, type NameSource, zshScript } from '../completion.js';
import type { CliIo } from '../io.js';

export function addCompletionVerbs(program: Command, io: CliIo): void {
  program
    .command('completion')
    .description('print the shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText('after', '\nExamples:\n  source <(kbpf completion bash)\n  kbpf completion zsh > ~/.zfunc/_kbpf')
    .action((shell: string) => {
      if (shell === 'bash') io.stdout(bashScript('kbpf'));
      else if (shell === 'zsh') io.stdout(zshScript('kbpf'));
      else throw new Error(`completion ${shell}: only bash and zsh`);
    });
}

/** Names from the agent the words point at (--state-dir, --socket); none when it is not running. */
function agentNames(env: NodeJS.ProcessEnv): NameSource {
  return async (kind, words) => {
    const paths = resolveAgentPaths(
      { stateDir: flagValue(words, '--state-dir'), socketPath: flagValue(words, '--socket') },
      env,
    );
    const client = new ApiClient(paths.socketPath);
    try {
      if (kind === 'instance') return (await client.list()).map((s) => s.name);
      if (kind === 'package')
        return (await client.packages()).flatMap((p) =>
          p.tags.length ? p.tags.map((t) => `${p.name}:${t}`) : [p.name],
        );
    } catch {
      /* no agent: no names */
    }
    return [];
  };
}

/** `kbpf __complete WORDS…`: the candidates for the last word. */
export async function completeWords(program: Command, words: string[], io: CliIo): Promise<void> {
  io.stdout(completionOutput(await complete(program, words, agentNames(io.env))));
}
