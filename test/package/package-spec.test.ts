// The package spec schema (validatePackageSpec), and that the store and a pull hold packages to
// it and to the package limits (layer count and sizes) before anything uses them.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import { Invalid, isKind } from '../../src/errors.js';
import {
  KBPF_ARTIFACT_TYPE,
  KBPF_BYTECODE,
  KBPF_CONFIG,
  LayoutStore,
  OCI_IMAGE_MANIFEST,
  PACKAGE_LIMITS,
  RegistryClient,
  sha256Digest,
} from '../../src/package/index.js';
import {
  describeAttach,
  instanceLogLimits,
  LOG_LIMITS,
  type PackageSpec,
  parseAttachString,
  parseByteSize,
  resolveAttach,
  validatePackageSpec,
} from '../../src/package/package-spec.js';
import { FakeRegistry } from './fake-registry.js';
import { blobFiles, fakeElf, tempDir } from './helpers.js';

/** A spec as kbpf build writes it. */
function validSpec(): PackageSpec {
  return {
    name: 'opensnoop',
    version: '1.0.0',
    description: 'files opened',
    objects: ['opensnoop.bpf.o'],
    programs: [
      {
        name: 'handle_openat',
        object: 'opensnoop.bpf.o',
        section: 'tracepoint/syscalls/sys_enter_openat',
        type: 'tracepoint',
        attach: { hook: 'tracepoint', target: 'syscalls/sys_enter_openat' },
      },
    ],
    config: [
      {
        name: 'target_pid',
        object: 'opensnoop.bpf.o',
        section: '.rodata',
        type: 'u32',
        size: 4,
        default: 0,
      },
    ],
    maps: [
      {
        name: 'events',
        object: 'opensnoop.bpf.o',
        type: 'ringbuf',
        keySize: 0,
        valueSize: 0,
        maxEntries: 1 << 18,
        pin: true,
      },
    ],
    events: [{ map: 'events', object: 'opensnoop.bpf.o', kind: 'ringbuf', type: 'event' }],
    builder: '0.1.0',
  };
}

function refused(mutate: (s: PackageSpec & Record<string, unknown>) => void, pattern: RegExp): void {
  const s = validSpec() as PackageSpec & Record<string, unknown>;
  mutate(s);
  assert.throws(
    () => validatePackageSpec(s, 'pkg'),
    (e: unknown) => {
      assert.ok(isKind(e, Invalid), String(e));
      assert.match((e as Error).message, pattern);
      return true;
    },
  );
}

