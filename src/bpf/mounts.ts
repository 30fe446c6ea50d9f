// The kernel file systems the runtime needs: bpffs for pins, tracefs for tracepoints.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { BpfError } from './errors.js';

function mounted(path: string, fstype: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => {
      const [, mnt, type] = l.split(' ');
      return mnt === path && type === fstype;
    });
}

function ensureMount(path: string, fstype: string): void {
  if (mounted(path, fstype)) return;
  try {
    execFileSync('mount', ['-t', fstype, fstype, path], { stdio: 'pipe' });
  } catch (e) {
    throw new BpfError('mount', `${fstype} at ${path}`, 1, {
      hint: String((e as { stderr?: Buffer }).stderr ?? e).trim(),
    });
  }
}

export const BPFFS = '/sys/fs/bpf';

export function ensureBpffs(): void {
  ensureMount(BPFFS, 'bpf');
}

export function ensureTracefs(): void {
  if (existsSync('/sys/kernel/tracing/events')) return;
  ensureMount('/sys/kernel/tracing', 'tracefs');
}
