// Instance names: what `run --name` accepts, and what every other place that turns a name into
// a path (the API, the state store, the pins, the logs) checks again, so that no name from
// outside (an API path segment, a file in the state directory) reaches a path outside its base.
import { resolve, sep } from 'node:path';
import { InvalidError } from '../errors.js';

export const NAME_RE = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;

export function isInstanceName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

/** Throws Invalid unless `name` is an instance name. */
export function checkInstanceName(name: unknown, what = 'instance name'): string {
  if (!isInstanceName(name))
    throw new InvalidError(
      `invalid ${what} ${JSON.stringify(name)}: use lower-case letters, digits, '-', '_' and '.', at most 63 characters`,
    );
  return name;
}

/** `base`/`child` resolved, refused (Invalid) unless it lies strictly inside `base`. */
export function pathUnder(base: string, child: string): string {
  const root = resolve(base);
  const p = resolve(root, child);
  if (!p.startsWith(root + sep) || p === root)
    throw new InvalidError(`${JSON.stringify(child)} is not a name inside ${root}`);
  return p;
}
