/**
 * Registry credentials and the WWW-Authenticate challenge.
 *
 * Credentials come from the caller, or from docker-style auth files
 * (`{"auths": {"host:port": {"auth": base64("user:password")}}}`, also
 * `credHelpers` / `credsStore` naming a `docker-credential-*` helper), looked
 * up in this order, the first file with an answer for the registry winning:
 *
 *   $REGISTRY_AUTH_FILE
 *   $XDG_RUNTIME_DIR/containers/auth.json      (podman, skopeo login)
 *   $DOCKER_CONFIG/config.json, else ~/.docker/config.json   (docker login)
 */

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PackageError } from './errors.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (docker's `identitytoken`), exchanged at the token server. */
  identityToken?: string;
  /** A bearer token sent as is (docker's `registrytoken`). */
  registryToken?: string;
}

/** Answers the credentials for a registry host (`host[:port]`), or undefined for anonymous access. */
export type CredentialsProvider = (registry: string, repository?: string) => Promise<Credentials | undefined>;

export interface AuthFileOptions {
  /** Environment to read REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, DOCKER_CONFIG and HOME from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Explicit list of auth files, instead of the default search. */
  files?: string[];
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The auth files searched, in order. */
export function authFilePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  const dockerDir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  paths.push(join(dockerDir, 'config.json'));
  return paths;
}

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PackageError('AUTH_CONFIG', `cannot read registry auth file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as AuthFile;
  } catch (err) {
    throw new PackageError('AUTH_CONFIG', `registry auth file ${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** `https://host:port/v1/` → `host:port`; `host/ns/repo` stays as is (podman's per-repository keys). */
function normalizeKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  if (k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io';
  return k;
}

/** Keys to try for a registry and repository, most specific first. */
function candidateKeys(registry: string, repository?: string): string[] {
  const host = normalizeKey(registry);
  const keys: string[] = [];
  if (repository) {
    const parts = repository.split('/');
    for (let n = parts.length; n > 0; n--) keys.push(`${host}/${parts.slice(0, n).join('/')}`);
  }
  keys.push(host);
  return keys;
}

function entryToCredentials(entry: AuthEntry, where: string): Credentials | undefined {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    throw new PackageError('AUTH_CONFIG', `${where} is not an object`);
  for (const k of ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const)
    if (entry[k] !== undefined && typeof entry[k] !== 'string')
      throw new PackageError('AUTH_CONFIG', `${where}: "${k}" is not a string`);
  const c: Credentials = {};
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new PackageError('AUTH_CONFIG', `${where}: "auth" is not base64 of "user:password"`);
    c.username = decoded.slice(0, colon);
    c.password = decoded.slice(colon + 1);
  }
  if (entry.username !== undefined) c.username = entry.username;
  if (entry.password !== undefined) c.password = entry.password;
  if (entry.identitytoken) c.identityToken = entry.identitytoken;
  if (entry.registrytoken) c.registryToken = entry.registrytoken;
  return Object.keys(c).length > 0 ? c : undefined;
}

/**
 * Credentials per registry host from the text of a docker config JSON (`{"auths": {...}}`), as a
 * Kubernetes pull secret's `.dockerconfigjson` holds it.
 */
export function credentialsFromDockerConfig(json: string, where: string): Record<string, Credentials> {
  let file: AuthFile;
  try {
    file = JSON.parse(json) as AuthFile;
  } catch (err) {
    throw new PackageError('AUTH_CONFIG', `${where} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (file === null || typeof file !== 'object' || Array.isArray(file))
    throw new PackageError('AUTH_CONFIG', `${where} is not a JSON object`);
  if (file.auths !== undefined && (file.auths === null || typeof file.auths !== 'object' || Array.isArray(file.auths)))
    throw new PackageError('AUTH_CONFIG', `${where}: "auths" is not an object`);
  const out: Record<string, Credentials> = Object.create(null);
  for (const [key, entry] of Object.entries(file.auths ?? {})) {
    const c = entryToCredentials(entry, `${where}: auths["${key}"]`);
    if (c) out[normalizeKey(key).replace(/\/.*$/, '')] = c;
  }
  return out;
}

/** Runs `docker-credential-<helper> get`, the docker credential helper protocol. */
export function runCredentialHelper(
  helper: string,
  registry: string,
  timeoutMs = 30_000,
): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const out = String(stdout).trim();
      if (err) {
        const text = `${out} ${String(stderr).trim()}`.trim();
        if (/credentials not found/i.test(text)) return resolve(undefined);
        return reject(
          new PackageError(
            'AUTH_CONFIG',
            `credential helper ${program} failed for ${registry}: ${text || err.message}`,
            { cause: err },
          ),
        );
      }
      try {
        const v = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!v.Secret) return resolve(undefined);
        resolve(
          v.Username === '<token>' ? { identityToken: v.Secret } : { username: v.Username ?? '', password: v.Secret },
        );
      } catch {
        reject(
          new PackageError(
            'AUTH_CONFIG',
            `credential helper ${program} answered something that is not JSON for ${registry}`,
          ),
        );
      }
    });
    child.stdin?.end(registry);
  });
}

/** Looks a registry up in the auth files; undefined when none has an entry. */
export async function credentialsFromAuthFiles(
  registry: string,
  repository?: string,
  options: AuthFileOptions = {},
): Promise<Credentials | undefined> {
  const files = options.files ?? authFilePaths(options.env ?? process.env);
  const keys = candidateKeys(registry, repository);
  for (const path of files) {
    const file = await readAuthFile(path);
    if (!file) continue;
    // null-prototype records: a key "__proto__" or "constructor" in the file is just a host name
    const auths: Record<string, AuthEntry> = Object.create(null);
    for (const [k, v] of Object.entries(file.auths ?? {})) auths[normalizeKey(k)] = v;
    const helpers: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(file.credHelpers ?? {}))
      if (typeof v === 'string') helpers[normalizeKey(k)] = v;
    for (const key of keys) {
      if (helpers[key]) return runCredentialHelper(helpers[key]!, registry);
      const entry = auths[key];
      if (entry) {
        const creds = entryToCredentials(entry, `${path}, entry "${key}"`);
        if (creds) return creds;
      }
    }
    if (file.credsStore) {
      const creds = await runCredentialHelper(file.credsStore, registry);
      if (creds) return creds;
    }
  }
  return undefined;
}

/** A provider reading the auth files at each call (so a `login` in between is seen). */
export function authFileCredentials(options: AuthFileOptions = {}): CredentialsProvider {
  return (registry, repository) => credentialsFromAuthFiles(registry, repository, options);
}

/** A provider answering fixed credentials for every registry (or only the listed ones). */
export function staticCredentials(creds: Credentials, registries?: string[]): CredentialsProvider {
  return async (registry) => (registries === undefined || registries.includes(registry) ? creds : undefined);
}

export interface Challenge {
  /** Lowercase: `basic` or `bearer` (or another scheme kbpf does not speak). */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235), e.g.
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"`.
 * Several challenges in one header are returned in order.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && /[\s,]/.test(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skipWs();
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    for (;;) {
      while (i < n && /\s/.test(header[i]!)) i++;
      const save = i;
      const key = token();
      while (i < n && /\s/.test(header[i]!)) i++;
      if (!key || header[i] !== '=') {
        // token68 (e.g. `Basic abc==`) or the start of the next challenge
        if (key && !challenge.params.token68 && Object.keys(challenge.params).length === 0 && header[i] !== ',') {
          // `key` was a token68 value like "abc=="; consume trailing "="
          while (i < n && header[i] === '=') i++;
          challenge.params.token68 = header.slice(save, i);
          continue;
        }
        i = save;
        break;
      }
      i++; // '='
      while (i < n && /\s/.test(header[i]!)) i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // closing quote
      } else {
        value = token();
      }
      challenge.params[key.toLowerCase()] = value;
      while (i < n && /\s/.test(header[i]!)) i++;
      if (header[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}
