// Property tests of every parser that sees outside bytes: BTF, ELF, OCI manifests and indexes,
// the package spec, kbpf.yaml, docker config JSON, WWW-Authenticate headers and token server
// answers. Property: every input parses, or fails with a KbpfError (a kind), within a time
// bound. The budget is small here (CI: a few seconds); `npm run fuzz` sets KBPF_FUZZ_RUNS for a
// longer run. fast-check shrinks a failing input and prints its seed: each such crash becomes a
// regression test (test/fuzz/regressions.test.ts).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Btf, codecFor, readElfSections, readElfSymbols, readObjectBtf } from '../../src/bpf/btf/index.js';
import { parseSourceManifest } from '../../src/compile/source-manifest.js';
import { KbpfError } from '../../src/errors.js';
import { credentialsFromDockerConfig, parseWwwAuthenticate, RegistryClient } from '../../src/package/index.js';
import { parseImageIndex, parseImageManifest } from '../../src/package/manifest.js';
import { validatePackageSpec } from '../../src/package/package-spec.js';
import { parsePayload, parseSignatureManifest } from '../../src/package/trust/simple-signing.js';

/** Runs per property (KBPF_FUZZ_RUNS, default 150). */
export const RUNS = Number(process.env.KBPF_FUZZ_RUNS ?? 150);
/** Longest one input may take (ms). */
const TIME_BOUND_MS = Number(process.env.KBPF_FUZZ_TIME_BOUND_MS ?? 2000);
const SEED = process.env.KBPF_FUZZ_SEED ? Number(process.env.KBPF_FUZZ_SEED) : undefined;
const params = { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) };

/** Runs `fn`; passes when it returns or throws a KbpfError, within the time bound. */
function typedOrOk(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KbpfError)) throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
  }
  const took = performance.now() - t0;
  if (took > TIME_BOUND_MS) throw new Error(`took ${Math.round(took)} ms (bound ${TIME_BOUND_MS} ms)`);
}

async function typedOrOkAsync(fn: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof KbpfError)) throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
  }
  const took = performance.now() - t0;
  if (took > TIME_BOUND_MS) throw new Error(`took ${Math.round(took)} ms (bound ${TIME_BOUND_MS} ms)`);
}

/** Exercises a parsed BTF the way the agent does: names, sizes, codecs, decoding zeros. */
export function exerciseBtf(bytes: Uint8Array): void {
  const btf = Btf.parse(bytes);
  const n = Math.min(btf.typeCount, 64);
  for (let id = 1; id < n; id++) {
    for (const f of [
      () => btf.typeName(id),
      () => btf.sizeOf(id),
      () => btf.resolve(id),
      () => {
        const c = codecFor(btf, id);
        if (c.size <= 1 << 16) {
          const zero = new Uint8Array(c.size);
          c.encode(c.decode(zero));
        }
      },
    ]) {
      try {
        f();
      } catch (e) {
        if (!(e instanceof KbpfError)) throw e;
      }
    }
  }
}

const KIND_TRAILER = [0, 4, 0, 12, 12, 12, 8, 0, 0, 0, 0, 0, 0, 8, 4, 12, 0, 4, 0, 12];
const VLEN_KINDS = new Set([4, 5, 6, 13, 15, 19]);

/** Raw BTF blobs of well-formed framing with random types: ids, sizes and counts mostly small, sometimes huge. */
const btfBlob = fc
  .record({
    types: fc.array(
      fc.record({
        kind: fc.integer({ min: 1, max: 19 }),
        vlen: fc.integer({ min: 0, max: 4 }),
        flag: fc.boolean(),
        name: fc.integer({ min: 0, max: 12 }),
        size: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(0xffffffff, 0x7fffffff, 1 << 20)),
        extra: fc.array(fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(0xffffffff, 64, 1 << 24)), {
          minLength: 48,
          maxLength: 48,
        }),
      }),
      { minLength: 1, maxLength: 12 },
    ),
    strings: fc.string({ maxLength: 24 }),
  })
  .map(({ types, strings }) => {
    const words: number[] = [];
    for (const t of types) {
      const vlen = VLEN_KINDS.has(t.kind) ? t.vlen : t.kind === 12 ? t.vlen % 3 : 0;
      words.push(t.name, ((t.flag ? 1 : 0) << 31) | (t.kind << 24) | vlen, t.size);
      const trailer = VLEN_KINDS.has(t.kind) ? KIND_TRAILER[t.kind]! * vlen : KIND_TRAILER[t.kind]!;
      for (let i = 0; i < trailer / 4; i++) words.push(t.extra[i]!);
    }
    const str = Buffer.concat([Buffer.from([0]), Buffer.from(strings.replace(/\0/g, 'x')), Buffer.from([0])]);
    const typeLen = words.length * 4;
    const out = new Uint8Array(24 + typeLen + str.length);
    const dv = new DataView(out.buffer);
    dv.setUint16(0, 0xeb9f, true);
    out[2] = 1;
    dv.setUint32(4, 24, true);
    dv.setUint32(12, typeLen, true);
    dv.setUint32(16, typeLen, true);
    dv.setUint32(20, str.length, true);
    words.forEach((w, i) => {
      dv.setUint32(24 + i * 4, w >>> 0, true);
    });
    out.set(str, 24 + typeLen);
    return out;
  });

