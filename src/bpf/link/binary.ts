// Where a uprobe's or USDT's binary is: a path as given, or a bare name found the way the
// dynamic loader and the shell would — a shared library ("libc.so.6") in LD_LIBRARY_PATH, the
// directories of /etc/ld.so.conf.d and the standard and multiarch library directories; a
// program ("bash") in PATH. With a process id, a path missing here is looked for in that
// process's root (a container's file system).

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { NotFoundError } from '../../errors.js';

const MULTIARCH: Record<string, string> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  s390x: 's390x-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
};

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function ldSoConfDirs(): string[] {
  const dirs: string[] = [];
  try {
    for (const f of readdirSync('/etc/ld.so.conf.d').sort())
      if (f.endsWith('.conf'))
        for (const line of readFileSync(join('/etc/ld.so.conf.d', f), 'utf8').split('\n'))
          if (line.trim().startsWith('/')) dirs.push(line.trim());
  } catch {
    // no ld.so.conf.d: the standard directories remain
  }
  return dirs;
}

function libraryDirs(): string[] {
  const triple = MULTIARCH[process.arch];
  const multi = triple ? [`/lib/${triple}`, `/usr/lib/${triple}`] : [];
  const env = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return [...env, ...ldSoConfDirs(), ...multi, '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
}

/** The path of binary `name` (see above); NotFound naming where it looked. */
export function resolveBinary(name: string, pid?: number): string {
  if (name.includes('/')) {
    if (isFile(name)) return name;
    if (pid !== undefined && pid > 0 && isAbsolute(name) && isFile(`/proc/${pid}/root${name}`))
      return `/proc/${pid}/root${name}`;
    throw new NotFoundError(`no such binary ${name}`);
  }
  const library = /\.so($|\.)/.test(name);
  const dirs = library ? libraryDirs() : (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const d of dirs) {
    const p = join(d, name);
    if (existsSync(p) && isFile(p)) return p;
  }
  throw new NotFoundError(
    `no binary ${name} found in the ${library ? 'library directories (LD_LIBRARY_PATH, ld.so.conf, /lib, /usr/lib)' : 'PATH'}`,
    { hint: 'give its full path' },
  );
}