describe('validatePackageSpec', () => {
  it('accepts what kbpf build writes', () => {
    const s = validSpec();
    assert.equal(validatePackageSpec(s), s);
  });

  it('checks alternatives: another build of one of its objects, for cpu v1..v4, in a file of its own', () => {
    const alt = { object: 'opensnoop.bpf.o', file: 'opensnoop.bpf.cpu-v3.o', cpu: 'v3' };
    const s = { ...validSpec(), alternatives: [alt] };
    assert.equal(validatePackageSpec(s), s);
    refused((x) => {
      x.alternatives = [{ ...alt, object: 'other.bpf.o' }];
    }, /alternatives\[0\]\.object: "other\.bpf\.o" is not one of the package's objects/);
    refused((x) => {
      x.alternatives = [{ ...alt, file: 'opensnoop.bpf.o' }];
    }, /alternatives\[0\]\.file: "opensnoop\.bpf\.o" is also one of the package's objects/);
    refused((x) => {
      x.alternatives = [{ ...alt, file: '../x.o' }];
    }, /alternatives\[0\]\.file/);
    refused((x) => {
      x.alternatives = [{ ...alt, cpu: 'v9' }];
    }, /alternatives\[0\]\.cpu: "v9" is not v1\.\.v4/);
    refused((x) => {
      x.alternatives = [alt, { ...alt, file: 'opensnoop.bpf.v2.o', cpu: 'v2' }];
    }, /alternatives \(objects\): two entries are named "opensnoop\.bpf\.o"/);
  });

  it('holds logs: to its bounds (a file of 64Ki or more, at most 16 kept, 1Gi in all)', () => {
    const s = { ...validSpec(), logs: { maxBytes: 32 * 1024 * 1024, keep: 2 } };
    assert.equal(validatePackageSpec(s), s);
    assert.deepEqual(instanceLogLimits(s), { maxBytes: 32 * 1024 * 1024, keep: 2 });
    assert.deepEqual(instanceLogLimits(s, { logBytes: 1024 * 1024 }), { maxBytes: 1024 * 1024, keep: 2 });
    assert.deepEqual(instanceLogLimits(validSpec()), { maxBytes: LOG_LIMITS.defaultFileBytes, keep: 2 });
    refused((x) => {
      x.logs = { maxBytes: 1024 };
    }, /logs\.maxBytes: 1024 is out of range \(65536\.\./);
    refused((x) => {
      x.logs = { maxBytes: 512 * 1024 * 1024, keep: 2 };
    }, /logs: max_bytes 536870912 × 3 files is 1610612736 bytes, more than the 1073741824 \(1Gi\)/);
    refused((x) => {
      x.logs = { keep: 17 };
    }, /logs\.keep: 17 is out of range \(0\.\.16\)/);
    refused((x) => {
      x.logs = { maxBytes: 1.5e6 + 0.5 };
    }, /logs\.maxBytes: is not an integer/);
    refused((x) => {
      (x.logs as unknown) = { size: 1 };
    }, /logs\.size: is not a log setting/);
  });

  it('refuses names that would leave the instance directory in bpffs', () => {
    refused((s) => {
      s.events[0]!.map = '../../other/rev-1/maps/events';
    }, /events\[0\]\.map: .* is not a C identifier/);
    refused((s) => {
      s.maps[0]!.name = '../escape';
    }, /maps\[0\]\.name/);
    refused((s) => {
      s.programs[0]!.name = 'a/b';
    }, /programs\[0\]\.name/);
    refused((s) => {
      s.objects[0] = '../x.o';
    }, /objects\[0\]/);
    refused((s) => {
      s.events[0]!.map = 'other';
    }, /not one of the package's maps/);
    refused((s) => {
      s.programs[0]!.attach = { hook: 'tracepoint', target: '../../../etc/passwd' };
    }, /is not CATEGORY\/NAME/);
    refused((s) => {
      s.programs[0]!.attach = { hook: 'xdp', target: 'eth0/../../x' };
    }, /interface name/);
  });

  it('refuses unbounded counts and sizes, naming the limit', () => {
    refused((s) => {
      s.programs = Array.from({ length: 129 }, (_, i) => ({ ...s.programs[0]!, name: `p${i}` }));
    }, /programs: has 129 entries, more than the 128/);
    refused((s) => {
      s.maps[0]!.maxEntries = 2 ** 31;
    }, /maps\[0\]\.maxEntries: 2147483648 is out of range/);
    refused((s) => {
      s.maps[0] = { ...s.maps[0]!, type: 'hash', keySize: 64, valueSize: 1 << 20, maxEntries: 1 << 20 };
    }, /more than the 1073741824 one map may/);
    refused((s) => {
      s.programs.push({ ...s.programs[0]! });
    }, /two entries are named "handle_openat"/);
    refused((s) => {
      s.description = 'x'.repeat(5000);
    }, /description: is 5000 characters long/);
    refused((s) => {
      s.programs[0]!.section = 'a\u001b[2Jb';
    }, /control characters/);
  });

  it('keeps a program named constructor from finding Object.prototype in the overrides', () => {
    const p = { ...validSpec().programs[0]!, name: 'constructor' };
    assert.equal(resolveAttach(p, { programs: {} }).hook, 'tracepoint');
    assert.equal((resolveAttach(p, { programs: {} }) as { target: string }).target, 'syscalls/sys_enter_openat');
  });
});

describe('the store and pull hold packages to the schema and the limits', () => {
  it('store.resolve refuses a package whose spec fails the schema', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new LayoutStore(join(dir, 's'));
      const spec = validSpec();
      spec.events[0]!.map = '../../other/rev-1/maps/events';
      await store.putPackage({
        manifest: spec as unknown as Record<string, unknown>,
        layers: [{ mediaType: KBPF_BYTECODE, bytes: fakeElf('x'), title: 'opensnoop.bpf.o' }],
      });
      await assert.rejects(store.resolve('opensnoop:1.0.0'), /package spec: events\[0\]\.map/);
    } finally {
      await cleanup();
    }
  });

  it('pull refuses too many layers before downloading, and a bad spec before storing anything', async () => {
    const { dir, cleanup } = await tempDir();
    const reg = new FakeRegistry();
    await reg.start();
    try {
      const dst = new LayoutStore(join(dir, 'dst'));
      const client = new RegistryClient({ credentials: {} });
      const elf = Buffer.from(fakeElf('y'));
      const layer = { mediaType: KBPF_BYTECODE, digest: sha256Digest(elf), size: elf.byteLength };
      const config = Buffer.from(JSON.stringify(validSpec()));
      const configDesc = { mediaType: KBPF_CONFIG, digest: sha256Digest(config), size: config.byteLength };
      const manifest = (layers: unknown[], cfg = configDesc) =>
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_IMAGE_MANIFEST,
            artifactType: KBPF_ARTIFACT_TYPE,
            config: cfg,
            layers,
          }),
        );
      reg.putManifest('many', '1', manifest(Array.from({ length: PACKAGE_LIMITS.layers + 1 }, () => layer)));
      const before = reg.requests.length;
      await assert.rejects(client.pull(`${reg.host}/many:1`, dst), /has 33 layers, more than the 32/);
      assert.equal(
        reg.requests.slice(before).filter((r) => r.path.includes('/blobs/')).length,
        0,
        'no blob was requested',
      );

      reg.putManifest('huge', '1', manifest([{ ...layer, size: PACKAGE_LIMITS.layerBytes + 1 }]));
      await assert.rejects(client.pull(`${reg.host}/huge:1`, dst), /more than the 268435456 a layer may have/);

      const bad = validSpec();
      bad.maps[0]!.name = '../x';
      const badConfig = Buffer.from(JSON.stringify(bad));
      reg.blobs.set(sha256Digest(badConfig), badConfig);
      reg.blobs.set(layer.digest, elf);
      reg.putManifest(
        'bad',
        '1',
        manifest([layer], { mediaType: KBPF_CONFIG, digest: sha256Digest(badConfig), size: badConfig.byteLength }),
      );
      await assert.rejects(client.pull(`${reg.host}/bad:1`, dst), /package spec: maps\[0\]\.name/);
      assert.deepEqual(await blobFiles(dst.root), [], 'nothing stored');
      assert.deepEqual(await dst.list(), []);
    } finally {
      await reg.stop();
      await cleanup();
    }
  });
});

