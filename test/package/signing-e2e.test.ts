/**
 * Signatures end to end: keys, sign in the store, push with the package to Debian's
 * docker-registry, skopeo sees the cosign `sha256-<hex>.sig` tag, pull brings the signature to
 * a second store, verify there and in the registry; refusals for another key's signature, a
 * signature made for another digest, and a missing signature. Skipped (and says so) without
 * the Debian packages docker-registry and skopeo.
 */

import assert from 'node:assert/strict';
import { sign as cryptoSign } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Corrupted, isKind, kindOf, Refused } from '../../src/errors.js';
import { LayoutStore, RegistryClient } from '../../src/package/index.js';
import {
  buildPayload,
  loadPrivateKey,
  loadPublicKey,
  type PrivateKey,
  type PublicKey,
  registrySignatures,
  requireSigned,
  SIGNATURE_ANNOTATION,
  SIMPLE_SIGNING_MEDIA_TYPE,
  signatureLayer,
  signatureTag,
  signPackage,
  storeSignatures,
  verifyPackage,
  writeKeyPair,
} from '../../src/package/trust/index.js';
import { missingRegistryTools, type RunningRegistry, run, samplePackage, startRegistry, tempDir } from './helpers.js';

const missing = missingRegistryTools();
const skip =
  missing.length > 0
    ? `needs the Debian package(s) ${missing.join(', ')} (apt-get install ${missing.join(' ')})`
    : false;

function skopeo(args: string[]) {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 });
}

describe('keys', () => {
  it('writes NAME.key (0600) and NAME.pub, refuses to overwrite, and loads them back', async () => {
    const { dir, cleanup } = await tempDir('kbpf-keys-');
    try {
      const k = await writeKeyPair('release', dir);
      assert.equal((await stat(k.privatePath)).mode & 0o777, 0o600);
      assert.match(k.keyId, /^sha256:[0-9a-f]{16}$/);
      await assert.rejects(writeKeyPair('release', dir), /exists already/);
      const priv = await loadPrivateKey(k.privatePath);
      const pub = await loadPublicKey(k.publicPath);
      assert.equal(priv.keyId, pub.keyId);
      assert.equal(pub.name, 'release');
      await assert.rejects(loadPublicKey(join(dir, 'nope.pub')), /does not exist/);
    } finally {
      await cleanup();
    }
  });
});

