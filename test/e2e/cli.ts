// Drives the real `kbpf` CLI and a real agent process, each in its own state dir, bpffs dir and
// socket, for end-to-end tests. Everything is removed at the end of the test, also on failure.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { uniqueName } from '../../testbed/kernel.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const KBPF = join(ROOT, 'bin/kbpf.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class Node {
  readonly stateDir: string;
  readonly bpffsDir: string;
  readonly socket: string;
  agent: ChildProcess | null = null;
  agentLog = '';

  constructor(t: { after(fn: () => unknown): void }) {
    this.stateDir = mkdtempSync(join(tmpdir(), 'kbpf-e2e-'));
    this.bpffsDir = `/sys/fs/bpf/${uniqueName('kbpf-e2e')}`;
    this.socket = join(this.stateDir, 'agent.sock');
    t.after(async () => {
      spawnSync(process.execPath, [KBPF, 'clear', '--force'], { env: this.env(), timeout: 20_000 });
      await this.stopAgent();
      rmSync(this.bpffsDir, { recursive: true, force: true });
      rmSync(this.stateDir, { recursive: true, force: true });
    });
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KBPF_STATE_DIR: this.stateDir,
      KBPF_SOCKET: this.socket,
      KBPF_BPFFS_DIR: this.bpffsDir,
      ...extra,
    };
  }

  kbpf(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
    const r = spawnSync(process.execPath, [KBPF, ...args], {
      env: this.env(opts.env),
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs kbpf and fails with its output when it does not exit 0. */
  ok(args: string[], opts: { env?: Record<string, string> } = {}): string {
    const r = this.kbpf(args, opts);
    if (r.code !== 0) throw new Error(`kbpf ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  json<T>(args: string[]): T {
    return JSON.parse(this.ok([...args, '-o', 'json'])) as T;
  }

  async startAgent(env: Record<string, string> = {}, args: string[] = []): Promise<void> {
    const proc = spawn(process.execPath, [KBPF, 'agent', ...args], {
      env: this.env(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.agent = proc;
    proc.stdout!.on('data', (d) => (this.agentLog += d));
    proc.stderr!.on('data', (d) => (this.agentLog += d));
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}:\n${this.agentLog}`);
      if (existsSync(this.socket) && this.kbpf(['ps']).code === 0) return;
      await sleep(50);
    }
    throw new Error(`agent did not come up:\n${this.agentLog}`);
  }

  /** Waits for the agent process to end (after a kill -9 or a SIGTERM). */
  async waitAgentExit(): Promise<number | null> {
    const p = this.agent;
    if (!p) return null;
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
    this.agent = null;
    return p.exitCode;
  }

  async stopAgent(): Promise<void> {
    if (!this.agent) return;
    this.agent.kill('SIGTERM');
    await this.waitAgentExit();
  }
}
