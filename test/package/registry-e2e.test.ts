/**
 * End to end against a real registry: Debian's docker-registry (CNCF
 * distribution 2.x) on a free loopback port, and skopeo as an independent
 * OCI client. Needs the Debian packages `docker-registry` and `skopeo`; the
 * test is skipped (and says so) when they are missing.
 */

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  authFileCredentials,
  KBPF_ARTIFACT_TYPE,
  KBPF_BYTECODE,
  KBPF_CONFIG,
  KBPF_SOURCE,
  LayoutStore,
  OCI_IMAGE_MANIFEST,
  RegistryClient,
  RegistryError,
  sha256Digest,
} from '../../src/package/index.js';
import { missingRegistryTools, type RunningRegistry, run, samplePackage, startRegistry, tempDir } from './helpers.js';

const missing = missingRegistryTools();
const skip =
  missing.length > 0
    ? `needs the Debian package(s) ${missing.join(', ')} (apt-get install ${missing.join(' ')})`
    : false;

/** htpasswd line for user `kbpf`, password `kbpf-secret` (bcrypt, cost 4). */
const HTPASSWD = 'kbpf:$2b$04$L7aqxo5SFPntWDGAAkQwB.dL84Z82uxQbiRqeoH1GxfdaZvjG9oz2\n';

function skopeo(args: string[]) {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 });
}

describe('push and pull against docker-registry, checked with skopeo', { skip }, () => {
  let registry: RunningRegistry;
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: LayoutStore;
  let client: RegistryClient;
  let pushedDigest: string;
  let remote: string;

  before(async () => {
    ({ dir, cleanup } = await tempDir('kbpf-e2e-'));
    registry = await startRegistry();
    store = new LayoutStore(join(dir, 'store'));
    client = new RegistryClient({ credentials: {} });
    const pkg = samplePackage('opensnoop', '1.0');
    pkg.bpfmanPrograms = { handle_openat: 'tracepoint' };
    pushedDigest = (await store.putPackage(pkg)).digest;
    remote = `${registry.host}/kbpf/opensnoop:1.0`;
  });

  after(async () => {
    // Each step on its own, so one failing does not keep the others from running.
    await registry?.stop().catch(() => undefined);
    await cleanup?.();
  });

  it('pushes a package and pulls it back into a second store with the same digests', async () => {
    const progress: number[] = [];
    const pushed = await client.push(store, 'opensnoop:1.0', remote, { onProgress: (e) => progress.push(e.done) });
    assert.equal(pushed.digest, pushedDigest);
    assert.equal(pushed.uploaded, 3);
    assert.ok(progress.length >= 6);
    const again = await client.push(store, 'opensnoop:1.0', remote);
    assert.deepEqual([again.uploaded, again.skipped], [0, 3], 'a second push uploads nothing');

    const second = new LayoutStore(join(dir, 'second'));
    const pulled = await client.pull(remote, second);
    assert.equal(pulled.digest, pushedDigest);
    const a = await store.resolve('opensnoop:1.0');
    const b = await second.resolve(remote);
    assert.deepEqual(Buffer.from(b.manifestBytes), Buffer.from(a.manifestBytes));
    assert.deepEqual(b.config, a.config);
    for (const l of a.manifest.layers) {
      assert.deepEqual(
        Buffer.from(await second.getBlob(l.digest, l.size)),
        Buffer.from(await store.getBlob(l.digest, l.size)),
      );
    }
    const byDigest = await client.pull(`${registry.host}/kbpf/opensnoop@${pushedDigest}`, second);
    assert.equal(byDigest.digest, pushedDigest);
    assert.equal((await second.resolve(`${registry.host}/kbpf/opensnoop@${pushedDigest}`)).digest, pushedDigest);
  });

  it('skopeo inspects it as a valid OCI artifact', async () => {
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${remote}`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha256Digest(raw.stdout), pushedDigest, 'skopeo sees the exact manifest bytes kbpf pushed');
    const m = JSON.parse(raw.stdout);
    assert.equal(m.mediaType, OCI_IMAGE_MANIFEST);
    assert.equal(m.artifactType, KBPF_ARTIFACT_TYPE);
    assert.equal(m.config.mediaType, KBPF_CONFIG);
    assert.deepEqual(
      m.layers.map((l: { mediaType: string }) => l.mediaType),
      [KBPF_BYTECODE, KBPF_SOURCE],
    );
    assert.equal(m.annotations['io.ebpf.programs'], '{"handle_openat":"tracepoint"}');

    const config = await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${remote}`]);
    assert.equal(config.code, 0, config.stderr);
    assert.deepEqual(JSON.parse(config.stdout), samplePackage().manifest);

    // Without --raw, skopeo either prints a summary or (skopeo >= 1.6 on non-image
    // artifacts) refuses the image-only summary naming the artifact type: both
    // mean it parsed the manifest as a well-formed OCI artifact.
    const summary = await skopeo(['inspect', '--tls-verify=false', `docker://${remote}`]);
    if (summary.code === 0) {
      assert.equal(JSON.parse(summary.stdout).Digest, pushedDigest);
    } else {
      assert.match(
        summary.stderr,
        /unsupported image-specific operation on artifact with type \\?"application\/vnd\.kbpf\.package\.config\.v1\+json\\?"/,
      );
    }
  });

  it('skopeo copies it into an OCI layout that the store reads, and from the store back to the registry', async () => {
    const layout = join(dir, 'skopeo-layout');
    const copy = await skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${remote}`,
      `oci:${layout}:opensnoop:1.0`,
    ]);
    assert.equal(copy.code, 0, copy.stderr);
    const copied = new LayoutStore(layout);
    const r = await copied.resolve('opensnoop:1.0');
    assert.equal(r.digest, pushedDigest);
    assert.equal(r.config.name, 'opensnoop');
    const elf = await copied.getLayer(r, 'opensnoop.bpf.o');
    assert.deepEqual(Buffer.from(elf.bytes), Buffer.from(samplePackage().layers[0]!.bytes));
    assert.deepEqual(
      (await copied.list()).map((p) => [p.name, p.tags, p.digest]),
      [['opensnoop', ['1.0'], pushedDigest]],
    );

    // skopeo's usual `oci:DIR:TAG` form, with a bare tag: the name comes from the manifest's title.
    const bare = join(dir, 'skopeo-bare');
    const copy2 = await skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${remote}`, `oci:${bare}:1.0`]);
    assert.equal(copy2.code, 0, copy2.stderr);
    assert.equal((await new LayoutStore(bare).resolve('opensnoop:1.0')).digest, pushedDigest);

    // The other way: skopeo reads kbpf's own store as an OCI layout and pushes from it.
    const back = `${registry.host}/kbpf/copied:1.0`;
    const copy3 = await skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci:${store.root}:opensnoop:1.0`,
      `docker://${back}`,
    ]);
    assert.equal(copy3.code, 0, copy3.stderr);
    const third = new LayoutStore(join(dir, 'third'));
    assert.equal((await client.pull(back, third)).digest, pushedDigest);
    assert.equal(
      JSON.parse(await readFile(join(store.root, 'index.json'), 'utf8')).manifests.length,
      1,
      'skopeo did not modify the store',
    );
  });
});

