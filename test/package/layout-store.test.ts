import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ANNOTATION_REF_NAME,
  ANNOTATION_TITLE,
  BPFMAN_PROGRAMS,
  type Descriptor,
  DigestMismatchError,
  type ImageIndex,
  KBPF_ARTIFACT_TYPE,
  KBPF_BYTECODE,
  KBPF_CONFIG,
  KBPF_SOURCE,
  LayoutStore,
  NotFoundError,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
  PackageError,
  sha256Digest,
} from '../../src/package/index.js';
import { blobFiles, fakeElf, samplePackage, tempDir } from './helpers.js';

async function withStore(t: { after: (fn: () => Promise<void>) => void }): Promise<LayoutStore> {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  return new LayoutStore(join(dir, 'store'));
}

test('init writes an OCI image layout: oci-layout, empty index.json, blobs/sha256', async (t) => {
  const store = await withStore(t);
  await store.init();
  assert.deepEqual(JSON.parse(await readFile(join(store.root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  assert.deepEqual(JSON.parse(await readFile(store.indexPath, 'utf8')), {
    schemaVersion: 2,
    mediaType: OCI_IMAGE_INDEX,
    manifests: [],
  });
  assert.deepEqual(await blobFiles(store.root), []);
  await store.init(); // idempotent
  assert.deepEqual(await store.list(), []);
});

test('a store that does not exist yet reads as empty', async (t) => {
  const store = await withStore(t);
  assert.deepEqual(await store.list(), []);
  await assert.rejects(store.resolve('opensnoop:1.0'), NotFoundError);
});

test('putPackage stores an OCI artifact that resolve() reads back', async (t) => {
  const store = await withStore(t);
  const input = samplePackage();
  const put = await store.putPackage({ ...input, bpfmanPrograms: { handle_openat: 'tracepoint' } });
  assert.equal(put.reference, 'opensnoop:1.0');
  assert.equal(put.name, 'opensnoop');
  assert.equal(put.tag, '1.0');

  const manifestBytes = await readFile(store.blobPath(put.digest));
  assert.equal(sha256Digest(manifestBytes), put.digest);
  const m = JSON.parse(manifestBytes.toString('utf8'));
  assert.equal(m.schemaVersion, 2);
  assert.equal(m.mediaType, OCI_IMAGE_MANIFEST);
  assert.equal(m.artifactType, KBPF_ARTIFACT_TYPE);
  assert.equal(m.config.mediaType, KBPF_CONFIG);
  assert.deepEqual(
    m.layers.map((l: Descriptor) => [l.mediaType, l.annotations?.[ANNOTATION_TITLE]]),
    [
      [KBPF_BYTECODE, 'opensnoop.bpf.o'],
      [KBPF_SOURCE, 'source.tar.gz'],
    ],
  );
  assert.deepEqual(m.annotations, {
    'org.opencontainers.image.title': 'opensnoop',
    'org.opencontainers.image.version': '1.0',
    'org.opencontainers.image.created': '2025-01-02T03:04:05Z',
    'org.opencontainers.image.description': 'opensnoop test package',
    [BPFMAN_PROGRAMS]: '{"handle_openat":"tracepoint"}',
  });

  const index = JSON.parse(await readFile(store.indexPath, 'utf8')) as ImageIndex;
  assert.equal(index.manifests.length, 1);
  assert.deepEqual(index.manifests[0], {
    mediaType: OCI_IMAGE_MANIFEST,
    digest: put.digest,
    size: manifestBytes.byteLength,
    artifactType: KBPF_ARTIFACT_TYPE,
    annotations: { [ANNOTATION_REF_NAME]: 'opensnoop:1.0' },
  });

  const r = await store.resolve('opensnoop:1.0');
  assert.equal(r.digest, put.digest);
  assert.equal(r.reference, 'opensnoop:1.0');
  assert.deepEqual(r.config, input.manifest);
  assert.deepEqual(Buffer.from(r.manifestBytes), manifestBytes);
  const elf = await store.getLayer(r, 'opensnoop.bpf.o');
  assert.deepEqual(Buffer.from(elf.bytes), Buffer.from(input.layers[0]!.bytes));
  assert.equal((await store.getLayer(r, 1)).descriptor.mediaType, KBPF_SOURCE);
  await assert.rejects(store.getLayer(r, 'nope.o'), /has no layer "nope.o"/);

  const byDigest = await store.resolve(`opensnoop@${put.digest}`);
  assert.equal(byDigest.digest, put.digest);
  assert.equal(byDigest.tag, '1.0');
  // Nothing left behind in the temp directory.
  assert.deepEqual(await readdir(join(store.root, '.kbpf-tmp')), []);
});

test('the same input gives the same digest (canonical config JSON, fixed created time)', async (t) => {
  const a = await withStore(t);
  const b = await withStore(t);
  const pa = await a.putPackage(samplePackage());
  const input = samplePackage();
  // Same manifest with keys in another order.
  input.manifest = Object.fromEntries(Object.entries(input.manifest).reverse());
  const pb = await b.putPackage(input);
  assert.equal(pa.digest, pb.digest);
});

test('created defaults to SOURCE_DATE_EPOCH when set', async (t) => {
  const store = await withStore(t);
  const input = samplePackage();
  delete input.created;
  const saved = process.env.SOURCE_DATE_EPOCH;
  process.env.SOURCE_DATE_EPOCH = '1700000000';
  t.after(() => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  });
  const put = await store.putPackage(input);
  assert.equal(put.manifest.annotations?.['org.opencontainers.image.created'], '2023-11-14T22:13:20Z');
});

test('putPackage refuses invalid packages, saying why, and writes no tag', async (t) => {
  const store = await withStore(t);
  const good = samplePackage();
  const cases: [Parameters<LayoutStore['putPackage']>[0], RegExp][] = [
    [{ ...good, manifest: { version: '1.0' } }, /has no "name"/],
    [{ ...good, manifest: { name: 'Open', version: '1.0' } }, /"name" "Open" is not a valid package name/],
    [{ ...good, manifest: { name: 'x' } }, /has no "version"/],
    [{ ...good, manifest: { name: 'x', version: '1.0+build' } }, /"version" "1.0\+build" cannot be used as a tag/],
    [{ ...good, layers: [] }, /no layers/],
    [{ ...good, layers: [good.layers[1]!] }, /no application\/vnd\.kbpf\.bytecode\.v1\+elf layer/],
    [
      { ...good, layers: [{ ...good.layers[0]!, mediaType: 'application/zip' }] },
      /media type "application\/zip" is not one of/,
    ],
    [{ ...good, layers: [good.layers[0]!, good.layers[0]!] }, /two layers are named "opensnoop.bpf.o"/],
    [{ ...good, layers: [{ ...good.layers[0]!, title: 'a/b.o' }] }, /must be a file name/],
  ];
  for (const [input, why] of cases) {
    await assert.rejects(store.putPackage(input), (err: unknown) => {
      assert.ok(err instanceof PackageError, String(err));
      assert.equal(err.code, 'INVALID_PACKAGE');
      assert.match(err.message, why);
      return true;
    });
  }
  await assert.rejects(store.putPackage(good, `opensnoop@sha256:${'a'.repeat(64)}`), /give name:tag/);
  assert.deepEqual(await store.list(), []);
});

test('list, tag, retag, untag and remove', async (t) => {
  const store = await withStore(t);
  const v1 = await store.putPackage(samplePackage('opensnoop', '1.0'));
  const v2 = await store.putPackage({ ...samplePackage('opensnoop', '2.0'), created: '2025-02-01T00:00:00Z' });
  const ex = await store.putPackage(samplePackage('execsnoop', '0.1'));
  await store.tag('opensnoop:2.0', 'opensnoop:latest');
  await store.tag('opensnoop:1.0', 'registry.example.com/team/opensnoop:1.0');

  const list = await store.list();
  assert.deepEqual(
    list.map((r) => [r.name, r.tags, r.digest]),
    [
      ['execsnoop', ['0.1'], ex.digest],
      ['opensnoop', ['2.0', 'latest'], v2.digest],
      ['opensnoop', ['1.0'], v1.digest],
      ['registry.example.com/team/opensnoop', ['1.0'], v1.digest],
    ],
  );
  const row = list.find((r) => r.digest === v1.digest)!;
  assert.equal(row.created, '2025-01-02T03:04:05Z');
  assert.equal(row.version, '1.0');
  assert.equal(row.artifactType, KBPF_ARTIFACT_TYPE);
  const m = v1.manifest;
  assert.equal(row.size, v1.size + m.config.size + m.layers.reduce((s, l) => s + l.size, 0));
  assert.equal((await store.resolve('opensnoop')).digest, v2.digest, 'bare name resolves :latest');

  // Re-pointing a tag moves it; a tag is never on two manifests.
  await store.tag('opensnoop:1.0', 'opensnoop:latest');
  assert.equal((await store.resolve('opensnoop:latest')).digest, v1.digest);
  const idx = JSON.parse(await readFile(store.indexPath, 'utf8')) as ImageIndex;
  assert.equal(idx.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] === 'opensnoop:latest').length, 1);

  assert.equal(await store.untag('opensnoop:latest'), v1.digest);
  await assert.rejects(store.resolve('opensnoop:latest'), (err: unknown) => {
    assert.ok(err instanceof NotFoundError);
    assert.match(
      err.message,
      /package opensnoop:latest is not in the package store .* \(it has opensnoop:1.0, opensnoop:2.0\)/,
    );
    return true;
  });
  await assert.rejects(store.untag('opensnoop:9'), NotFoundError);
  await assert.rejects(store.tag('nothing:1', 'x:1'), NotFoundError);
  await assert.rejects(store.tag('opensnoop:1.0', `x@${v1.digest}`), /not a digest/);

  // Removing by digest removes every tag of that name on it.
  await store.tag('opensnoop:2.0', 'opensnoop:stable');
  assert.deepEqual((await store.remove(`opensnoop@${v2.digest}`)).sort(), ['opensnoop:2.0', 'opensnoop:stable']);
  assert.deepEqual(await store.remove('execsnoop:0.1'), ['execsnoop:0.1']);
  assert.deepEqual(
    (await store.list()).map((r) => `${r.name}:${r.tags.join(',')}`),
    ['opensnoop:1.0', 'registry.example.com/team/opensnoop:1.0'],
  );
});

test('gc removes only blobs unreachable from index.json', async (t) => {
  const store = await withStore(t);
  const keep = await store.putPackage(samplePackage('keep', '1.0'));
  const drop = await store.putPackage(samplePackage('drop', '1.0'));
  const before = await blobFiles(store.root);
  // Both packages share the source layer; each has its own config, ELF and manifest.
  assert.equal(before.length, 7);
  assert.deepEqual((await store.gc()).removed, []);

  await store.remove('drop:1.0');
  const res = await store.gc();
  const dropOnly = [drop.digest, drop.manifest.config.digest, drop.manifest.layers[0]!.digest].sort();
  assert.deepEqual(res.removed.sort(), dropOnly);
  assert.ok(res.freedBytes > 0);
  assert.equal((await blobFiles(store.root)).length, 4);
  const r = await store.resolve('keep:1.0');
  assert.equal(r.digest, keep.digest);
  for (const l of r.manifest.layers) await store.getBlob(l.digest, l.size);

  // A grace period keeps recent unreachable blobs.
  await store.putBlob(new TextEncoder().encode('orphan'));
  assert.deepEqual((await store.gc({ gracePeriodMs: 60_000 })).removed, []);
  assert.equal((await store.gc()).removed.length, 1);
});

test('gc keeps the manifests it is told to (revisions to roll back to) with their blobs, untagged or not', async (t) => {
  const store = await withStore(t);
  const old = await store.putPackage(samplePackage('tool', '1.0'));
  await store.putPackage(samplePackage('tool', '2.0'));
  await store.remove('tool:1.0');
  // an instance's history still names 1.0 by digest: its manifest, config and layers are kept
  assert.deepEqual((await store.gc({ keep: [old.digest] })).removed, []);
  await store.getBlob(old.digest);
  await store.getBlob(old.manifest.config.digest);
  for (const l of old.manifest.layers) await store.getBlob(l.digest, l.size);
  // once nothing names it, it goes (its config and ELF; the shared source layer stays)
  const res = await store.gc({ keep: [] });
  assert.deepEqual(res.removed.sort(), [old.digest, old.manifest.config.digest, old.manifest.layers[0]!.digest].sort());
});

/** A store whose putBlob fails on the n-th call: a crash in the middle of putPackage. */
class FailingBlobStore extends LayoutStore {
  calls = 0;
  constructor(
    root: string,
    private readonly failAt: number,
  ) {
    super(root);
  }
  override async putBlob(
    bytes: Uint8Array,
    expected?: { digest?: string; size?: number; mediaType?: string },
  ): Promise<Descriptor> {
    if (++this.calls === this.failAt) throw new Error(`simulated failure writing blob #${this.failAt}`);
    return super.putBlob(bytes, expected);
  }
}

/** A store whose index.json rewrite fails: blobs and manifest written, tag not yet. */
class FailingIndexStore extends LayoutStore {
  protected override async writeIndex(index: ImageIndex): Promise<void> {
    if (index.manifests.length > 0) throw new Error('simulated failure writing index.json');
    return super.writeIndex(index);
  }
}

test('a failure in the middle of putPackage leaves no tag and list() unchanged', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const root = join(dir, 'store');
  const base = new LayoutStore(root);
  const v1 = await base.putPackage(samplePackage('opensnoop', '1.0'));
  const listBefore = await base.list();
  const indexBefore = await readFile(base.indexPath);
  const blobsBefore = await blobFiles(root);

  // Fail at the config (1), the ELF (2), the source (3), the manifest (4).
  for (const failAt of [1, 2, 3, 4]) {
    const store = new FailingBlobStore(root, failAt);
    await assert.rejects(
      store.putPackage(samplePackage('opensnoop', '2.0')),
      new RegExp(`simulated failure writing blob #${failAt}`),
    );
    // Also replacing an existing tag: the old tag must keep pointing at the old package.
    const again = new FailingBlobStore(root, failAt);
    await assert.rejects(again.putPackage(samplePackage('opensnoop', '9.9'), 'opensnoop:1.0'));
    assert.deepEqual(await base.list(), listBefore, `failAt=${failAt}`);
    assert.deepEqual(await readFile(base.indexPath), indexBefore);
    await assert.rejects(base.resolve('opensnoop:2.0'), NotFoundError);
    assert.equal((await base.resolve('opensnoop:1.0')).digest, v1.digest);
  }

  const failing = new FailingIndexStore(root);
  await assert.rejects(failing.putPackage(samplePackage('opensnoop', '2.0')), /simulated failure writing index.json/);
  assert.deepEqual(await base.list(), listBefore);
  assert.deepEqual(await readFile(base.indexPath), indexBefore);
  assert.deepEqual(
    await readdir(root).then((f) => f.filter((n) => n.includes('lock'))),
    [],
    'lock released after failure',
  );

  // The partial blobs are unreachable; gc removes exactly them.
  await base.gc();
  assert.deepEqual(await blobFiles(root), blobsBefore);
  // And the store still works.
  assert.equal((await base.putPackage(samplePackage('opensnoop', '2.0'))).tag, '2.0');
});

