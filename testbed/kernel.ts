// Test helpers for real-kernel tests: cgroups, processes inside them, and leak checks with
// bpftool. Everything a helper creates is removed by the test's cleanup, also on failure.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const CGROUP2_ROOT = existsSync('/sys/fs/cgroup/unified/cgroup.procs')
  ? '/sys/fs/cgroup/unified'
  : '/sys/fs/cgroup';

export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Path of a compiled BPF object next to a test file. */
export function objectPath(testUrl: string, name: string): string {
  return fileURLToPath(new URL(`./${name}`, testUrl));
}

/** What a helper needs of the test context: somewhere to register its teardown. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** A fresh directory under the system temp dir; removed with everything in it at cleanup. */
export function tempDir(t: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh cgroup v2 directory; removed (after killing what is left in it) at cleanup. */
export function makeCgroup(t: Cleanup, prefix = 'kbpf-test'): string {
  const path = `${CGROUP2_ROOT}/${uniqueName(prefix)}`;
  mkdirSync(path);
  t.after(() => removeCgroup(path));
  return path;
}

export async function removeCgroup(path: string): Promise<void> {
  if (!existsSync(path)) return;
  for (let i = 0; i < 50; i++) {
    const pids = readFileSync(`${path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    try {
      rmdirSync(path);
      return;
    } catch {
      await sleep(20);
    }
  }
  rmdirSync(path);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command as a process that is inside the cgroup before it execs. */
export function runInCgroup(
  cgroup: string,
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return run('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec ${quoted}`], opts);
}

export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export interface KernelIds {
  prog: Set<number>;
  map: Set<number>;
  link: Set<number>;
}

/**
 * `bpftool -j KIND show` as objects. An object freed while bpftool walks the ids makes it print
 * an {"error": ...} entry and exit 255: such entries are dropped, the rest is still the listing.
 */
export function bpftoolShow(kind: 'prog' | 'map' | 'link'): Record<string, unknown>[] {
  let out: string;
  try {
    out = execFileSync('bpftool', ['-j', kind, 'show'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
    if (!out.trim().startsWith('[')) throw e;
  }
  return (JSON.parse(out || '[]') as Record<string, unknown>[]).filter((o) => typeof o.id === 'number');
}

function bpftoolIds(kind: 'prog' | 'map' | 'link'): Set<number> {
  return new Set(bpftoolShow(kind).map((o) => o.id as number));
}

/** Ids of every program, map and link in the kernel now, as bpftool lists them. */
export function kernelIds(): KernelIds {
  return { prog: bpftoolIds('prog'), map: bpftoolIds('map'), link: bpftoolIds('link') };
}

/** What bpftool lists now that was not there in `before` (waits for deferred frees). */
export async function leftSince(
  before: KernelIds,
  waitMs = 3000,
): Promise<{ prog: number[]; map: number[]; link: number[] }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const now = kernelIds();
    const diff = {
      prog: [...now.prog].filter((id) => !before.prog.has(id)),
      map: [...now.map].filter((id) => !before.map.has(id)),
      link: [...now.link].filter((id) => !before.link.has(id)),
    };
    if ((diff.prog.length === 0 && diff.map.length === 0 && diff.link.length === 0) || Date.now() > deadline)
      return diff;
    await sleep(50);
  }
}

export function writeFile(path: string, text: string): void {
  writeFileSync(path, text);
}
