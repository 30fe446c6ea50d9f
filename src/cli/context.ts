// What every verb's action needs: where the agent and the local store are (from the global
// options and the environment, resolved once, by src/agent/paths.ts), a client of the agent's API
// and the outputs.
import type { Command } from 'commander';
import { ApiClient } from '../agent/api-client.js';
import { type AgentPaths, resolveAgentPaths } from '../agent/paths.js';
import type { CliIo } from './io.js';
import { escapeLines } from './render/escape.js';

export class CliContext {
  constructor(readonly io: CliIo) {}

  /** The agent's paths from --state-dir, --socket, --bpffs-dir, then the environment, then the defaults. */
  paths(cmd: Command): AgentPaths {
    const o = cmd.optsWithGlobals() as { stateDir?: string; socket?: string; bpffsDir?: string };
    return resolveAgentPaths({ stateDir: o.stateDir, bpffsDir: o.bpffsDir, socketPath: o.socket }, this.io.env);
  }

  client(cmd: Command): ApiClient {
    return new ApiClient(this.paths(cmd).socketPath);
  }

  /** Writes what a render module made (already safe for a terminal, or data). */
  out(s: string): void {
    this.io.stdout(s);
  }

  /** A line of progress or notice on stderr, control characters escaped. */
  note(line: string): void {
    this.io.stderr(`${escapeLines(line)}\n`);
  }
}
