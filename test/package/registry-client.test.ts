/** RegistryClient against an in-process fake registry: auth flows, uploads, verification, errors. */

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  authFileCredentials,
  DigestMismatchError,
  LayoutStore,
  NotFoundError,
  OCI_IMAGE_INDEX,
  PackageError,
  type ProgressEvent,
  RegistryClient,
  RegistryError,
  sha256Digest,
} from '../../src/package/index.js';
import { FakeRegistry, type FakeRegistryOptions } from './fake-registry.js';
import { blobFiles, freePort, samplePackage, tempDir } from './helpers.js';

interface Ctx {
  reg: FakeRegistry;
  src: LayoutStore;
  dst: LayoutStore;
  dir: string;
}

async function setup(t: { after: (fn: () => Promise<void>) => void }, options?: FakeRegistryOptions): Promise<Ctx> {
  const { dir, cleanup } = await tempDir();
  const reg = new FakeRegistry(options);
  await reg.start();
  t.after(async () => {
    await reg.stop();
    await cleanup();
  });
  const src = new LayoutStore(join(dir, 'src'));
  const dst = new LayoutStore(join(dir, 'dst'));
  await src.putPackage(samplePackage());
  return { reg, src, dst, dir };
}

test('push uploads in chunks with progress, skips blobs the registry has, pull verifies and stores', async (t) => {
  const { reg, src, dst } = await setup(t);
  const client = new RegistryClient({ credentials: {}, chunkSize: 16 });
  const events: ProgressEvent[] = [];
  const pushed = await client.push(src, 'opensnoop:1.0', `${reg.host}/tools/opensnoop`, {
    onProgress: (e) => events.push({ ...e }),
  });
  const local = await src.resolve('opensnoop:1.0');
  assert.deepEqual(pushed, {
    reference: `${reg.host}/tools/opensnoop:1.0`,
    digest: local.digest,
    uploaded: 3,
    skipped: 0,
    bytesUploaded: pushed.bytesUploaded,
  });
  assert.equal(
    pushed.bytesUploaded,
    local.manifest.config.size + local.manifest.layers.reduce((s, l) => s + l.size, 0),
  );

  // The 64-byte ELF went up in four 16-byte PATCH chunks, then a PUT ?digest=.
  const elf = local.manifest.layers[0]!;
  const patches = reg.requests.filter((r) => r.method === 'PATCH');
  assert.ok(
    patches.some((r) => r.contentRange === '48-63'),
    JSON.stringify(patches),
  );
  assert.ok(
    reg.requests.some((r) => r.method === 'PUT' && r.path.includes(`digest=${encodeURIComponent(elf.digest)}`)),
  );
  const put = reg.requests.find((r) => r.method === 'PUT' && r.path.includes('/manifests/1.0'))!;
  assert.equal(put.contentType, 'application/vnd.oci.image.manifest.v1+json');
  const elfEvents = events.filter((e) => e.digest === elf.digest).map((e) => e.done);
  assert.deepEqual(elfEvents, [0, 16, 32, 48, 64, 64]);
  assert.ok(
    events
      .filter((e) => e.digest === elf.digest)
      .every((e) => e.title === 'opensnoop.bpf.o' && e.total === 64 && e.phase === 'upload'),
  );

  // Second push: everything is there already.
  const again = await client.push(src, 'opensnoop:1.0', `${reg.host}/tools/opensnoop:1.0`);
  assert.equal(again.uploaded, 0);
  assert.equal(again.skipped, 3);

  const pulled = await client.pull(`${reg.host}/tools/opensnoop:1.0`, dst, { onProgress: (e) => events.push(e) });
  assert.equal(pulled.digest, local.digest);
  assert.equal(pulled.localReference, `${reg.host}/tools/opensnoop:1.0`);
  assert.equal(pulled.downloaded, 3);
  const r = await dst.resolve(`${reg.host}/tools/opensnoop:1.0`);
  assert.equal(r.digest, local.digest);
  assert.deepEqual(r.config, local.config);
  assert.deepEqual(
    Buffer.from((await dst.getLayer(r, 'opensnoop.bpf.o')).bytes),
    Buffer.from((await src.getLayer(local, 'opensnoop.bpf.o')).bytes),
  );
  assert.ok(events.some((e) => e.phase === 'download' && e.digest === elf.digest && e.done === 64));

  // Pull by digest, under a local tag of our choice; blobs already present are not downloaded.
  const byDigest = await client.pull(`${reg.host}/tools/opensnoop@${local.digest}`, dst, { tag: 'opensnoop:copy' });
  assert.equal(byDigest.present, 3);
  assert.equal(byDigest.downloaded, 0);
  assert.equal((await dst.resolve('opensnoop:copy')).digest, local.digest);
  const untagged = await client.pull(`${reg.host}/tools/opensnoop@${local.digest}`, dst);
  assert.equal(untagged.localReference, `${reg.host}/tools/opensnoop@${local.digest}`);
});

