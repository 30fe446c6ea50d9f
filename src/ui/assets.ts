// The web view's page as the build bundled it (scripts/build-ui.mjs: dist/ui/index.html, app.js,
// app.css), read once into memory: the server never reads the disk per request, and nothing of the
// page comes from anywhere else.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NotFoundError } from '../errors.js';

/** dist/ui, next to dist/src/ui where this module is compiled to. */
export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

export interface Asset {
  body: Buffer;
  type: string;
}

const FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** The page's files by URL path; NotFoundError when the page was not built. */
export function loadAssets(dir = DEFAULT_ASSETS_DIR): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const [path, file] of Object.entries(FILES)) {
    let body: Buffer;
    try {
      body = readFileSync(join(dir, file));
    } catch (e) {
      throw new NotFoundError(`the web view's page is not built (${join(dir, file)}): run npm run build`, {
        cause: e,
      });
    }
    out.set(path, { body, type: TYPES[file.slice(file.lastIndexOf('.') + 1)]! });
  }
  return out;
}
