import { readFileSync } from 'node:fs';

/** kbpf's version, from package.json. */
export const KBPF_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
