// The command line the applications' declare CLIs share: [--instance NAME] [--bpffs DIR] VERB
// [FILE.yaml], the instance defaulting to the application's usual name and the bpffs directory to
// the agent's ($KBPF_BPFFS_DIR or /sys/fs/bpf/kbpf).
import { bpffsDir } from '../../src/agent/paths.js';

export interface DeclareArgs {
  instance: string;
  bpffs: string;
  verb: string;
  file?: string;
}

/**
 * Parses the arguments; `fileVerbs` need a FILE.yaml, `verbs` take none. Undefined (the usage
 * written to stderr) when they do not fit.
 */
export function declareArgs(
  argv: string[],
  defaultInstance: string,
  fileVerbs: readonly string[],
  verbs: readonly string[],
): DeclareArgs | undefined {
  let instance = defaultInstance;
  let bpffs = bpffsDir();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--instance') instance = argv[++i]!;
    else if (argv[i] === '--bpffs') bpffs = argv[++i]!;
    else rest.push(argv[i]!);
  }
  const [verb, file] = rest;
  if (!verb || (fileVerbs.includes(verb) && !file) || ![...fileVerbs, ...verbs].includes(verb)) {
    process.stderr.write(
      `usage: declare [--instance NAME] [--bpffs DIR] ${[`${fileVerbs.join('|')} FILE.yaml`, ...verbs].join(' | ')}\n`,
    );
    return undefined;
  }
  return { instance, bpffs, verb, ...(file !== undefined ? { file } : {}) };
}
