/** Shared helpers for the package tests (not a test file itself). */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KBPF_BYTECODE, KBPF_SOURCE, type PutPackageInput } from '../../src/package/index.js';

/** A fresh temp directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'kbpf-pkg-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A fake ELF: the magic then some bytes that differ with `seed`. */
export function fakeElf(seed: string, size = 64): Uint8Array {
  const out = new Uint8Array(size);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  for (let i = 8; i < size; i++) out[i] = (seed.charCodeAt(i % seed.length) + i) & 0xff;
  return out;
}

export function samplePackage(
  name = 'opensnoop',
  version = '1.0',
  extra: Record<string, unknown> = {},
): PutPackageInput {
  return {
    manifest: {
      name,
      version,
      description: `${name} test package`,
      programs: [{ name: 'handle_openat', attach: { type: 'tracepoint', target: 'syscalls/sys_enter_openat' } }],
      config: [{ name: 'target_pid', type: 'u32', default: 0 }],
      ...extra,
    },
    layers: [
      { mediaType: KBPF_BYTECODE, bytes: fakeElf(`${name}-${version}`), title: `${name}.bpf.o` },
      { mediaType: KBPF_SOURCE, bytes: new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4]), title: 'source.tar.gz' },
    ],
    created: '2025-01-02T03:04:05Z',
  };
}

/** Blob file names currently in a store. */
export async function blobFiles(root: string): Promise<string[]> {
  return (await readdir(join(root, 'blobs', 'sha256')).catch(() => [] as string[])).sort();
}

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export const DOCKER_REGISTRY_BIN = '/usr/bin/docker-registry';

/** Which of the Debian packages the registry end-to-end test needs are missing. */
export function missingRegistryTools(): string[] {
  const missing: string[] = [];
  if (!existsSync(DOCKER_REGISTRY_BIN)) missing.push('docker-registry');
  const path = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  if (!path.some((d) => d && existsSync(join(d, 'skopeo')))) missing.push('skopeo');
  return missing;
}

export interface RunningRegistry {
  host: string;
  port: number;
  dir: string;
  log: () => string;
  stop: () => Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts Debian's docker-registry (distribution 2.x) on a free loopback port
 * with its storage in a temp dir. `htpasswd` turns on basic auth.
 */
export async function startRegistry(options: { htpasswd?: string } = {}): Promise<RunningRegistry> {
  const { dir, cleanup } = await tempDir('kbpf-registry-');
  const { writeFile } = await import('node:fs/promises');
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    let config = [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: kbpf-test-secret',
      '',
    ].join('\n');
    if (options.htpasswd !== undefined) {
      await writeFile(join(dir, 'htpasswd'), options.htpasswd);
      config += ['auth:', '  htpasswd:', '    realm: kbpf-test', `    path: ${join(dir, 'htpasswd')}`, ''].join('\n');
    }
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, config);
    let output = '';
    const child = spawn(DOCKER_REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    let exited = false;
    const exitedPromise = new Promise<void>((r) =>
      child.once('exit', () => {
        exited = true;
        running.delete(child);
        r();
      }),
    );
    const stop = async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitedPromise;
        clearTimeout(timer);
      }
      await cleanup();
    };
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.status === 200 || res.status === 401) {
          return { host: `127.0.0.1:${port}`, port, dir, log: () => output, stop };
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    lastError = output;
    if (!exited) {
      child.kill('SIGKILL');
      await exitedPromise;
    }
  }
  await cleanup();
  throw new Error(`docker-registry did not start on loopback: ${lastError.slice(-2000)}`);
}

/** Runs a command; resolves with its output and exit code (never rejects on a non-zero exit). */
export function run(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}
