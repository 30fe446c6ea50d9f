// Shell completion, for `kbpf` and for `kubectl bpf`, in the protocol Cobra made common (and
// that kubectl speaks to a plugin's `kubectl_complete-NAME` executable): the words typed so far,
// the last one being completed, go in; candidates come out one a line, then `:DIRECTIVE`
// (0: the shell may also complete file names; 4: it must not). The candidates come from the
// commander program itself — its verbs, aliases, flags and flag choices — and, for arguments
// and flags that name things, from where those things live (the agent, the cluster), by kind.
// The bash and zsh scripts (`kbpf completion bash|zsh`) call `kbpf __complete WORDS…`.
import type { Command, Option } from 'commander';

/** What an argument or flag value names. */
export type NameKind = 'instance' | 'package' | 'node' | 'context';

/** The names of a kind, given the words so far (for their --kubeconfig, --state-dir…); [] when unreachable. */
export type NameSource = (kind: NameKind, words: readonly string[]) => Promise<string[]>;

export interface Completion {
  candidates: string[];
  /** may the shell complete file names too */
  files: boolean;
}

const FILE_OPTIONS = new Set(['kubeconfig', 'store', 'cacheDir', 'stateDir', 'socket', 'key', 'out', 'policy']);

function kindOfArgument(name: string): NameKind | 'files' | 'packageOrFiles' | undefined {
  if (/^(instance|name|deployment)$/.test(name)) return 'instance';
  if (/^package$/.test(name)) return 'package';
  if (/^image$/.test(name)) return 'packageOrFiles';
  if (/^(args|source|dir|file|files|path)$/.test(name)) return 'files';
  return undefined;
}

function kindOfOption(o: Option): NameKind | 'files' | undefined {
  const a = o.attributeName();
  if (a === 'node') return 'node';
  if (a === 'package') return 'package';
  if (a === 'context') return 'context';
  if (FILE_OPTIONS.has(a)) return 'files';
  return undefined;
}

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/** The options a command accepts: its own and those of the commands above it. */
function optionsOf(cmd: Command): Option[] {
  const out: Option[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) out.push(...c.options);
  return out;
}

function findOption(cmd: Command, word: string): Option | undefined {
  const flag = word.split('=')[0]!;
  return optionsOf(cmd).find((o) => o.long === flag || o.short === flag);
}

/** Completes the last of `words` (the words after the program name; the last may be ''). */
export async function complete(root: Command, words: readonly string[], names: NameSource): Promise<Completion> {
  const current = words.at(-1) ?? '';
  let cmd = root;
  let positionals = 0;
  let pending: Option | undefined;
  for (const w of words.slice(0, -1)) {
    if (pending) {
      pending = undefined;
      continue;
    }
    if (w.startsWith('-') && w.length > 1) {
      const o = findOption(cmd, w);
      if (o && takesValue(o) && !w.includes('=')) pending = o;
      continue;
    }
    const sub = positionals === 0 ? cmd.commands.find((c) => c.name() === w || c.aliases().includes(w)) : undefined;
    if (sub) cmd = sub;
    else positionals++;
  }
  const pick = (all: string[], files = false): Completion => ({
    candidates: [...new Set(all)].filter((c) => c.startsWith(current)).sort(),
    files,
  });
  if (pending) {
    if (pending.argChoices) return pick(pending.argChoices);
    const kind = kindOfOption(pending);
    if (kind === 'files') return pick([], true);
    return pick(kind ? await names(kind, words) : []);
  }
  if (current.startsWith('-'))
    return pick(
      optionsOf(cmd)
        .flatMap((o) => [o.long, o.short])
        .filter((f): f is string => !!f)
        .concat('--help'),
    );
  if (positionals === 0 && cmd.commands.length)
    return pick(cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]).filter((n) => !n.startsWith('_')));
  const args = cmd.registeredArguments;
  const arg = args[positionals] ?? (args.at(-1)?.variadic ? args.at(-1) : undefined);
  if (!arg) return pick([]);
  const kind = kindOfArgument(arg.name());
  if (kind === 'files') return pick([], true);
  if (kind === 'packageOrFiles') return pick(await names('package', words), true);
  return pick(kind ? await names(kind, words) : []);
}

/** The answer as the completion scripts (and kubectl) read it. */
export function completionOutput(c: Completion): string {
  return `${c.candidates.join('\n')}${c.candidates.length ? '\n' : ''}:${c.files ? 0 : 4}\n`;
}

/** The value of a flag among the words typed (--flag V or --flag=V), for a name source to honour. */
export function flagValue(words: readonly string[], ...flags: string[]): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    for (const f of flags) {
      if (w === f && i + 1 < words.length - 1) return words[i + 1];
      if (w.startsWith(`${f}=`)) return w.slice(f.length + 1);
    }
  }
  return undefined;
}

/** `kbpf completion bash`: completes kbpf words through `kbpf __complete`. */
export function bashScript(prog: string, completer = `${prog} __complete`): string {
  const fn = `_${prog.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  return `# bash completion for ${prog}: source it, e.g. from ~/.bashrc: source <(${prog} completion bash)
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} out directive line
  local -a cands=()
  out=$(${completer} "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
  directive=\${out##*:}
  while IFS= read -r line; do
    [[ -n $line && $line != :* ]] && cands+=("\${line%%$'\\t'*}")
  done <<<"$out"
  COMPREPLY=()
  local c
  for c in "\${cands[@]}"; do [[ $c == "$cur"* ]] && COMPREPLY+=("$c"); done
  if [[ $directive == 0 && \${#COMPREPLY[@]} -eq 0 ]]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
}
complete -F ${fn} ${prog}
`;
}

/** `kbpf completion zsh`: the same through zsh's compsys. */
export function zshScript(prog: string, completer = `${prog} __complete`): string {
  const fn = `_${prog.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  return `#compdef ${prog}
# zsh completion for ${prog}: source it, e.g. from ~/.zshrc: source <(${prog} completion zsh)
${fn}() {
  local -a lines cands
  lines=("\${(@f)$(${completer} "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  local directive=\${lines[-1]#:}
  cands=("\${(@)lines[1,-2]}")
  if (( \${#cands} )); then
    compadd -- "\${cands[@]}"
  elif [[ $directive == 0 ]]; then
    _files
  fi
}
if (( $+functions[compdef] )); then compdef ${fn} ${prog}; fi
`;
}
