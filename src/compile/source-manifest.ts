// kbpf.yaml: what a source directory says that its objects cannot (name, version, description,
// attach targets, descriptions of config variables, which maps to pin, how to show events, and
// how to compile: defines, include directories, extra sources and compiler flags).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  type AttachSpec,
  HOOKS,
  type LogLimits,
  logLimitsProblem,
  type ProgramOrder,
  parseAttachString,
  parseByteSize,
  parseOrder,
  parseShare,
  SPEC_LIMITS,
} from '../package/package-spec.js';
import { BuildError } from './errors.js';

export interface SourceManifest {
  name?: string;
  version?: string;
  description?: string;
  /**
   * attach: where; optional: run without it where this kernel cannot; group: its variants' group;
   * order: its place among other instances' programs on the same hook
   */
  programs: Record<string, { attach?: AttachSpec; optional?: boolean; group?: string; order?: ProgramOrder }>;
  config: Record<string, { description?: string; default?: unknown }>;
  /** maxEntries: set before load (for maps the object leaves at 0); share: INSTANCE[:MAP] of another instance */
  /** programs: a program array's entries (index → program) filled after load (tail calls) */
  maps: Record<string, { pin?: boolean; maxEntries?: number; share?: string; programs?: Record<string, string> }>;
  /** poll_ms: the agent also reads the ring every poll_ms (its program wakes the reader only now and then) */
  events: Record<string, { type?: string; columns?: string[]; format?: Record<string, string>; pollMs?: number }>;
  build: BuildSettings;
  /** a Wasm guest's run settings (a directory with main.c or NAME.wasm.c, or one prebuilt .wasm) */
  guest?: GuestSettings;
  /** an event processor: a C source compiled for wasm32 (docs/wasm.md), and the events it sees */
  processor?: { source: string; events: string[] };
  /** the size of each instance's event log (`logs: { max_bytes: 32Mi, keep: 2 }`) */
  logs?: LogLimits;
  /** how the package's histograms (`slots` arrays) count: log2 or linear (absent: worked out from the source) */
  histograms?: 'log2' | 'linear';
}

/** kbpf.yaml `guest:`: what a guest package runs with. */
export interface GuestSettings {
  args: string[];
  /** capabilities beyond what the embedded objects declare */
  allow: { programTypes?: string[]; attachTargets?: string[]; maps?: string[] };
  limits?: { memoryMb?: number; cpuMs?: number; windowMs?: number };
}

/** kbpf.yaml `build:`: how the package's C compiles. */
export interface BuildSettings {
  /** -DNAME=VALUE ('' for a bare -DNAME) */
  defines: Record<string, string>;
  /** include directories, relative to the source directory */
  include: string[];
  /** further C files (relative, in the source directory) compiled into objects like *.bpf.c */
  sources: string[];
  /** compiler flags: warnings (-W…), code generation (-f…, -mcpu=v1..v4, -malu32), -std=… */
  flags: string[];
}

/** Field formats kbpf.yaml may give an event field (the human output shows the value so). */
export const FIELD_FORMATS = [
  'ipv4',
  'ipv6',
  'port',
  'net-port',
  'hex',
  'flags:ENUM',
  'enum:ENUM',
  'kstack',
  'ustack',
  'stack',
  'kstack:MAP',
  'ustack:MAP',
  'text',
] as const;

export function checkFieldFormat(v: unknown, where: string): string {
  if (
    typeof v === 'string' &&
    (/^(ipv4|ipv6|port|net-port|hex|text)$/.test(v) ||
      /^(flags|enum):[A-Za-z_]\w*$/.test(v) ||
      /^(k|u)?stack(:[A-Za-z_]\w*)?$/.test(v))
  )
    return v;
  throw new BuildError(
    `${MANIFEST_FILE}: ${where}: unknown format ${JSON.stringify(v)} (known: ${FIELD_FORMATS.join(', ')})`,
  );
}

const C_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FLAG_FORMS: { re: RegExp; what: string }[] = [
  { re: /^-W[A-Za-z0-9_=-]+$/, what: '-W… (warnings)' },
  { re: /^-f[A-Za-z0-9_=-]+$/, what: '-f… (code generation)' },
  { re: /^-mcpu=(v[1-4]|probe|generic)$/, what: '-mcpu=v1..v4' },
  { re: /^-malu32$/, what: '-malu32' },
  { re: /^-std=[a-z0-9+]+$/, what: '-std=…' },
];

function list(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new BuildError(`${MANIFEST_FILE}: ${where} must be a list`);
  return v;
}

function relativePath(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw new BuildError(`${MANIFEST_FILE}: ${where} must be a path`);
  if (v.startsWith('/') || v.split('/').includes('..'))
    throw new BuildError(
      `${MANIFEST_FILE}: ${where}: ${JSON.stringify(v)} must be a path inside the source directory (no "/…" or "..")`,
    );
  return v;
}