test('digest verification catches corrupted and truncated blobs', async (t) => {
  const store = await withStore(t);
  const put = await store.putPackage(samplePackage());
  const elf = put.manifest.layers[0]!;
  const path = store.blobPath(elf.digest);
  const good = await readFile(path);
  await chmod(path, 0o644);

  const flipped = Buffer.from(good);
  flipped[20] = flipped[20]! ^ 0xff;
  await writeFile(path, flipped);
  await assert.rejects(store.getBlob(elf.digest), (err: unknown) => {
    assert.ok(err instanceof DigestMismatchError);
    assert.equal(err.code, 'DIGEST_MISMATCH');
    assert.match(
      err.message,
      new RegExp(
        `blob ${elf.digest} in package store .* is corrupted: content hashes to sha256:[0-9a-f]{64}, expected ${elf.digest}`,
      ),
    );
    return true;
  });
  const r = await store.resolve('opensnoop:1.0');
  await assert.rejects(store.getLayer(r, 'opensnoop.bpf.o'), DigestMismatchError);

  await writeFile(path, good.subarray(0, 10));
  await assert.rejects(store.getBlob(elf.digest, elf.size), /size is 10 bytes, the descriptor says 64/);

  // A corrupted config or manifest makes resolve fail.
  const cfg = store.blobPath(put.manifest.config.digest);
  await chmod(cfg, 0o644);
  await writeFile(cfg, '{"name":"evil","version":"1.0"}');
  await assert.rejects(store.resolve('opensnoop:1.0'), DigestMismatchError);

  // putBlob repairs a corrupted blob when the right content is written again.
  await store.putBlob(good);
  assert.deepEqual(Buffer.from(await store.getBlob(elf.digest)), good);
  await assert.rejects(store.getBlob(sha256Digest('absent')), /blob sha256:[0-9a-f]+ is missing from package store/);
});

