// Packages: build, push and pull work on the local store directly (no agent needed); images and
// rmi ask the agent, which owns the store while it runs.
import type { Command } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import type { ProgressEvent } from '../../package/registry-client.js';
import { KBPF_VERSION } from '../../version.js';
import type { CliContext } from '../context.js';
import { CliError, eachName } from '../errors.js';
import { outputOption } from '../options.js';
import { data, isData, LIST_FORMATS, type ListFormat, TEXT_FORMATS, type TextFormat } from '../render/output.js';
import { renderPackageReferences, renderPackages, renderRemoved } from '../render/packages.js';
import { cell, shortDigest, size } from '../render/values.js';

interface RegistryOptions {
  insecure?: boolean;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

function addRegistryOptions(c: Command): Command {
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

async function registryClient(opts: RegistryOptions, ctx: CliContext) {
  const { RegistryClient } = await import('../../package/registry-client.js');
  const credentials = await credentialsOf(opts, ctx);
  return new RegistryClient({
    ...(credentials ? { credentials } : {}),
    insecure: opts.insecure ?? false,
    userAgent: `kbpf/${KBPF_VERSION}`,
  });
}

/** One line per blob once it is done: "pushed  sha256:… title (12kB)". */
function blobProgress(ctx: CliContext, done: string, skipped: string) {
  return (e: ProgressEvent): void => {
    if (e.done === e.total)
      ctx.note(`${e.skipped ? skipped : done} ${shortDigest(e.digest)} ${e.title ?? e.mediaType} (${size(e.total)})`);
  };
}

export function addPackageVerbs(program: Command, ctx: CliContext): void {
  program
    .command('build')
    .description('compile a source directory (*.bpf.c + kbpf.yaml) into a package in the local store')
    .argument('<dir>', 'source directory')
    .option('-t, --tag <name:version>', 'name and version of the package (default: from kbpf.yaml)')
    .option('-q, --quiet', 'print only the reference')
    .addOption(outputOption(TEXT_FORMATS))
    .action(async (dir: string, opts: { tag?: string; quiet?: boolean; output: TextFormat }, c: Command) => {
      const p = ctx.paths(c);
      const { buildPackage } = await import('../../compile/builder.js');
      const verbose = !opts.quiet && !isData(opts.output);
      const res = await buildPackage(dir, {
        tag: opts.tag,
        store: new LayoutStore(p.storeDir),
        cacheDir: p.cacheDir,
        progress: verbose ? (m) => ctx.note(m) : undefined,
      });
      if (isData(opts.output))
        return ctx.out(
          data(opts.output, { reference: res.stored.reference, digest: res.stored.digest, spec: res.spec }),
        );
      if (opts.quiet) return ctx.out(`${cell(res.stored.reference)}\n`);
      ctx.out(`built ${cell(res.stored.reference)}\ndigest: ${res.stored.digest}\n`);
    });

  addRegistryOptions(
    program
      .command('push')
      .description('push a package from the local store to an OCI registry')
      .argument('<image>', 'local package (name:version), or host[:port]/name:version')
      .argument('[registry-ref]', 'where to push: host[:port]/name[:tag] (default: IMAGE when it names a registry)'),
  ).action(async (image: string, dest: string | undefined, opts: RegistryOptions, c: Command) => {
    const store = new LayoutStore(ctx.paths(c).storeDir);
    const rc = await registryClient(opts, ctx);
    const r = await rc.push(store, image, dest, { onProgress: blobProgress(ctx, 'pushed  ', 'exists  ') });
    ctx.out(`pushed ${cell(r.reference)}\ndigest: ${r.digest}\n`);
  });

  addRegistryOptions(
    program
      .command('pull')
      .description('pull a package from an OCI registry into the local store')
      .argument('<ref>', 'host[:port]/name:tag or host[:port]/name@sha256:…')
      .option('--tag <name:version>', 'store it under this local name (default: REF as given)'),
  ).action(async (ref: string, opts: RegistryOptions & { tag?: string }, c: Command) => {
    const store = new LayoutStore(ctx.paths(c).storeDir);
    const rc = await registryClient(opts, ctx);
    const r = await rc.pull(ref, store, {
      ...(opts.tag ? { tag: opts.tag } : {}),
      onProgress: blobProgress(ctx, 'pulled  ', 'present '),
    });
    ctx.out(`pulled ${cell(r.localReference)}\ndigest: ${r.digest}\n`);
  });

  program
    .command('images')
    .alias('packages')
    .description('list the packages in the local store')
    .option('-q, --quiet', 'print only references')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (opts: { quiet?: boolean; output: ListFormat }, c: Command) => {
      const list = await ctx.client(c).images();
      if (opts.quiet && !isData(opts.output)) return ctx.out(renderPackageReferences(list));
      ctx.out(renderPackages(opts.output, list));
    });

  program
    .command('rmi')
    .description('remove packages from the local store (refused while an instance uses one, unless --force)')
    .argument('<image...>')
    .option('-f, --force', 'also remove the instances that use it')
    .action(async (images: string[], opts: { force?: boolean }, c: Command) => {
      const api = ctx.client(c);
      await eachName(ctx.io, images, async (ref) => {
        ctx.out(renderRemoved(await api.removeImage(ref, { force: !!opts.force })));
      });
    });
}