function defineValue(v: unknown, where: string): string {
  if (v === null || v === undefined || v === true) return '';
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
    throw new BuildError(`${MANIFEST_FILE}: ${where} must be a string or a number`);
  const s = v === false ? '0' : String(v);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new BuildError(`${MANIFEST_FILE}: ${where} contains control characters`);
  return s;
}

/** Parses kbpf.yaml's `build:` mapping; every problem names the key. */
export function parseBuildSettings(v: unknown): BuildSettings {
  const b = obj(v, 'build');
  const known = ['defines', 'include', 'sources', 'flags'];
  for (const k of Object.keys(b))
    if (!known.includes(k))
      throw new BuildError(`${MANIFEST_FILE}: build: unknown key "${k}" (known: ${known.join(', ')})`);
  const defines: Record<string, string> = record();
  const define = (name: string, value: unknown, where: string): void => {
    if (!C_NAME.test(name))
      throw new BuildError(`${MANIFEST_FILE}: ${where}: ${JSON.stringify(name)} is not a macro name`);
    defines[name] = defineValue(value, where);
  };
  if (Array.isArray(b.defines)) {
    b.defines.forEach((d, i) => {
      if (typeof d !== 'string')
        throw new BuildError(`${MANIFEST_FILE}: build.defines[${i}] must be NAME or NAME=VALUE`);
      const eq = d.indexOf('=');
      define(eq < 0 ? d : d.slice(0, eq), eq < 0 ? '' : d.slice(eq + 1), `build.defines[${i}]`);
    });
  } else for (const [k, val] of Object.entries(obj(b.defines, 'build.defines'))) define(k, val, `build.defines.${k}`);
  const include = list(b.include, 'build.include').map((d, i) => relativePath(d, `build.include[${i}]`));
  const sources = list(b.sources, 'build.sources').map((f, i) => {
    const p = relativePath(f, `build.sources[${i}]`);
    if (!p.endsWith('.c'))
      throw new BuildError(`${MANIFEST_FILE}: build.sources[${i}]: ${JSON.stringify(p)} is not a .c file`);
    return p;
  });
  const flags = list(b.flags, 'build.flags').map((f, i) => {
    if (typeof f !== 'string' || !FLAG_FORMS.some((x) => x.re.test(f)))
      throw new BuildError(
        `${MANIFEST_FILE}: build.flags[${i}]: ${JSON.stringify(f)} is not a flag kbpf passes on (allowed: ${FLAG_FORMS.map((x) => x.what).join(', ')}; use build.defines and build.include for -D and -I)`,
      );
    return f;
  });
  return { defines, include, sources, flags };
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
  const known = new Set([
    'name',
    'version',
    'description',
    'build',
    'programs',
    'config',
    'maps',
    'events',
    'guest',
    'processor',
    'logs',
    'histograms',
  ]);
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
    if (e.order !== undefined) {
      const order = parseOrder(e.order);
      if (typeof order === 'string') throw new BuildError(`${MANIFEST_FILE}: programs.${name}.order ${order}`);
      entry.order = order;
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
    if (e.programs !== undefined) {
      const list: Record<string, string> = record();
      for (const [i, prog] of Object.entries(obj(e.programs, `maps.${name}.programs`))) {
        if (!/^\d+$/.test(i) || typeof prog !== 'string')
          throw new BuildError(
            `${MANIFEST_FILE}: maps.${name}.programs: entries are INDEX: PROGRAM (got ${i}: ${JSON.stringify(prog)})`,
          );
        list[i] = prog;
      }
      entry.programs = list;
    }
    maps[name] = entry;
  }
  const events: SourceManifest['events'] = record();
  for (const [name, ev] of Object.entries(obj(top.events, 'events'))) {
    const e = obj(ev, `events.${name}`);
    if (e.columns !== undefined && !Array.isArray(e.columns))
      throw new BuildError(`${MANIFEST_FILE}: events.${name}.columns must be a list`);
    const format: Record<string, string> = record();
    for (const [field, f] of Object.entries(obj(e.format, `events.${name}.format`)))
      format[field] = checkFieldFormat(f, `events.${name}.format.${field}`);
    const poll = e.poll_ms;
    if (
      poll !== undefined &&
      !(Number.isInteger(poll) && (poll as number) >= 1 && (poll as number) <= SPEC_LIMITS.pollMs)
    )
      throw new BuildError(
        `${MANIFEST_FILE}: events.${name}.poll_ms must be a whole number of milliseconds, 1 to ${SPEC_LIMITS.pollMs}`,
      );
    events[name] = {
      type: e.type as string | undefined,
      columns: e.columns as string[] | undefined,
      ...(Object.keys(format).length ? { format } : {}),
      ...(poll !== undefined ? { pollMs: poll as number } : {}),
    };
  }
  return {
    name: str('name'),
    version: str('version'),
    description: str('description'),
    programs,
    config,
    maps,
    events,
    build: parseBuildSettings(top.build),
    ...(top.guest !== undefined ? { guest: parseGuestSettings(top.guest) } : {}),
    ...(top.processor !== undefined ? { processor: parseProcessor(top.processor) } : {}),
    ...(top.logs !== undefined ? { logs: parseLogs(top.logs) } : {}),
    ...(top.histograms !== undefined ? { histograms: parseHistograms(top.histograms) } : {}),
  };
}

