// What a run of the kbpf CLI writes to and reads from; tests give their own.

export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
  env: NodeJS.ProcessEnv;
  /** all of standard input, as text (for --password-stdin); absent: no standard input */
  readStdin?: () => Promise<string>;
  /** ends `logs -f` and `agent` (default: SIGINT / SIGTERM) */
  signal?: AbortSignal;
  /** called when `kbpf agent` has stopped cleanly (the entry point exits then) */
  onAgentStopped?: () => void;
}
