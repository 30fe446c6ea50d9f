#!/usr/bin/env node
// Fails when the modules under src/ import each other in a cycle. Follows static imports and
// re-exports (type-only ones too: a cycle of types is still a knot in the design) and dynamic
// import('…') calls with a literal path. Usage: node scripts/check-import-cycles.mjs [dir]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? 'src');
const files = [];
(function walk(d) {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
  }
})(root);

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(=])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

const edges = new Map();
for (const f of files) {
  const text = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const deps = new Set();
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(f), spec.replace(/\.js$/, '.ts'));
    if (existsSync(target)) deps.add(target);
  }
  edges.set(f, [...deps]);
}

// Tarjan's strongly connected components: every component of more than one module is a cycle
let index = 0;
const idx = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
function connect(v) {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  onStack.add(v);
  for (const w of edges.get(v) ?? []) {
    if (!idx.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const c = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      c.push(w);
    } while (w !== v);
    if (c.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(c);
  }
}
for (const f of files) if (!idx.has(f)) connect(f);

const n = [...edges.values()].reduce((s, d) => s + d.length, 0);
if (cycles.length === 0) {
  console.log(`no import cycles: ${files.length} modules, ${n} imports under ${relative(process.cwd(), root) || '.'}`);
} else {
  for (const c of cycles) console.log(`cycle: ${c.map((f) => relative(process.cwd(), f)).join(' <-> ')}`);
  process.exitCode = 1;
}
