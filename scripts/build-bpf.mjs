#!/usr/bin/env node
// Compiles every *.bpf.c of the repository's own code (src/, apps/, test/, testbed/, bench/) into
// dist/<same path>.o, next to the compiled JavaScript that loads it — with the same compiler
// module `kbpf build` uses (src/compile: clang flags, the target architecture, vmlinux.h from the
// running kernel's BTF, cached in build/). Runs after tsc; recompiles only what changed.
// test/fixtures holds sources that tests give to `kbpf build` itself: not compiled here.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { compileBpf } = await import(join(root, 'dist/src/compile/clang.js'));
const { ensureVmlinuxHeader } = await import(join(root, 'dist/src/compile/vmlinux.js'));
const { KBPF_INCLUDE_DIR } = await import(join(root, 'dist/src/compile/builder.js'));
const { systemIncludeDirs, KBPF_COMPAT_DIR } = await import(join(root, 'dist/src/compile/build-env.js'));

const buildDir = join(root, 'build');
const roots = ['src', 'apps', 'test', 'testbed', 'bench'];

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (name.endsWith('.bpf.c')) yield p;
  }
}

const header = ensureVmlinuxHeader(buildDir);
// last, as kbpf build has them: UAPI headers (<linux/errno.h> of usdt.bpf.h) find <asm/…>
const sysDirs = systemIncludeDirs();
let built = 0;
for (const r of roots) {
  const dir = join(root, r);
  if (!existsSync(dir)) continue;
  for (const src of walk(dir)) {
    const out = join(root, 'dist', relative(root, src)).replace(/\.c$/, '.o');
    mkdirSync(dirname(out), { recursive: true });
    const headers = readdirSync(dirname(src))
      .filter((f) => f.endsWith('.h'))
      .map((f) => join(dirname(src), f));
    const deps = [src, header, ...headers];
    if (existsSync(out) && deps.every((d) => statSync(d).mtimeMs <= statSync(out).mtimeMs)) continue;
    try {
      // first, as kbpf build has it: what Debian's older libbpf headers lack (bpf_for, …)
      await compileBpf(src, out, {
        includeDirs: [KBPF_COMPAT_DIR, buildDir, KBPF_INCLUDE_DIR],
        systemIncludeDirs: sysDirs,
      });
    } catch (e) {
      console.error(`build-bpf: ${e.message}`);
      process.exit(1);
    }
    built++;
  }
}
if (built) console.log(`build-bpf: compiled ${built} BPF object(s)`);
