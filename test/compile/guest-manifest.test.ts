// kbpf.yaml `guest:` settings and what `kbpf build` takes for a guest directory.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestInput } from '../../src/compile/guest-build.js';
import { parseSourceManifest } from '../../src/compile/source-manifest.js';

test('kbpf.yaml guest: args, allow and limits are read; anything else is refused by name', () => {
  const m = parseSourceManifest(
    'name: g\nguest:\n  args: [-n, "5"]\n  allow: { attachTargets: ["xdp:lo"] }\n  limits: { memoryMb: 16, cpuMs: 200 }\n',
  );
  assert.deepEqual(m.guest, {
    args: ['-n', '5'],
    allow: { attachTargets: ['xdp:lo'] },
    limits: { memoryMb: 16, cpuMs: 200 },
  });
  assert.equal(parseSourceManifest('name: g\n').guest, undefined);
  assert.throws(
    () => parseSourceManifest('guest: { argv: [] }'),
    /guest: unknown key "argv" \(known: args, allow, limits\)/,
  );
  assert.throws(() => parseSourceManifest('guest: { allow: { types: [x] } }'), /guest.allow: unknown key "types"/);
  assert.throws(
    () => parseSourceManifest('guest: { limits: { memoryMb: 0 } }'),
    /guest.limits.memoryMb must be a positive integer/,
  );
  assert.throws(() => parseSourceManifest('guest: { args: [1] }'), /guest.args\[0\] must be a string/);
});

test('a guest directory is a guest source, one prebuilt module, or not a guest', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-guest-input-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const at = (name: string, files: string[]): string => {
    const d = join(dir, name);
    mkdirSync(d);
    for (const f of files) writeFileSync(join(d, f), '');
    return d;
  };
  assert.deepEqual(guestInput(at('src', ['x.bpf.c', 'main.c'])), { source: join(dir, 'src', 'main.c') });
  assert.deepEqual(guestInput(at('wasmc', ['x.bpf.c', 'tool.wasm.c'])), { source: join(dir, 'wasmc', 'tool.wasm.c') });
  assert.deepEqual(guestInput(at('prebuilt', ['runqlat.wasm', 'README.md'])), {
    module: join(dir, 'prebuilt', 'runqlat.wasm'),
  });
  assert.equal(guestInput(at('bpf', ['x.bpf.c'])), undefined, 'a BPF package');
  assert.equal(
    guestInput(at('both', ['x.bpf.c', 'old.wasm'])),
    undefined,
    'a .wasm beside BPF sources is not the package',
  );
  assert.throws(
    () => guestInput(at('two', ['a.wasm', 'b.wasm'])),
    /holds 2 .wasm files \(a.wasm, b.wasm\): keep one guest per package/,
  );
});
