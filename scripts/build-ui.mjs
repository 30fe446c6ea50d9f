#!/usr/bin/env node
// Builds the web view's page (src/ui/page/) into dist/ui/: the TypeScript is type-checked
// (src/ui/page/tsconfig.json: JSX for preact, the DOM's types), then esbuild bundles main.tsx with
// preact and the stylesheet into app.js and app.css beside index.html. Everything the page needs is
// in those three files; the web view's server (src/ui/server.ts) serves them and nothing else.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const page = join(root, 'src/ui/page');
const out = join(root, 'dist/ui');

execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(page, 'tsconfig.json')], {
  stdio: 'inherit',
});
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(page, 'main.tsx') },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
await build({
  entryPoints: { app: join(page, 'style.css') },
  outdir: out,
  bundle: true,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(join(page, 'index.html'), join(out, 'index.html'));
