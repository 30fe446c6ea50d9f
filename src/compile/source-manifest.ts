// kbpf.yaml: what a source directory says that its objects cannot (name, version, description,
// attach targets, descriptions of config variables, which maps to pin, how to show events).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { type AttachSpec, HOOKS, parseAttachString, parseShare } from '../package/package-spec.js';
import { BuildError } from './errors.js';

export interface SourceManifest {
  name?: string;
  version?: string;
  description?: string;
  /** attach: where; optional: run without it where this kernel cannot; group: its variants' group */
  programs: Record<string, { attach?: AttachSpec; optional?: boolean; group?: string }>;
  config: Record<string, { description?: string; default?: unknown }>;
  /** maxEntries: set before load (for maps the object leaves at 0); share: INSTANCE[:MAP] of another instance */
  maps: Record<string, { pin?: boolean; maxEntries?: number; share?: string }>;
  events: Record<string, { type?: string; columns?: string[] }>;
}

export const MANIFEST_FILE = 'kbpf.yaml';

function obj(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new BuildError(`${MANIFEST_FILE}: ${where} must be a mapping`);
  return v as Record<string, unknown>;
}

/** "tracepoint:syscalls/sys_enter_openat", "cgroup:connect4", "xdp:eth0", "tc:ingress:eth0", "sockmap:sock_map", "uprobe:/bin/bash:readline", "fentry:do_unlinkat", "perf_event:cpu-clock:99" */
export function parseAttach(value: unknown, where: string): AttachSpec {
  if (value && typeof value === 'object') {
    const a = value as { hook?: string };
    if (!a.hook || !HOOKS.includes(a.hook as AttachSpec['hook']))
      throw new BuildError(`${MANIFEST_FILE}: ${where}: unknown hook type "${a.hook}" (known: ${HOOKS.join(', ')})`);
    return value as AttachSpec;
  }
  if (typeof value !== 'string')
    throw new BuildError(
      `${MANIFEST_FILE}: ${where}: attach must be a string like "tracepoint:CATEGORY/NAME" or a mapping`,
    );
  try {
    return parseAttachString(value);
  } catch (e) {
    throw new BuildError(`${MANIFEST_FILE}: ${where}: ${(e as Error).message}`);
  }
}

export function readSourceManifest(dir: string): SourceManifest {
  const path = join(dir, MANIFEST_FILE);
  return existsSync(path) ? parseSourceManifest(readFileSync(path, 'utf8'), path) : parseSourceManifest('', path);
}

/** A name → entry record that has no inherited keys: a YAML key `__proto__` or `constructor` is just a name. */
function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Parses the text of a kbpf.yaml; every problem is a BuildError (Invalid). */
export function parseSourceManifest(text: string, path: string = MANIFEST_FILE): SourceManifest {
  let raw: unknown = {};
  try {
    raw = parse(text, { maxAliasCount: 100 }) ?? {};
  } catch (e) {
    throw new BuildError(`${path}: invalid YAML: ${(e as Error).message}`);
  }
  const top = obj(raw, 'the file');
  const known = new Set(['name', 'version', 'description', 'programs', 'config', 'maps', 'events']);
  for (const k of Object.keys(top))
    if (!known.has(k)) throw new BuildError(`${MANIFEST_FILE}: unknown key "${k}" (known: ${[...known].join(', ')})`);
  const str = (k: string) => {
    const v = top[k];
    if (v !== undefined && typeof v !== 'string' && typeof v !== 'number')
      throw new BuildError(`${MANIFEST_FILE}: ${k} must be a string`);
    return v === undefined ? undefined : String(v);
  };
  const programs: SourceManifest['programs'] = record();
  for (const [name, p] of Object.entries(obj(top.programs, 'programs'))) {
    const e = obj(p, `programs.${name}`);
    const entry: SourceManifest['programs'][string] = {};
    if (e.attach !== undefined) entry.attach = parseAttach(e.attach, `programs.${name}.attach`);
    if (e.optional !== undefined) {
      if (typeof e.optional !== 'boolean')
        throw new BuildError(`${MANIFEST_FILE}: programs.${name}.optional must be true or false`);
      entry.optional = e.optional;
    }
    if (e.group !== undefined) {
      if (typeof e.group !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(e.group))
        throw new BuildError(`${MANIFEST_FILE}: programs.${name}.group must be a name (letters, digits, _)`);
      entry.group = e.group;
    }
    programs[name] = entry;
  }
  const config: SourceManifest['config'] = record();
  for (const [name, c] of Object.entries(obj(top.config, 'config'))) {
    const e = typeof c === 'string' ? { description: c } : obj(c, `config.${name}`);
    config[name] = { description: e.description as string | undefined, default: e.default };
  }
  const maps: SourceManifest['maps'] = record();
  for (const [name, m] of Object.entries(obj(top.maps, 'maps'))) {
    const e = obj(m, `maps.${name}`);
    const entry: SourceManifest['maps'][string] = { pin: e.pin as boolean | undefined };
    if (e.maxEntries !== undefined) {
      if (typeof e.maxEntries !== 'number' || !Number.isSafeInteger(e.maxEntries) || e.maxEntries < 1)
        throw new BuildError(`${MANIFEST_FILE}: maps.${name}.maxEntries must be a positive integer`);
      entry.maxEntries = e.maxEntries;
    }
    if (e.share !== undefined) {
      if (typeof e.share !== 'string' || !parseShare(e.share, name))
        throw new BuildError(
          `${MANIFEST_FILE}: maps.${name}.share must be INSTANCE[:MAP], the map of another running instance`,
        );
      entry.share = e.share;
    }
    maps[name] = entry;
  }
  const events: SourceManifest['events'] = record();
  for (const [name, ev] of Object.entries(obj(top.events, 'events'))) {
    const e = obj(ev, `events.${name}`);
    if (e.columns !== undefined && !Array.isArray(e.columns))
      throw new BuildError(`${MANIFEST_FILE}: events.${name}.columns must be a list`);
    events[name] = { type: e.type as string | undefined, columns: e.columns as string[] | undefined };
  }
  return {
    name: str('name'),
    version: str('version'),
    description: str('description'),
    programs,
    config,
    maps,
    events,
  };
}