describe('docker-registry with htpasswd basic auth', { skip }, () => {
  let registry: RunningRegistry;
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: LayoutStore;

  before(async () => {
    ({ dir, cleanup } = await tempDir('kbpf-e2e-auth-'));
    registry = await startRegistry({ htpasswd: HTPASSWD });
    store = new LayoutStore(join(dir, 'store'));
    await store.putPackage(samplePackage('execsnoop', '0.1'));
  });

  after(async () => {
    await registry?.stop().catch(() => undefined);
    await cleanup?.();
  });

  it('refuses without credentials with a clear 401, pushes with an auth file, skopeo reads with --creds', async () => {
    const remote = `${registry.host}/execsnoop:0.1`;
    const anonymous = new RegistryClient({ credentials: async () => undefined });
    await assert.rejects(anonymous.push(store, 'execsnoop:0.1', remote), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.equal(err.status, 401);
      assert.match(
        err.message,
        new RegExp(
          `^push ${remote}: check blob sha256:[0-9a-f]{64}: registry answered 401 Unauthorized: authentication required \\(Basic realm "kbpf-test"\\) and no credentials for ${registry.host} were given`,
        ),
      );
      return true;
    });

    const authFile = join(dir, 'auth.json');
    await writeFile(
      authFile,
      JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('kbpf:wrong').toString('base64') } } }),
    );
    const wrong = new RegistryClient({ credentials: authFileCredentials({ files: [authFile] }) });
    await assert.rejects(
      wrong.push(store, 'execsnoop:0.1', remote),
      /registry answered 401 Unauthorized.*\(the credentials were refused or lack the permission\)/,
    );

    await writeFile(
      authFile,
      JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('kbpf:kbpf-secret').toString('base64') } } }),
    );
    const client = new RegistryClient({
      credentials: authFileCredentials({ env: { REGISTRY_AUTH_FILE: authFile, HOME: dir } }),
    });
    const pushed = await client.push(store, 'execsnoop:0.1', remote);
    const pulled = await client.pull(remote, new LayoutStore(join(dir, 'pulled')));
    assert.equal(pulled.digest, pushed.digest);

    const denied = await skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${remote}`]);
    assert.notEqual(denied.code, 0);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', '--authfile', authFile, `docker://${remote}`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha256Digest(raw.stdout), pushed.digest);
  });
});