test('putBlob verifies expected digest and size before storing', async (t) => {
  const store = await withStore(t);
  const bytes = fakeElf('x');
  const wrong = sha256Digest('something else');
  await assert.rejects(store.putBlob(bytes, { digest: wrong }), DigestMismatchError);
  await assert.rejects(
    store.putBlob(bytes, { digest: sha256Digest(bytes), size: 3 }),
    /size is 64 bytes, the descriptor says 3/,
  );
  assert.deepEqual(await blobFiles(store.root), []);
  const d = await store.putBlob(bytes, { digest: sha256Digest(bytes), size: 64, mediaType: KBPF_BYTECODE });
  assert.deepEqual(d, { mediaType: KBPF_BYTECODE, digest: sha256Digest(bytes), size: 64 });
  assert.ok(await store.hasBlob(d.digest));
  assert.ok(!(await store.hasBlob(wrong)));
  await assert.rejects(store.getBlob('sha256:xyz'), /invalid digest "sha256:xyz"/);
});

test('reads layouts written by other tools: bare-tag ref names, foreign entries kept', async (t) => {
  const store = await withStore(t);
  const put = await store.putPackage(samplePackage());
  // Rewrite index.json as skopeo does for `oci:DIR:1.0`, plus an entry kbpf does not own.
  const foreign: Descriptor = { mediaType: OCI_IMAGE_MANIFEST, digest: sha256Digest('x'), size: 1 };
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: OCI_IMAGE_MANIFEST,
        digest: put.digest,
        size: put.size,
        annotations: { [ANNOTATION_REF_NAME]: '1.0' },
      },
      foreign,
    ],
  };
  await writeFile(store.indexPath, JSON.stringify(index));
  assert.equal((await store.resolve('opensnoop:1.0')).digest, put.digest, 'name taken from the title annotation');
  assert.deepEqual(
    (await store.list()).map((r) => [r.name, r.tags]),
    [['opensnoop', ['1.0']]],
  );
  await store.putPackage(samplePackage('execsnoop', '1.0'));
  const after = JSON.parse(await readFile(store.indexPath, 'utf8')) as ImageIndex;
  assert.ok(
    after.manifests.some((d) => d.digest === foreign.digest && d.annotations === undefined),
    'foreign entry preserved',
  );
  assert.equal(after.manifests.length, 3);
});

test('refuses a layout of another version and an index that is not JSON', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await mkdir(join(dir, 'a'));
  await writeFile(join(dir, 'a', 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
  await assert.rejects(
    new LayoutStore(join(dir, 'a')).putPackage(samplePackage()),
    /imageLayoutVersion is "2.0.0", this kbpf understands 1.0.0/,
  );
  await mkdir(join(dir, 'b'));
  await writeFile(join(dir, 'b', 'index.json'), '{oops');
  await assert.rejects(new LayoutStore(join(dir, 'b')).list(), /index.json: index is not valid JSON/);
});