test('bearer auth: token fetched with basic credentials and the push scope, then reused', async (t) => {
  const { reg, src, dst } = await setup(t, { auth: { mode: 'bearer', username: 'alice', password: 's3cret' } });
  const client = new RegistryClient({ credentials: { username: 'alice', password: 's3cret' } });
  await client.push(src, 'opensnoop:1.0', `${reg.host}/team/opensnoop:1.0`);
  assert.equal(reg.tokenRequests.length, 1, 'one token for the whole push');
  assert.deepEqual(reg.tokenRequests[0], {
    method: 'GET',
    scope: 'repository:team/opensnoop:pull,push',
    service: 'fake-registry',
    account: 'alice',
  });
  assert.ok(
    reg.requests
      .filter((r) => r.path.startsWith('/v2/'))
      .slice(1)
      .every((r) => r.authorization?.startsWith('Bearer tok-')),
  );

  const pulled = await new RegistryClient({ credentials: { username: 'alice', password: 's3cret' } }).pull(
    `${reg.host}/team/opensnoop:1.0`,
    dst,
  );
  assert.equal(reg.tokenRequests.at(-1)!.scope, 'repository:team/opensnoop:pull');
  assert.equal(pulled.digest, (await src.resolve('opensnoop:1.0')).digest);
});