/** Flips, overwrites or truncates bytes of `base`. */
function mutated(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      edits: fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 16,
      }),
      cut: fc.option(fc.nat({ max: base.length }), { nil: undefined }),
    })
    .map(({ edits, cut }) => {
      const b = Uint8Array.from(base);
      for (const [i, v] of edits) b[i] = v;
      return cut === undefined ? b : b.subarray(0, cut);
    });
}

const objectBytes = readFileSync(new URL('../bpf/btf_types.bpf.o', import.meta.url));
const objectBtf = readElfSections(objectBytes).get('.BTF')!;

describe('fuzz: BTF', () => {
  it('random blobs of BTF framing parse or fail typed, and naming/sizing/codecs stay bounded', () => {
    fc.assert(
      fc.property(btfBlob, (b) => typedOrOk(() => exerciseBtf(b))),
      params,
    );
  });

  it('mutations of a real .BTF section', () => {
    fc.assert(
      fc.property(mutated(objectBtf), (b) => typedOrOk(() => exerciseBtf(b))),
      params,
    );
  });

  it('arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => typedOrOk(() => exerciseBtf(b))),
      params,
    );
  });
});

describe('fuzz: ELF', () => {
  it('mutations of a real BPF object', () => {
    fc.assert(
      fc.property(mutated(objectBytes), (b) =>
        typedOrOk(() => {
          readElfSections(b);
          readElfSymbols(b);
          readObjectBtf(b);
        }),
      ),
      params,
    );
  });

  it('an ELF64 header followed by random bytes', () => {
    const head = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 56, maxLength: 512 }), (rest) => {
        const b = new Uint8Array(head.length + rest.length);
        b.set(head);
        b.set(rest, head.length);
        typedOrOk(() => {
          readElfSections(b);
          readElfSymbols(b);
        });
      }),
      params,
    );
  });
});

const digest = fc.oneof(
  fc.stringMatching(/^sha256:[a-f0-9]{64}$/),
  fc.constant('sha256:'),
  fc.string({ maxLength: 80 }),
);
const descriptor = fc.record(
  {
    mediaType: fc.oneof(fc.constantFrom('application/vnd.kbpf.bytecode.v1+elf', ''), fc.string()),
    digest,
    size: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
    annotations: fc.option(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())), { nil: undefined }),
  },
  { requiredKeys: [] },
);
const manifestLike = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(2), fc.integer()),
    mediaType: fc.constantFrom(
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.v2+json',
      'x',
    ),
    config: fc.oneof(descriptor, fc.anything()),
    layers: fc.oneof(fc.array(fc.oneof(descriptor, fc.anything()), { maxLength: 6 }), fc.anything()),
    manifests: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.anything()),
    artifactType: fc.oneof(fc.string(), fc.anything()),
    annotations: fc.anything(),
  },
  { requiredKeys: [] },
);

describe('fuzz: OCI manifests, indexes and signature payloads', () => {
  it('structured manifests and indexes', () => {
    fc.assert(
      fc.property(manifestLike, (m) => {
        const bytes = Buffer.from(JSON.stringify(m) ?? 'null');
        typedOrOk(() => parseImageManifest(bytes, 'fuzz'));
        typedOrOk(() => parseImageIndex(bytes, 'fuzz'));
        typedOrOk(() => parseSignatureManifest(bytes, 'fuzz'));
      }),
      params,
    );
  });

  it('arbitrary JSON and text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        const bytes = Buffer.from(text);
        typedOrOk(() => parseImageManifest(bytes, 'fuzz'));
        typedOrOk(() => parseImageIndex(bytes, 'fuzz'));
        typedOrOk(() => parsePayload(bytes, 'fuzz'));
      }),
      params,
    );
  });
});

