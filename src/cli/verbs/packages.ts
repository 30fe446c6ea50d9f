// Packages: build, push and pull work on the local store directly (no agent needed); images and
// rmi ask the agent, which owns the store while it runs.
import { accessSync, constants } from 'node:fs';
import type { Command } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import type { ProgressEvent } from '../../package/registry-client.js';
import type { CliContext } from '../context.js';
import { eachName } from '../errors.js';
import { outputOption } from '../options.js';
import { addRegistryOptions, type RegistryOptions, registryClient } from '../registry-options.js';
import { data, isData, LIST_FORMATS, type ListFormat, TEXT_FORMATS, type TextFormat } from '../render/output.js';
import {
  renderPackageReferences,
  renderPackages,
  renderPulled,
  renderPushed,
  renderRemoved,
} from '../render/packages.js';
import { cell, shortDigest, size } from '../render/values.js';

/** One line per blob once it is done: "pushed  sha256:… title (12kB)". */
function blobProgress(ctx: CliContext, done: string, skipped: string) {
  return (e: ProgressEvent): void => {
    if (e.done === e.total)
      ctx.note(`${e.skipped ? skipped : done} ${shortDigest(e.digest)} ${e.title ?? e.mediaType} (${size(e.total)})`);
  };
}

/**
 * Signs a package just built: with `--sign KEY`, or with the node key when it can be read (the
 * agent of this state directory enforces a trust policy); `--no-sign` (false) signs nothing.
 */
async function signBuilt(
  sign: string | false | undefined,
  stateDir: string,
  store: LayoutStore,
  stored: { name: string; digest: string },
): Promise<{ key: string; keyId: string } | undefined> {
  if (sign === false) return undefined;
  const { loadPrivateKey } = await import('../../package/trust/keys.js');
  const { signPackage, storeSignatures } = await import('../../package/trust/signing.js');
  let keyPath = sign;
  if (keyPath === undefined) {
    const { nodeKeyPaths } = await import('../../agent/trust.js');
    const node = nodeKeyPaths(stateDir).privatePath;
    try {
      accessSync(node, constants.R_OK);
    } catch {
      return undefined; // no node key (no trust policy here), or not ours to read
    }
    keyPath = node;
  }
  const key = await loadPrivateKey(keyPath);
  const r = await signPackage(storeSignatures(store, stored.name), stored.digest, key);
  return { key: sign === undefined ? 'the node key' : keyPath, keyId: r.keyId };
}

export function addPackageVerbs(program: Command, ctx: CliContext): void {
  program
    .command('build')
    .description('compile a source directory (*.bpf.c + kbpf.yaml) into a package in the local store')
    .argument('<dir>', 'source directory')
    .option('-t, --tag <name:version>', 'name and version of the package (default: from kbpf.yaml)')
    .option('-q, --quiet', 'print only the reference')
    .option(
      '--sign <key>',
      "sign the package with this private key (default: the node agent's node key, when there is one)",
    )
    .option('--no-sign', 'do not sign it, not even with the node key')
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      `
An agent that enforces a trust policy runs a package built here only if it is signed with the
node key (STATE_DIR/node.key, which the agent writes) or with a key the policy trusts, or when it
was started with --allow-local. kbpf build signs with the node key whenever it can read it.

Examples:
  kbpf build examples/opensnoop
  kbpf build --tag opensnoop:dev examples/opensnoop
  kbpf build --sign release.key examples/opensnoop`,
    )
    .action(
      async (
        dir: string,
        opts: { tag?: string; quiet?: boolean; sign?: string | false; output: TextFormat },
        c: Command,
      ) => {
        const p = ctx.paths(c);
        const store = new LayoutStore(p.storeDir);
        const { buildPackage } = await import('../../compile/builder.js');
        const verbose = !opts.quiet && !isData(opts.output);
        const res = await buildPackage(dir, {
          tag: opts.tag,
          store,
          cacheDir: p.cacheDir,
          progress: verbose ? (m) => ctx.note(m) : undefined,
        });
        const signed = await signBuilt(opts.sign, p.stateDir, store, res.stored);
        if (isData(opts.output))
          return ctx.out(
            data(opts.output, {
              reference: res.stored.reference,
              digest: res.stored.digest,
              spec: res.spec,
              ...(signed ? { signedBy: signed } : {}),
            }),
          );
        if (opts.quiet) return ctx.out(`${cell(res.stored.reference)}\n`);
        ctx.out(
          `built ${cell(res.stored.reference)}\ndigest: ${res.stored.digest}\n${signed ? `signed by ${cell(signed.key)} (${signed.keyId})\n` : ''}`,
        );
      },
    );

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
    ctx.out(renderPushed(r));
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
    if (r.signatureProblem) ctx.note(`warning: the registry's signatures were not brought: ${r.signatureProblem}`);
    ctx.out(renderPulled(r));
  });

  program
    .command('images')
    .alias('packages')
    .description('list the packages in the local store')
    .option('-q, --quiet', 'print only references')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (opts: { quiet?: boolean; output: ListFormat }, c: Command) => {
      const list = await ctx.client(c).packages();
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
        ctx.out(renderRemoved(await api.removePackage(ref, { force: !!opts.force })));
      });
    });
}
