// Keys and signatures: key generate, sign, verify. Work on the local store for a name without a
// registry host (the signature is kept in the store beside the package, and `kbpf push` takes
// it along), on the registry for host[:port]/name references. No agent is needed.
import type { Command } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import { parseReference, referenceName } from '../../package/reference.js';
import { loadPrivateKey, loadPublicKey, writeKeyPair } from '../../package/trust/keys.js';
import {
  registrySignatures,
  requireSigned,
  type SignatureSource,
  signPackage,
  storeSignatures,
} from '../../package/trust/signing.js';
import type { CliContext } from '../context.js';
import { outputOption } from '../options.js';
import { addRegistryOptions, type RegistryOptions, registryClient } from '../registry-options.js';
import { TEXT_FORMATS, type TextFormat } from '../render/output.js';
import { renderGeneratedKey, renderSigned, renderVerified } from '../render/trust.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The package IMAGE names, its digest, and where its signatures are kept. */
async function target(
  image: string,
  opts: RegistryOptions,
  ctx: CliContext,
  c: Command,
): Promise<{ digest: string; source: SignatureSource }> {
  const ref = parseReference(image);
  if (ref.registry) {
    const client = await registryClient(opts, ctx);
    const m = await client.getManifest(ref);
    return { digest: m.digest, source: registrySignatures(client, ref) };
  }
  const store = new LayoutStore(ctx.paths(c).storeDir);
  const pkg = await store.resolve(ref);
  return { digest: pkg.digest, source: storeSignatures(store, pkg.name || referenceName(ref)) };
}

export function addTrustVerbs(program: Command, ctx: CliContext): void {
  const key = program.command('key').description('signing keys (ECDSA P-256, compatible with cosign public keys)');
  key
    .command('generate')
    .description('write a new key pair: NAME.key (private, mode 0600) and NAME.pub in the current directory')
    .argument('<name>', 'file name of the pair, without .key/.pub')
    .option('--dir <dir>', 'write the files there instead of the current directory')
    .option('--force', 'overwrite existing files')
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      '\nExamples:\n  kbpf key generate release\n  kbpf sign --key release.key opensnoop:1.0.0\n  kbpf verify --key release.pub registry.example.com/opensnoop:1.0.0\n\nThe public key is the PEM file cosign writes too. The private key is unencrypted PKCS#8:\nkeep it secret (cosign import-key-pair --key release.key makes a cosign key of it).',
    )
    .action(async (name: string, opts: { dir?: string; force?: boolean; output: TextFormat }) => {
      const r = await writeKeyPair(name, opts.dir ?? process.cwd(), { force: !!opts.force });
      ctx.out(renderGeneratedKey(opts.output, { privateKey: r.privatePath, publicKey: r.publicPath, keyId: r.keyId }));
    });

  addRegistryOptions(
    program
      .command('sign')
      .description('sign a package (cosign key-based format); the signature is kept beside it')
      .argument('<image>', 'local package (name:version), or host[:port]/name:tag in a registry')
      .requiredOption('--key <file>', 'private key (NAME.key from kbpf key generate)'),
  )
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      '\nA local package keeps its signature in the store (tag name:sha256-<hex>.sig); kbpf push\ntakes it along. A registry reference is signed in the registry, where cosign finds it.\n\nExamples:\n  kbpf sign --key release.key opensnoop:1.0.0\n  kbpf sign --key release.key localhost:5000/tools/opensnoop:1.0.0',
    )
    .action(async (image: string, opts: RegistryOptions & { key: string; output: TextFormat }, c: Command) => {
      const priv = await loadPrivateKey(opts.key);
      const t = await target(image, opts, ctx, c);
      ctx.out(renderSigned(opts.output, image, await signPackage(t.source, t.digest, priv)));
    });

  addRegistryOptions(
    program
      .command('verify')
      .description('check that a package is signed by one of the keys; exit 1 if it is not')
      .argument('<image>', 'local package (name:version), or host[:port]/name:tag in a registry')
      .requiredOption('--key <file>', 'public key (NAME.pub, or a cosign.pub); repeatable', collect),
  )
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      '\nRefused when the signature is missing, made by another key, or made for another digest.\n\nExamples:\n  kbpf verify --key release.pub opensnoop:1.0.0\n  kbpf verify --key release.pub --key ci.pub -o json localhost:5000/tools/opensnoop:1.0.0',
    )
    .action(async (image: string, opts: RegistryOptions & { key: string[]; output: TextFormat }, c: Command) => {
      const keys = await Promise.all(opts.key.map((k) => loadPublicKey(k)));
      const t = await target(image, opts, ctx, c);
      ctx.out(renderVerified(opts.output, image, await requireSigned(t.source, t.digest, keys, image)));
    });
}