function parseHistograms(v: unknown): 'log2' | 'linear' {
  if (v !== 'log2' && v !== 'linear')
    throw new BuildError(`${MANIFEST_FILE}: histograms must be log2 or linear (got ${JSON.stringify(v)})`);
  return v;
}

/** kbpf.yaml `logs: { max_bytes: SIZE, keep: N }`: SIZE is bytes or a number with Ki, Mi or Gi. */
function parseLogs(v: unknown): LogLimits {
  const l = obj(v, 'logs');
  const out: LogLimits = {};
  for (const [k, x] of Object.entries(l)) {
    if (k === 'max_bytes') {
      const n = parseByteSize(x);
      if (n === undefined)
        throw new BuildError(
          `${MANIFEST_FILE}: logs.max_bytes must be a size in bytes, or a number with Ki, Mi or Gi (e.g. 32Mi); got ${JSON.stringify(x)}`,
        );
      out.maxBytes = n;
    } else if (k === 'keep') {
      if (typeof x !== 'number' || !Number.isSafeInteger(x))
        throw new BuildError(`${MANIFEST_FILE}: logs.keep must be a whole number of rotated files`);
      out.keep = x;
    } else throw new BuildError(`${MANIFEST_FILE}: logs: unknown key "${k}" (known: max_bytes, keep)`);
  }
  const problem = logLimitsProblem(out);
  if (problem) throw new BuildError(`${MANIFEST_FILE}: logs: ${problem}`);
  return out;
}

/** kbpf.yaml `processor: FILE.c` or `processor: { source: FILE.c, events: [MAP…] }`. */
function parseProcessor(v: unknown): { source: string; events: string[] } {
  const p = typeof v === 'string' ? { source: v } : obj(v, 'processor');
  for (const k of Object.keys(p))
    if (k !== 'source' && k !== 'events')
      throw new BuildError(`${MANIFEST_FILE}: processor: unknown key "${k}" (known: source, events)`);
  if (typeof p.source !== 'string' || !p.source.endsWith('.c'))
    throw new BuildError(`${MANIFEST_FILE}: processor: source must name a C file of the directory (e.g. processor.c)`);
  const events = list(p.events, 'processor.events').map((e, i) => {
    if (typeof e !== 'string' || e === '')
      throw new BuildError(`${MANIFEST_FILE}: processor.events[${i}] must be an event map's name`);
    return e;
  });
  return { source: relativePath(p.source, 'processor.source'), events };
}

function strings(v: unknown, where: string): string[] {
  return list(v, where).map((x, i) => {
    if (typeof x !== 'string' || x === '') throw new BuildError(`${MANIFEST_FILE}: ${where}[${i}] must be a string`);
    return x;
  });
}

/** kbpf.yaml `guest:` { args, allow: { programTypes, attachTargets, maps }, limits: { memoryMb, cpuMs, windowMs } }. */
export function parseGuestSettings(v: unknown): GuestSettings {
  const g = obj(v, 'guest');
  for (const k of Object.keys(g))
    if (!['args', 'allow', 'limits'].includes(k))
      throw new BuildError(`${MANIFEST_FILE}: guest: unknown key "${k}" (known: args, allow, limits)`);
  const allowIn = obj(g.allow, 'guest.allow');
  const allow: GuestSettings['allow'] = {};
  for (const k of Object.keys(allowIn)) {
    if (k !== 'programTypes' && k !== 'attachTargets' && k !== 'maps')
      throw new BuildError(
        `${MANIFEST_FILE}: guest.allow: unknown key "${k}" (known: programTypes, attachTargets, maps)`,
      );
    allow[k] = strings(allowIn[k], `guest.allow.${k}`);
  }
  const limitsIn = obj(g.limits, 'guest.limits');
  const limits: NonNullable<GuestSettings['limits']> = {};
  for (const [k, x] of Object.entries(limitsIn)) {
    if (k !== 'memoryMb' && k !== 'cpuMs' && k !== 'windowMs')
      throw new BuildError(`${MANIFEST_FILE}: guest.limits: unknown key "${k}" (known: memoryMb, cpuMs, windowMs)`);
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1)
      throw new BuildError(`${MANIFEST_FILE}: guest.limits.${k} must be a positive integer`);
    limits[k] = x;
  }
  return {
    args: g.args === undefined ? [] : strings(g.args, 'guest.args'),
    allow,
    ...(Object.keys(limits).length ? { limits } : {}),
  };
}