describe('signatures through docker-registry, checked with skopeo', { skip }, () => {
  let registry: RunningRegistry;
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: LayoutStore;
  let client: RegistryClient;
  let a: { priv: PrivateKey; pub: PublicKey };
  let b: { priv: PrivateKey; pub: PublicKey };
  let digest: string;
  let remote: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('kbpf-sign-e2e-'));
    registry = await startRegistry();
    store = new LayoutStore(join(dir, 'store'));
    client = new RegistryClient({ credentials: {} });
    const load = async (name: string) => {
      const k = await writeKeyPair(name, dir);
      return { priv: await loadPrivateKey(k.privatePath), pub: await loadPublicKey(k.publicPath) };
    };
    a = await load('alice');
    b = await load('bob');
    digest = (await store.putPackage(samplePackage('opensnoop', '1.0'))).digest;
    remote = `${registry.host}/kbpf/opensnoop:1.0`;
  });

  after(async () => {
    await registry?.stop().catch(() => undefined);
    await cleanup?.();
  });

  it('signs in the store; verify accepts the key and refuses another', async () => {
    const local = storeSignatures(store, 'opensnoop');
    const r = await signPackage(local, digest, a.priv);
    assert.equal(r.signatureReference, `opensnoop:${signatureTag(digest)}`);
    assert.equal(r.signatures, 1);
    assert.equal((await signPackage(local, digest, a.priv)).signatures, 2, 'ECDSA signatures differ each time');
    const v = await requireSigned(local, digest, [b.pub, a.pub]);
    assert.deepEqual(
      v.signers.map((s) => s.name),
      ['alice'],
    );
    await assert.rejects(requireSigned(local, digest, [b.pub], 'opensnoop:1.0'), (e: unknown) => {
      assert.ok(isKind(e, Refused), String(e));
      assert.match(
        (e as Error).message,
        new RegExp(`^opensnoop:1\\.0: 2 signatures for ${digest}, none by a trusted key; keys tried: bob \\(sha256:`),
      );
      return true;
    });
    assert.deepEqual(
      (await store.list()).map((p) => p.tags),
      [['1.0']],
      'the signature tag is not listed as a package',
    );
  });

  it('push takes the signatures along; skopeo sees the cosign .sig tag', async () => {
    const pushed = await client.push(store, 'opensnoop:1.0', remote);
    assert.equal(pushed.signatures, 2);
    const sigRef = `docker://${registry.host}/kbpf/opensnoop:${signatureTag(digest)}`;
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', sigRef]);
    assert.equal(raw.code, 0, raw.stderr);
    const m = JSON.parse(raw.stdout);
    assert.equal(m.layers.length, 2);
    for (const l of m.layers) {
      assert.equal(l.mediaType, SIMPLE_SIGNING_MEDIA_TYPE);
      assert.match(l.annotations[SIGNATURE_ANNOTATION], /^[A-Za-z0-9+/]+=*$/);
    }
    const tags = await skopeo(['list-tags', '--tls-verify=false', `docker://${registry.host}/kbpf/opensnoop`]);
    assert.equal(tags.code, 0, tags.stderr);
    assert.deepEqual(JSON.parse(tags.stdout).Tags.sort(), ['1.0', signatureTag(digest)].sort());
    // A second push merges with what the registry has: still two.
    assert.equal((await client.push(store, 'opensnoop:1.0', remote)).signatures, 2);
  });

  it('verifies in the registry, and pull brings the signatures to another store', async () => {
    const inRegistry = registrySignatures(client, remote);
    assert.equal((await requireSigned(inRegistry, digest, [a.pub])).signers[0]?.keyId, a.pub.keyId);
    await assert.rejects(requireSigned(inRegistry, digest, [b.pub]), /none by a trusted key/);

    const second = new LayoutStore(join(dir, 'second'));
    const pulled = await client.pull(remote, second);
    assert.equal(pulled.signatures, 2);
    assert.equal(pulled.signatureProblem, undefined);
    const v = await requireSigned(storeSignatures(second, `${registry.host}/kbpf/opensnoop`), digest, [a.pub]);
    assert.equal(v.signers[0]?.name, 'alice');
    assert.equal(v.signers[0]?.reference, 'opensnoop', 'the payload names the repository it was signed in');
  });

  it('refuses a missing signature and a signature made for another digest, naming both', async () => {
    const other = (await store.putPackage(samplePackage('execsnoop', '0.1'))).digest;
    await client.push(store, 'execsnoop:0.1', `${registry.host}/kbpf/execsnoop:0.1`);
    const unsigned = registrySignatures(client, `${registry.host}/kbpf/execsnoop:0.1`);
    await assert.rejects(requireSigned(unsigned, other, [a.pub]), (e: unknown) => {
      assert.ok(isKind(e, Refused));
      assert.match(
        (e as Error).message,
        new RegExp(
          `signature missing for ${other} \\(no ${registry.host}/kbpf/execsnoop:${signatureTag(other)}\\); keys tried: alice`,
        ),
      );
      return true;
    });

    // Alice's signature of opensnoop's digest, copied beside execsnoop: valid, but for the other digest.
    const payload = buildPayload('kbpf/opensnoop', digest);
    const layer = signatureLayer(payload, cryptoSign('sha256', payload, a.priv.key));
    await unsigned.add(other, [{ descriptor: layer.descriptor, payload }]);
    await assert.rejects(requireSigned(unsigned, other, [a.pub]), (e: unknown) => {
      assert.equal(kindOf(e), Corrupted);
      assert.match(
        (e as Error).message,
        new RegExp(`the signature by alice \\(sha256:[0-9a-f]{16}\\) is for ${digest}, not ${other}`),
      );
      return true;
    });
    const v = await verifyPackage(unsigned, other, [a.pub]);
    assert.equal(v.found, 1);
    assert.deepEqual(v.signers, []);
  });
});
