// Signing keys: ECDSA P-256, the curve and algorithm of cosign's key pairs. Public keys are PEM
// "PUBLIC KEY" (SubjectPublicKeyInfo), exactly what `cosign generate-key-pair` writes as
// cosign.pub, so either tool verifies with the other's public key. Private keys are PEM
// "PRIVATE KEY" (unencrypted PKCS#8, file mode 0600): cosign's own private key file is
// encrypted ("ENCRYPTED SIGSTORE PRIVATE KEY"), which kbpf does not read; `cosign
// import-key-pair --key NAME.key` turns a kbpf key into one.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Conflict, Invalid, KbpfError, NotFound } from '../../errors.js';

/** A public key with the names it is shown by. */
export interface PublicKey {
  /** what the user called it: the file name without .pub, or the policy's name */
  name: string;
  /** sha256:<16 hex> of the DER SubjectPublicKeyInfo */
  keyId: string;
  key: KeyObject;
}

export interface PrivateKey {
  name: string;
  keyId: string;
  key: KeyObject;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The short id of a public key: the first 16 hex digits of the sha256 of its DER encoding. */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  const der = pub.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;
}

function checkP256(key: KeyObject, where: string): void {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType !== 'ec' || d?.namedCurve !== 'prime256v1')
    throw new KbpfError(
      Invalid,
      `${where}: not an ECDSA P-256 key (${key.asymmetricKeyType}${d?.namedCurve ? ` ${d.namedCurve}` : ''})`,
    );
}

/** A new key pair, as the PEM texts kbpf writes. */
export function generateKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

async function exists(path: string): Promise<boolean> {
  return access(path, fsConstants.F_OK).then(
    () => true,
    () => false,
  );
}

async function writeNew(path: string, text: string, mode: number, force: boolean): Promise<void> {
  const fh = await open(path, force ? 'w' : 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(path, mode); // an existing file (--force) keeps its old mode otherwise
}

/** Writes NAME.key (mode 0600) and NAME.pub in `dir`; refuses to overwrite unless `force`. */
export async function writeKeyPair(
  name: string,
  dir: string,
  opts: { force?: boolean } = {},
): Promise<{ privatePath: string; publicPath: string; keyId: string }> {
  if (!NAME_RE.test(name))
    throw new KbpfError(Invalid, `key name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-"`);
  const privatePath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  if (!opts.force) {
    for (const p of [privatePath, publicPath])
      if (await exists(p)) throw new KbpfError(Conflict, `${p} exists already`, { hint: 'remove it, or use --force' });
  }
  const pair = generateKeyPair();
  await writeNew(privatePath, pair.privatePem, 0o600, !!opts.force);
  await writeNew(publicPath, pair.publicPem, 0o644, !!opts.force);
  return { privatePath, publicPath, keyId: keyIdOf(createPublicKey(pair.publicPem)) };
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new KbpfError(NotFound, `${what} ${path} does not exist`, { cause: err });
    throw new KbpfError(Invalid, `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function nameOf(path: string): string {
  return basename(path).replace(/\.(pub|key|pem)$/, '');
}

/** Parses a PEM public key (also accepts a private key, whose public half is taken). */
export function parsePublicKey(pem: string, name: string, where = name): PublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new KbpfError(Invalid, `${where}: not a PEM public key (${(err as Error).message})`, { cause: err });
  }
  checkP256(key, where);
  return { name, keyId: keyIdOf(key), key };
}

export async function loadPublicKey(path: string): Promise<PublicKey> {
  return parsePublicKey(await readKeyFile(path, 'public key'), nameOf(path), path);
}

export async function loadPrivateKey(path: string): Promise<PrivateKey> {
  const pem = await readKeyFile(path, 'private key');
  if (pem.includes('ENCRYPTED SIGSTORE PRIVATE KEY') || pem.includes('ENCRYPTED COSIGN PRIVATE KEY'))
    throw new KbpfError(Invalid, `${path}: an encrypted cosign private key, which kbpf does not read`, {
      hint: 'generate a kbpf key (kbpf key generate NAME), or sign with cosign itself',
    });
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new KbpfError(Invalid, `${path}: not an unencrypted PEM private key (${(err as Error).message})`, {
      cause: err,
    });
  }
  checkP256(key, path);
  return { name: nameOf(path), keyId: keyIdOf(key), key };
}