const validSpec = {
  name: 'opensnoop',
  version: '1.0.0',
  objects: ['o.bpf.o'],
  programs: [{ name: 'p', object: 'o.bpf.o', section: 'xdp', type: 'xdp', attach: { hook: 'xdp' } }],
  config: [{ name: 'c', object: 'o.bpf.o', section: '.rodata', type: 'u32', size: 4, default: 0 }],
  maps: [{ name: 'events', object: 'o.bpf.o', type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 4096, pin: true }],
  events: [{ map: 'events', object: 'o.bpf.o', kind: 'ringbuf', type: '' }],
  builder: '0.1.0',
};

describe('fuzz: package spec and kbpf.yaml', () => {
  it('validatePackageSpec on a valid spec with one part replaced by anything', () => {
    const paths = fc.constantFrom(
      ['name'],
      ['objects', 0],
      ['programs', 0, 'name'],
      ['programs', 0, 'attach'],
      ['programs', 0, 'attach', 'hook'],
      ['maps', 0, 'maxEntries'],
      ['maps', 0, 'name'],
      ['events', 0, 'map'],
      ['events', 0, 'columns'],
      ['config', 0],
      ['programs'],
    );
    fc.assert(
      fc.property(paths, fc.anything(), (path, value) => {
        const spec = structuredClone(validSpec) as Record<string, unknown>;
        let o = spec as Record<string | number, unknown>;
        for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
        o[path[path.length - 1]!] = value;
        typedOrOk(() => validatePackageSpec(JSON.parse(JSON.stringify(spec) ?? 'null'), 'fuzz'));
      }),
      params,
    );
  });

  it('anything as a spec', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => typedOrOk(() => validatePackageSpec(v, 'fuzz'))),
      params,
    );
  });

  it('kbpf.yaml text: YAML of arbitrary shape, and arbitrary text', () => {
    const yamlDoc = fc
      .dictionary(
        fc.constantFrom('name', 'version', 'description', 'programs', 'config', 'maps', 'events', '__proto__', 'x'),
        fc.oneof(
          fc.anything(),
          fc.dictionary(fc.string(), fc.record({ attach: fc.oneof(fc.string(), fc.anything()) }, { requiredKeys: [] })),
        ),
      )
      .map((d) => JSON.stringify(d));
    fc.assert(
      fc.property(fc.oneof(yamlDoc, fc.string({ maxLength: 200 })), (text) =>
        typedOrOk(() => parseSourceManifest(text, 'fuzz/kbpf.yaml')),
      ),
      params,
    );
  });
});

describe('fuzz: registry auth', () => {
  it('WWW-Authenticate headers never throw and end quickly', () => {
    const header = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc
        .array(
          fc.tuple(
            fc.constantFrom('Bearer', 'Basic', 'x'),
            fc.array(fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 })), { maxLength: 4 }),
          ),
          { maxLength: 3 },
        )
        .map((cs) =>
          cs.map(([s, ps]) => `${s} ${ps.map(([k, v]) => `${k}="${v.replace(/"/g, '\\"')}"`).join(',')}`).join(', '),
        ),
    );
    fc.assert(
      fc.property(header, (h) => {
        const t0 = performance.now();
        const out = parseWwwAuthenticate(h);
        assert.ok(Array.isArray(out));
        assert.ok(performance.now() - t0 < TIME_BOUND_MS);
      }),
      params,
    );
  });

  it('docker config JSON (pull secrets) parses or fails typed', () => {
    const config = fc.oneof(
      fc.json(),
      fc
        .record({ auths: fc.dictionary(fc.string(), fc.oneof(fc.anything(), fc.record({ auth: fc.string() }))) })
        .map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(config, (text) => typedOrOk(() => credentialsFromDockerConfig(text, 'fuzz'))),
      params,
    );
  });

  it('token server answers of any shape fail typed', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json(), fc.string()), fc.constantFrom(200, 401, 500), async (body, status) => {
        const fetch = (async (input: string | URL) => {
          const url = new URL(String(input));
          if (url.pathname === '/token') return new Response(body, { status });
          return new Response('', {
            status: 401,
            headers: { 'WWW-Authenticate': 'Bearer realm="https://registry.example.com/token",service="r"' },
          });
        }) as typeof globalThis.fetch;
        const c = new RegistryClient({ credentials: { username: 'u', password: 'p' }, fetch });
        await typedOrOkAsync(() => c.getManifest('registry.example.com/app:1'));
      }),
      { ...params, numRuns: Math.max(10, Math.floor(RUNS / 3)) },
    );
  });
});
