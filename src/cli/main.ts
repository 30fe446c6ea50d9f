// Entry point of the `kbpf` command (bin/kbpf.js imports this).
import { runCli } from './program.js';

export type { CliIo } from './io.js';
export { buildProgram, runCli } from './program.js';

/** Runs the CLI on process.argv; sets the exit code. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  // output piped into a reader that stops early (`kbpf ps | head -1`): stop quietly, as other CLIs do
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  const code = await runCli(argv, {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    // the agent may leave handles (libbpf, timers) behind once it has stopped: exit
    onAgentStopped: () => void setTimeout(() => process.exit(0), 50).unref(),
  });
  process.exitCode = code;
}
