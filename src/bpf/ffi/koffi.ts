// koffi is CommonJS; this is the one place that imports it.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: koffi's FFI surface is dynamic (functions and types are built at runtime); call sites cast results
export const koffi: any = require('koffi');

/** An opaque native pointer as koffi hands it to JavaScript. */
export type Pointer = unknown;

/** Address of a native pointer (0n for NULL). */
export function addressOf(p: Pointer): bigint {
  return p == null ? 0n : (koffi.address(p) as bigint);
}

/** errno of the calling thread after the last native call. */
export function lastErrno(): number {
  return koffi.errno() as number;
}
