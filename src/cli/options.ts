// Options several verbs share, and the parsers of option values (a bad value is refused by
// commander before anything is sent to the agent).
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { AttachOverrides } from '../package/package-spec.js';
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
}

/** --set, --cgroup, --iface, --attach: of run and upgrade */
export function addAttachOptions(cmd: Command): Command {
  return cmd
    .option('--set <var=value>', 'set a config variable of the package (repeatable)', parseSet)
    .option('--cgroup <path>', 'cgroup that cgroup programs attach to')
    .option('--iface <name>', 'network interface that xdp and tc programs attach to')
    .option(
      '--attach <program=target>',
      'attach one program somewhere else than its package says (repeatable)',
      parseAttach,
    );
}

export function attachOverrides(opts: AttachOptions): AttachOverrides | undefined {
  const a: AttachOverrides = {};
  if (opts.cgroup) a.cgroup = opts.cgroup;
  if (opts.iface) a.iface = opts.iface;
  if (opts.attach?.length) a.programs = Object.fromEntries(opts.attach);
  return Object.keys(a).length ? a : undefined;
}

export function configOf(set?: [string, string][]): Record<string, string> | undefined {
  return set?.length ? Object.fromEntries(set) : undefined;
}
