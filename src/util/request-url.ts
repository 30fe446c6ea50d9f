// The URL of an HTTP request as a server sees it. Servers here accept only the origin form of a
// request target ("/v1/instances?x=1"): taken relative to a base, "//host/path" would name a
// host and parse to another path (or fail to parse at all), so it is read as a path instead.
import { InvalidError } from '../errors.js';

/** The request's URL on `origin` (e.g. "http://kbpf"); a target that is not a path is Invalid. */
export function requestUrl(target: string | undefined, origin: string): URL {
  const t = target ?? '/';
  if (!t.startsWith('/'))
    throw new InvalidError(`request target must be a path, not ${JSON.stringify(t.slice(0, 100))}`);
  return new URL(`${origin}${t}`);
}
