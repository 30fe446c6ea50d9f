/**
 * Package references, with the grammar of OCI/Docker image references:
 *
 *   [host[:port]/]path[:tag][@sha256:<hex>]
 *
 * The first path component is a registry host when it contains "." or ":",
 * is "localhost", or is a bracketed IPv6 address. There is no default
 * registry: a reference without a host names a package in the local store.
 * Without tag and digest, the tag is `latest`.
 */

import { DIGEST_RE, digestHex } from './digest.js';
import { InvalidReferenceError } from './errors.js';

export interface Reference {
  /** `host[:port]`, absent for local-only names. */
  registry?: string;
  /** Slash-separated lowercase path, e.g. `opensnoop` or `tools/opensnoop`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_TAG = 'latest';

const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`);
const MAX_NAME_LENGTH = 255;

export interface ParseOptions {
  /** Tag used when the reference has neither tag nor digest; `null` leaves it unset. Default `latest`. */
  defaultTag?: string | null;
}

function fail(input: string, why: string): never {
  throw new InvalidReferenceError(`invalid reference "${input}": ${why}`);
}

function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

export function parseReference(input: string, options: ParseOptions = {}): Reference {
  if (typeof input !== 'string' || input.length === 0) fail(String(input), 'empty reference');
  if (/\s/.test(input)) fail(input, 'contains whitespace');
  if (input.includes('://')) fail(input, 'a reference has no scheme; write "host:port/name:tag", not a URL');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.length === 0) fail(input, 'nothing after "@" (expected a digest "sha256:<64 hex>")');
    if (!DIGEST_RE.test(digest)) {
      try {
        digestHex(digest);
      } catch (err) {
        fail(input, (err as Error).message);
      }
    }
  }
  if (rest.length === 0) fail(input, 'missing name before "@"');

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  // A colon in the first component followed by digits and a slash is a port, handled below.
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag.length === 0) fail(input, 'empty tag after ":"');
    if (!TAG_RE.test(tag)) {
      fail(
        input,
        tag.length > 128
          ? `tag is ${tag.length} characters long (at most 128)`
          : `tag "${tag}" may contain only letters, digits, "_", "." and "-", and must not start with "." or "-"`,
      );
    }
  }

  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && looksLikeHost(parts[0]!)) {
    registry = parts.shift()!;
    if (!HOST_RE.test(registry)) fail(input, `registry host "${registry}" is not a valid host[:port]`);
    const port = /:([0-9]+)$/.exec(registry)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) fail(input, `port ${port} is out of range`);
  }
  for (const part of parts) {
    if (part.length === 0) fail(input, 'empty path component (check for "//" or a leading or trailing "/")');
    if (!PATH_COMPONENT_RE.test(part)) {
      if (part !== part.toLowerCase() && PATH_COMPONENT_RE.test(part.toLowerCase())) {
        fail(input, `repository name must be lowercase ("${part}")`);
      }
      if (parts.length === 1 && looksLikeHost(part)) {
        fail(input, `"${part}" looks like a registry host but no package name follows it`);
      }
      fail(
        input,
        `name component "${part}" may contain only lowercase letters, digits and single separators ".", "_", "__" or "-", and must start and end with a letter or digit`,
      );
    }
  }
  const repository = parts.join('/');
  const fullName = registry ? `${registry}/${repository}` : repository;
  if (fullName.length > MAX_NAME_LENGTH)
    fail(input, `name is ${fullName.length} characters long (at most ${MAX_NAME_LENGTH})`);

  const defaultTag = options.defaultTag === undefined ? DEFAULT_TAG : options.defaultTag;
  if (tag === undefined && digest === undefined && defaultTag !== null) tag = defaultTag;

  const ref: Reference = { repository };
  if (registry !== undefined) ref.registry = registry;
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `host/repository`, or `repository` for a local name: what tags are grouped under. */
export function referenceName(ref: Reference): string {
  return ref.registry ? `${ref.registry}/${ref.repository}` : ref.repository;
}

export function formatReference(ref: Reference): string {
  let s = referenceName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** True for a tag that the grammar accepts. */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** Hosts that are spoken to over plain HTTP without being told: loopback only. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[')
    ? registry.slice(0, registry.indexOf(']') + 1)
    : registry.replace(/:[0-9]+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127(?:\.[0-9]{1,3}){3}$/.test(host);
}