test('bearer auth: anonymous pull token, identity-token (refresh) flow, refused credentials', async (t) => {
  const { reg, src, dst } = await setup(t, {
    auth: { mode: 'bearer', username: 'alice', password: 's3cret', refreshToken: 'refresh-1', anonymousPull: true },
  });
  await new RegistryClient({ credentials: { identityToken: 'refresh-1' } }).push(
    src,
    'opensnoop:1.0',
    `${reg.host}/opensnoop:1.0`,
  );
  const post = reg.tokenRequests.find((r) => r.method === 'POST')!;
  assert.match(post.body!, /grant_type=refresh_token/);
  assert.match(post.body!, /scope=repository%3Aopensnoop%3Apull%2Cpush/);

  await new RegistryClient({ credentials: {} }).pull(`${reg.host}/opensnoop:1.0`, dst);

  const wrong = new RegistryClient({ credentials: { username: 'alice', password: 'nope' } });
  await assert.rejects(wrong.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:2.0`), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.status, 401);
    assert.equal(
      err.message,
      `push ${reg.host}/opensnoop:2.0: token from http://${reg.host}/token: token server answered 401 Unauthorized: {"details":"incorrect username or password"} (the credentials were refused)`,
    );
    return true;
  });
  await assert.rejects(
    new RegistryClient({ credentials: {} }).push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:2.0`),
    /token server answered 401 Unauthorized.*\(the credentials were refused\)|no credentials for/,
  );
});

test('basic auth: clear 401 without credentials; credentials from a docker-style auth file', async (t) => {
  const { reg, src, dir } = await setup(t, { auth: { mode: 'basic', username: 'bob', password: 'pw:with:colons' } });
  const none = new RegistryClient({ credentials: async () => undefined });
  await assert.rejects(none.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:1.0`), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.match(
      err.message,
      new RegExp(
        `^push ${reg.host}/opensnoop:1.0: check blob sha256:[0-9a-f]{64}: registry answered 401 Unauthorized: authentication required \\(Basic realm "fake"\\) and no credentials for ${reg.host} were given`,
      ),
    );
    return true;
  });

  const authFile = join(dir, 'auth.json');
  await writeFile(
    authFile,
    JSON.stringify({
      auths: { [`http://${reg.host}/v1/`]: { auth: Buffer.from('bob:pw:with:colons').toString('base64') } },
    }),
  );
  const client = new RegistryClient({ credentials: authFileCredentials({ files: [authFile] }) });
  const res = await client.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:1.0`);
  assert.equal(res.uploaded, 3);
  // After the first challenge, Basic is sent up front.
  const v2 = reg.requests.filter((r) => r.path.startsWith('/v2/'));
  assert.equal(
    v2.filter((r) => !r.authorization).length,
    2,
    'the refused push and the first request of the second one',
  );

  await writeFile(authFile, JSON.stringify({ auths: { [reg.host]: { username: 'bob', password: 'wrong' } } }));
  await assert.rejects(
    new RegistryClient({ credentials: authFileCredentials({ files: [authFile] }) }).push(
      src,
      'opensnoop:1.0',
      `${reg.host}/opensnoop:1.0`,
    ),
    /check blob sha256:[0-9a-f]{64}: registry answered 401 Unauthorized \(the credentials were refused or lack the permission\)$/,
  );
});

test('pull verifies every digest and stores nothing on a mismatch', async (t) => {
  const { reg, src, dst } = await setup(t);
  const client = new RegistryClient({ credentials: {} });
  await client.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:1.0`);
  const local = await src.resolve('opensnoop:1.0');
  const elf = local.manifest.layers[0]!;

  reg.tamperBlob = (digest, bytes) => {
    if (digest !== elf.digest) return bytes;
    const b = Buffer.from(bytes);
    b[10] = b[10]! ^ 1;
    return b;
  };
  await assert.rejects(client.pull(`${reg.host}/opensnoop:1.0`, dst), (err: unknown) => {
    assert.ok(err instanceof DigestMismatchError);
    assert.match(
      err.message,
      new RegExp(
        `^pull ${reg.host}/opensnoop:1.0: get blob ${elf.digest} \\(opensnoop.bpf.o\\): content hashes to sha256:[0-9a-f]{64}, expected ${elf.digest}`,
      ),
    );
    return true;
  });
  assert.deepEqual(await dst.list(), []);
  assert.ok(!(await dst.hasBlob(elf.digest)));
  reg.tamperBlob = undefined;

  // A manifest whose bytes do not match the Docker-Content-Digest header, or the digest asked for.
  reg.tamperManifest = (bytes) => ({ bytes: Buffer.from(bytes.toString().replace('"1.0"', '"6.6"')) });
  await assert.rejects(
    client.pull(`${reg.host}/opensnoop:1.0`, dst),
    /the manifest hashes to sha256:[0-9a-f]+ but the registry says sha256:[0-9a-f]+ \(Docker-Content-Digest\)/,
  );
  await assert.rejects(
    client.pull(`${reg.host}/opensnoop@${local.digest}`, dst),
    new RegExp(`the manifest the registry sent hashes to sha256:[0-9a-f]+, not the requested ${local.digest}`),
  );
  reg.tamperManifest = undefined;
  assert.deepEqual(await dst.list(), []);
  assert.deepEqual(await blobFiles(dst.root), []);
});

