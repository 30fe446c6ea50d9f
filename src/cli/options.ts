// Options several verbs share, and the parsers of option values (a bad value is refused by
// commander before anything is sent to the agent).
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type AttachOverrides, logLimitsProblem, parseByteSize, parseOrderString } from '../package/package-spec.js';
import { DURATION_EXAMPLES, parseSince, TIME_EXAMPLE } from '../util/duration.js';

const VAR_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function keyValue(what: string, keyRe: RegExp, keyDesc: string) {
  return (value: string, previous: [string, string][] = []): [string, string][] => {
    const i = value.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`expected ${what} (got "${value}")`);
    const key = value.slice(0, i);
    if (!keyRe.test(key)) throw new InvalidArgumentError(`"${key}" is not ${keyDesc}`);
    return [...previous, [key, value.slice(i + 1)]];
  };
}

const parseSet = keyValue('var=value', VAR_RE, 'a config variable name (letters, digits and _)');
const parseAttach = keyValue('program=target', /^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a program name');
const MAP_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const parseMapSizeEntry = keyValue('MAP=N', MAP_NAME, 'a map name');
const parseShareEntry = keyValue('MAP=INSTANCE[:MAP]', MAP_NAME, 'a map name');

/** --map-size MAP=N (repeatable): of kbpf run / upgrade and kubectl bpf run */
export function parseMapSize(value: string, previous: [string, string][] = []): [string, string][] {
  const out = parseMapSizeEntry(value, previous);
  if (!/^[1-9]\d{0,9}$/.test(out.at(-1)![1]))
    throw new InvalidArgumentError(
      `the size of a map is a positive integer (got "${value}"), e.g. --map-size counts=10240`,
    );
  return out;
}

/** --share-map MAP=INSTANCE[:MAP] (repeatable): of kbpf run / upgrade and kubectl bpf run */
export function parseShare(value: string, previous: [string, string][] = []): [string, string][] {
  const out = parseShareEntry(value, previous);
  if (!/^[a-z0-9][a-z0-9_.-]*(:[A-Za-z_][A-Za-z0-9_]*)?$/.test(out.at(-1)![1]))
    throw new InvalidArgumentError(
      `expected MAP=INSTANCE[:MAP] (got "${value}"), e.g. --share-map counts=collector:counts`,
    );
  return out;
}

const parseOrderEntry = keyValue('PROGRAM=ORDER', /^[A-Za-z_][A-Za-z0-9_]*$/, 'a program name');

function parseOrderOption(value: string, previous: [string, string][] = []): [string, string][] {
  const out = parseOrderEntry(value, previous);
  const why = parseOrderString(out.at(-1)![1]);
  if (typeof why === 'string')
    throw new InvalidArgumentError(`--order ${value}: ${why}, e.g. --order lb_connect4=before:mesh`);
  return out;
}

export function nonNegativeInt(what: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
    return Number(v);
  };
}

export function positiveInt(what: string) {
  return (v: string): number => {
    if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return Number(v);
  };
}

/** --since: a duration back from now (30s, 5m, 1h30m, 2d) or a time (2024-05-01T10:00:00Z, Unix seconds). */
export function parseSinceArg(v: string, now = Date.now()): string {
  try {
    return parseSince(v, now).toISOString();
  } catch {
    throw new InvalidArgumentError(`expected a duration (${DURATION_EXAMPLES}) or a time (${TIME_EXAMPLE})`);
  }
}

/** -o, --output with these formats; the first is the default. */
export function outputOption(formats: readonly string[]): Option {
  return new Option('-o, --output <format>', 'output format').choices(formats).default(formats[0]);
}

export interface AttachOptions {
  set?: [string, string][];
  cgroup?: string;
  iface?: string;
  attach?: [string, string][];
  mapSize?: [string, string][];
  shareMap?: [string, string][];
  order?: [string, string][];
  logSize?: number;
  optional?: string[];
}

function parseLogSize(value: string): number {
  const n = parseByteSize(value);
  if (n === undefined)
    throw new InvalidArgumentError(
      `expected a size in bytes, or with Ki, Mi or Gi (got "${value}"), e.g. --log-size 32Mi`,
    );
  const problem = logLimitsProblem({ maxBytes: n });
  if (problem) throw new InvalidArgumentError(problem);
  return n;
}

/** --set, --cgroup, --iface, --attach: of run and upgrade */
export function addAttachOptions(cmd: Command): Command {
  return cmd
    .option('--set <var=value>', 'set a config variable of the package (repeatable)', parseSet)
    .option('--cgroup <path>', 'cgroup that cgroup programs attach to')
    .option('--iface <name>', 'network interface that xdp and tc programs attach to')
    .option(
      '--attach <program=target>',
      'where one program attaches: a target for its hook, or HOOK:TARGET (uprobe:/usr/bin/bash:readline, perf_event:cpu-clock:99, …) (repeatable)',
      parseAttach,
    )
    .option('--map-size <MAP=N>', "set a map's max_entries before load (repeatable)", parseMapSize)
    .option(
      '--share-map <MAP=INSTANCE[:MAP]>',
      'use the pinned map of another running instance instead of a new one (repeatable)',
      parseShare,
    )
    .option(
      '--order <PROGRAM=ORDER>',
      "a program's place among other instances' programs on its cgroup / tc hook: before:INSTANCE, after:INSTANCE or priority:N (repeatable)",
      parseOrderOption,
    )
    .option(
      '--optional <PROGRAM>',
      "run without this program where this kernel cannot run it, with a warning, as kbpf.yaml's optional: true (repeatable; all: every program)",
      (v: string, prev: string[] = []) => [...prev, v === 'all' ? '*' : v],
    )
    .option(
      '--log-size <BYTES>',
      "the size of each event log file of the instance (e.g. 32Mi) instead of the package's logs.max_bytes",
      parseLogSize,
    );
}

export function attachOverrides(opts: AttachOptions): AttachOverrides | undefined {
  const a: AttachOverrides = {};
  if (opts.cgroup) a.cgroup = opts.cgroup;
  if (opts.iface) a.iface = opts.iface;
  if (opts.attach?.length) a.programs = Object.fromEntries(opts.attach);
  if (opts.mapSize?.length) a.mapSizes = Object.fromEntries(opts.mapSize.map(([k, v]) => [k, Number(v)]));
  if (opts.shareMap?.length) a.shareMaps = Object.fromEntries(opts.shareMap);
  if (opts.order?.length) a.order = Object.fromEntries(opts.order);
  if (opts.logSize !== undefined) a.logBytes = opts.logSize;
  if (opts.optional?.length) a.optional = opts.optional;
  return Object.keys(a).length ? a : undefined;
}

export function configOf(set?: [string, string][]): Record<string, string> | undefined {
  return set?.length ? Object.fromEntries(set) : undefined;
}
