// The options of verbs that talk to a registry (push, pull, sign, verify): plain HTTP, and
// credentials that stay out of argv where possible.
import type { Command } from 'commander';
import type { RegistryClient } from '../package/registry-client.js';
import { KBPF_VERSION } from '../version.js';
import type { CliContext } from './context.js';
import { CliError } from './errors.js';

export interface RegistryOptions {
  insecure?: boolean;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

export function addRegistryOptions(c: Command): Command {
  return c
    .option('--insecure', 'use plain HTTP (loopback registries always do)')
    .option(
      '--username <user>',
      'registry user name (or env KBPF_REGISTRY_AUTH=user:password; default: docker/podman auth files)',
    )
    .option('--password-stdin', 'read the registry password from standard input')
    .option(
      '--password <password>',
      'registry password (visible to every user in /proc: prefer --password-stdin or env KBPF_REGISTRY_PASSWORD)',
    );
}

/**
 * Credentials from --username with a password from standard input, $KBPF_REGISTRY_PASSWORD or
 * --password (warned about: argv is readable by every user), else $KBPF_REGISTRY_AUTH, else none
 * (the auth files).
 */
async function credentialsOf(
  opts: RegistryOptions,
  ctx: CliContext,
): Promise<{ username: string; password: string } | undefined> {
  const env = ctx.io.env;
  if (opts.password !== undefined)
    ctx.note(
      'warning: a password given with --password can be read by any user of this machine (/proc/PID/cmdline); use --password-stdin or KBPF_REGISTRY_PASSWORD',
    );
  if (opts.passwordStdin && opts.password !== undefined)
    throw new CliError('--password and --password-stdin exclude each other');
  let password = opts.password;
  if (opts.passwordStdin) {
    if (!ctx.io.readStdin) throw new CliError('--password-stdin: there is no standard input to read');
    password = (await ctx.io.readStdin()).replace(/\r?\n$/, '');
    if (!password) throw new CliError('--password-stdin: standard input is empty');
  } else if (password === undefined && opts.username !== undefined && env.KBPF_REGISTRY_PASSWORD) {
    password = env.KBPF_REGISTRY_PASSWORD;
  }
  if (opts.username !== undefined || password !== undefined) {
    if (opts.username === undefined || password === undefined)
      throw new CliError('--username and --password go together');
    return { username: opts.username, password };
  }
  const a = env.KBPF_REGISTRY_AUTH;
  if (!a) return undefined;
  const i = a.indexOf(':');
  if (i <= 0) throw new CliError('KBPF_REGISTRY_AUTH must be user:password');
  return { username: a.slice(0, i), password: a.slice(i + 1) };
}

export async function registryClient(opts: RegistryOptions, ctx: CliContext): Promise<RegistryClient> {
  const { RegistryClient } = await import('../package/registry-client.js');
  const credentials = await credentialsOf(opts, ctx);
  return new RegistryClient({
    ...(credentials ? { credentials } : {}),
    insecure: opts.insecure ?? false,
    userAgent: `kbpf/${KBPF_VERSION}`,
  });
}