test('pull refuses indexes, non-kbpf manifests and unknown tags, with clear messages', async (t) => {
  const { reg, dst } = await setup(t);
  const client = new RegistryClient({ credentials: {} });
  reg.putManifest(
    'multi',
    '1',
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_IMAGE_INDEX, manifests: [] })),
    OCI_IMAGE_INDEX,
  );
  await assert.rejects(
    client.pull(`${reg.host}/multi:1`, dst),
    /pull 127\.0\.0\.1:\d+\/multi:1: sha256:[0-9a-f]+ is an image index \(a multi-platform list\), not a kbpf package/,
  );

  const cfg = Buffer.from('{}');
  reg.blobs.set(sha256Digest(cfg), cfg);
  const image = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(cfg), size: 2 },
    layers: [],
  };
  reg.putManifest('nginx', 'latest', Buffer.from(JSON.stringify(image)));
  await assert.rejects(
    client.pull(`${reg.host}/nginx`, dst),
    /pull 127\.0\.0\.1:\d+\/nginx:latest: not a kbpf package: artifactType undefined, config media type "application\/vnd\.oci\.image\.config\.v1\+json"/,
  );

  await assert.rejects(client.pull(`${reg.host}/nothing:1.0`, dst), (err: unknown) => {
    assert.ok(err instanceof NotFoundError);
    assert.match(
      err.message,
      /^pull 127\.0\.0\.1:\d+\/nothing:1\.0: the registry has no manifest 1\.0 in nothing \(MANIFEST_UNKNOWN: manifest unknown\)$/,
    );
    return true;
  });
});

test('registry errors, unreachable registries and bad references are reported with what, where and why', async (t) => {
  const { reg, src } = await setup(t);
  const client = new RegistryClient({ credentials: {} });
  reg.failManifestPut = {
    status: 400,
    body: JSON.stringify({
      errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: 'artifactType not allowed' }],
    }),
  };
  await assert.rejects(client.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop:1.0`), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(
      err.message,
      `push ${reg.host}/opensnoop:1.0: put manifest: registry answered 400 Bad Request: MANIFEST_INVALID: manifest invalid (artifactType not allowed)`,
    );
    assert.deepEqual(err.registryCodes, ['MANIFEST_INVALID']);
    return true;
  });

  const closed = await freePort();
  await assert.rejects(client.push(src, 'opensnoop:1.0', `127.0.0.1:${closed}/opensnoop:1.0`), (err: unknown) => {
    assert.ok(err instanceof PackageError);
    assert.equal(err.code, 'NETWORK');
    assert.match(
      err.message,
      new RegExp(
        `^push 127.0.0.1:${closed}/opensnoop:1.0: check blob sha256:[0-9a-f]+: cannot reach http://127.0.0.1:${closed}/v2/opensnoop/blobs/sha256:[0-9a-f]+: ECONNREFUSED.*\\(nothing listens there: is the registry running\\?\\)`,
      ),
    );
    return true;
  });

  await assert.rejects(client.push(src, 'opensnoop:1.0'), {
    message: 'push opensnoop:1.0: no registry in the reference; write host[:port]/opensnoop:1.0',
  });
  await assert.rejects(client.push(src, 'missing:1.0', `${reg.host}/missing:1.0`), {
    message: /^push 127\.0\.0\.1:\d+\/missing:1\.0: package missing:1\.0 is not in the package store/,
  });
  await assert.rejects(
    client.push(src, 'opensnoop:1.0', `${reg.host}/opensnoop@sha256:${'0'.repeat(64)}`),
    /the local package opensnoop:1.0 is sha256:[0-9a-f]+, not sha256:0+/,
  );
});

test('transport: plain HTTP only for loopback and hosts marked insecure', () => {
  const c = new RegistryClient({ credentials: {} });
  assert.equal(c.schemeFor('127.0.0.1:5000'), 'http');
  assert.equal(c.schemeFor('localhost:5000'), 'http');
  assert.equal(c.schemeFor('[::1]:5000'), 'http');
  assert.equal(c.schemeFor('registry.example.com'), 'https');
  assert.equal(c.schemeFor('10.0.0.5:5000'), 'https');
  const some = new RegistryClient({ credentials: {}, insecure: ['10.0.0.5:5000'] });
  assert.equal(some.schemeFor('10.0.0.5:5000'), 'http');
  assert.equal(some.schemeFor('10.0.0.6:5000'), 'https');
  assert.equal(new RegistryClient({ insecure: true }).schemeFor('registry.example.com'), 'http');
});
