#!/usr/bin/env node
// Compiles every *.bpf.c of the repository's own code (src/, apps/, test/, bench/) into
// dist/<same path>.o, next to the compiled JavaScript that loads it. vmlinux.h is generated
// once per kernel from /sys/kernel/btf/vmlinux and cached in build/.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build');
const roots = ['src', 'apps', 'test', 'testbed', 'bench'];

export function ensureVmlinuxHeader() {
  mkdirSync(buildDir, { recursive: true });
  const header = join(buildDir, 'vmlinux.h');
  const stamp = join(buildDir, 'vmlinux.h.stamp');
  const btf = readFileSync('/sys/kernel/btf/vmlinux');
  const id = createHash('sha256').update(btf).digest('hex');
  if (existsSync(header) && existsSync(stamp) && readFileSync(stamp, 'utf8') === id) return header;
  const text = execFileSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux', 'format', 'c'], {
    maxBuffer: 1 << 30,
  });
  writeFileSync(header, text);
  writeFileSync(stamp, id);
  return header;
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (name.endsWith('.bpf.c')) yield p;
  }
}

const header = ensureVmlinuxHeader();
let built = 0;
for (const r of roots) {
  const dir = join(root, r);
  if (!existsSync(dir)) continue;
  for (const src of walk(dir)) {
    const out = join(root, 'dist', relative(root, src)).replace(/\.c$/, '.o');
    mkdirSync(dirname(out), { recursive: true });
    const deps = [
      src,
      header,
      ...readdirSync(dirname(src))
        .filter((f) => f.endsWith('.h'))
        .map((f) => join(dirname(src), f)),
    ];
    if (existsSync(out) && deps.every((d) => statSync(d).mtimeMs <= statSync(out).mtimeMs)) continue;
    try {
      execFileSync(
        'clang',
        [
          '-g',
          '-O2',
          '-target',
          'bpf',
          '-D__TARGET_ARCH_x86',
          '-Wall',
          '-Wno-unused-function',
          '-I',
          buildDir,
          '-I',
          join(root, 'src/compile/include'),
          '-I',
          dirname(src),
          '-c',
          src,
          '-o',
          out,
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
    } catch {
      console.error(`build-bpf: failed to compile ${relative(root, src)}`);
      process.exit(1);
    }
    built++;
  }
}
if (built) console.log(`build-bpf: compiled ${built} BPF object(s)`);
