// vmlinux.h for CO-RE builds, generated from the running kernel's BTF and cached per kernel
// (keyed by the BTF's sha256, so a kernel upgrade regenerates it).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Unsupported } from '../errors.js';
import { BuildError } from './errors.js';

export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';

export function ensureVmlinuxHeader(cacheDir: string): string {
  mkdirSync(cacheDir, { recursive: true });
  const header = join(cacheDir, 'vmlinux.h');
  const stamp = join(cacheDir, 'vmlinux.h.stamp');
  if (!existsSync(KERNEL_BTF))
    throw new BuildError(
      `cannot generate vmlinux.h: ${KERNEL_BTF} is missing (kernel built without CONFIG_DEBUG_INFO_BTF)`,
      [],
      Unsupported,
    );
  const id = createHash('sha256').update(readFileSync(KERNEL_BTF)).digest('hex');
  if (existsSync(header) && existsSync(stamp) && readFileSync(stamp, 'utf8') === id) return header;
  let text: Buffer;
  try {
    text = execFileSync('bpftool', ['btf', 'dump', 'file', KERNEL_BTF, 'format', 'c'], {
      maxBuffer: 1 << 30,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    throw new BuildError(
      `cannot generate vmlinux.h with bpftool: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`,
    );
  }
  const tmp = `${header}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, header);
  writeFileSync(stamp, id);
  return header;
}
