#!/usr/bin/env node
// Fails when the repository's TypeScript has an import cycle: static imports and exports (type-only
// ones included: a cycle of types is still a knot in the design) and dynamic import() calls of
// relative paths. Usage: node scripts/check-cycles.mjs [DIR...] (default: src apps bench testbed test)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['src', 'apps', 'bench', 'testbed', 'test'];

const files = new Set();
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules' && name !== 'dist') walk(p);
    } else if (p.endsWith('.ts')) files.add(resolve(p));
  }
}
for (const d of dirs) walk(resolve(root, d));

const STATIC = /^\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;
const DYNAMIC = /import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
const graph = new Map();
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const deps = [...text.matchAll(STATIC), ...text.matchAll(DYNAMIC)]
    .map((m) => resolve(dirname(f), m[1]).replace(/\.js$/, '.ts'))
    .filter((d) => files.has(d));
  graph.set(f, deps);
}

const VISITING = 1;
const DONE = 2;
const state = new Map();
const path = [];
const cycles = [];
function visit(f) {
  state.set(f, VISITING);
  path.push(f);
  for (const d of graph.get(f)) {
    if (state.get(d) === VISITING) cycles.push([...path.slice(path.indexOf(d)), d]);
    else if (!state.has(d)) visit(d);
  }
  path.pop();
  state.set(f, DONE);
}
for (const f of files) if (!state.has(f)) visit(f);

for (const c of cycles) console.error(`import cycle: ${c.map((f) => relative(root, f)).join(' -> ')}`);
if (cycles.length) process.exit(1);
console.log(`no import cycle in ${files.size} files`);
