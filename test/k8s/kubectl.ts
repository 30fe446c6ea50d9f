// Running Debian's real kubectl (package kubernetes-client) in tests: against a kubeconfig, with
// bin/ first on PATH (so `kubectl bpf` finds the plugin) and a discovery cache of the test's own.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.js';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** the skip reason of a test that needs kubectl, or false */
export const needsKubectl = hasKubectl() ? false : 'needs kubectl (Debian package kubernetes-client)';

/** kubectl's discovery and OpenAPI cache for this test process (not the user's ~/.kube/cache) */
const cacheDir = mkdtempSync(join(tmpdir(), 'kbpf-kubectl-cache-'));
process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));

/** The environment kubectl runs with: the kubeconfig, bin/ on PATH, the test's cache. */
export function kubectlEnv(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
    KUBECACHEDIR: cacheDir,
    PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`,
    ...env,
  };
}

export function kubectl(
  kubeconfig: string | undefined,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    execFile(
      'kubectl',
      args,
      { env: kubectlEnv(kubeconfig, o.env), timeout: o.timeout ?? 60_000, ...(o.cwd ? { cwd: o.cwd } : {}) },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ code: err ? (typeof code === 'number' ? code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** A kubectl left running (kubectl bpf logs -f): its stdout lines as they come; stop() ends it (SIGINT, as ^C). */
export interface Follower {
  lines: string[];
  stderr: string[];
  stop(): Promise<number | null>;
}

/** Starts `kubectl ARGS`; `onCleanup` is given what kills it if the test ends first. */
export function kubectlFollow(kubeconfig: string, args: string[], onCleanup: (fn: () => void) => void): Follower {
  const p = spawn('kubectl', args, { env: kubectlEnv(kubeconfig), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const stderr: string[] = [];
  let buf = '';
  p.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const l = buf.split('\n');
    buf = l.pop()!;
    lines.push(...l.filter(Boolean));
  });
  p.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  onCleanup(() => p.kill('SIGKILL'));
  return {
    lines,
    stderr,
    stop: async () => {
      if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
