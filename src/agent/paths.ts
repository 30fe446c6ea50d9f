// Where an agent keeps things. Several agents can share a machine (the cluster tests run three)
// as long as each has its own state directory and bpffs directory.
import { join } from 'node:path';

export interface AgentPaths {
  stateDir: string;
  /** OCI image layout holding packages */
  storeDir: string;
  /** one JSON file per instance (desired state and history) */
  instancesDir: string;
  /** per-instance bounded event logs */
  logsDir: string;
  /** vmlinux.h and other caches */
  cacheDir: string;
  /** unix socket of the API (mode 0600) */
  socketPath: string;
  /** the agent's own directory in bpffs: everything it pins lives below */
  bpffsDir: string;
}

export const DEFAULT_STATE_DIR = '/var/lib/kbpf';
/** The one place the agent's bpffs directory is named; $KBPF_BPFFS_DIR overrides it. */
export const DEFAULT_BPFFS_DIR = '/sys/fs/bpf/kbpf';

/** The agent's bpffs directory as the environment says (for tools that run next to the agent). */
export function bpffsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KBPF_BPFFS_DIR ?? DEFAULT_BPFFS_DIR;
}

/** Where an agent's things are when not given: flags first, then $KBPF_STATE_DIR, $KBPF_BPFFS_DIR,
 * $KBPF_SOCKET, then the defaults (the socket: STATE_DIR/agent.sock). The one place that reads them. */
export function resolveAgentPaths(
  given: { stateDir?: string; bpffsDir?: string; socketPath?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): AgentPaths {
  const stateDir = given.stateDir ?? env.KBPF_STATE_DIR ?? DEFAULT_STATE_DIR;
  return {
    stateDir,
    storeDir: join(stateDir, 'store'),
    instancesDir: join(stateDir, 'instances'),
    logsDir: join(stateDir, 'logs'),
    cacheDir: join(stateDir, 'cache'),
    socketPath: given.socketPath ?? env.KBPF_SOCKET ?? join(stateDir, 'agent.sock'),
    bpffsDir: given.bpffsDir ?? bpffsDir(env),
  };
}

export function agentPaths(stateDir?: string, bpffsDir?: string): AgentPaths {
  return resolveAgentPaths({ stateDir, bpffsDir });
}