test('uprobe and usdt targets may end in :pid=N (that process only), checked like the rest', () => {
  assert.deepEqual(parseAttachString('usdt:/usr/bin/app:prov:probe:pid=42'), {
    hook: 'usdt',
    target: '/usr/bin/app:prov:probe',
    pid: 42,
  });
  assert.deepEqual(parseAttachString('uprobe:/bin/bash:readline:pid=7'), {
    hook: 'uprobe',
    target: '/bin/bash:readline',
    pid: 7,
  });
  assert.deepEqual(parseAttachString('usdt:libc.so.6:libc:setjmp'), { hook: 'usdt', target: 'libc.so.6:libc:setjmp' });
  assert.throws(() => parseAttachString('usdt:pid=3'), /usdt needs usdt:BINARY:PROVIDER:NAME\[:pid=PID\]/);
  assert.equal(
    describeAttach({ hook: 'usdt', target: '/usr/bin/app:prov:probe', pid: 42 }),
    'usdt /usr/bin/app:prov:probe (pid 42)',
  );
  const spec = { name: 'p', object: 'a.bpf.o', section: 'usdt', type: 'kprobe', attach: { hook: 'usdt' } } as const;
  assert.deepEqual(resolveAttach(spec, { programs: { p: 'usdt:/usr/bin/app:prov:probe:pid=9' } }), {
    hook: 'usdt',
    target: '/usr/bin/app:prov:probe',
    pid: 9,
  });
});

test('parseByteSize: bytes, Ki/Mi/Gi (and K/M/G, a trailing B); anything else is not a size', () => {
  const ok: [unknown, number][] = [
    [4096, 4096],
    ['4096', 4096],
    ['64Ki', 65536],
    ['32Mi', 32 * 1024 * 1024],
    ['32MiB', 32 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
    ['2M', 2_000_000],
    [' 8 ki ', 8192],
  ];
  for (const [v, n] of ok) assert.equal(parseByteSize(v), n, String(v));
  for (const v of ['', '32 MB MB', '-1', '1.5Mi', 'Mi', '32Ti', '1e6', -5, 1.5, true, null, {}])
    assert.equal(parseByteSize(v), undefined, JSON.stringify(v));
});
