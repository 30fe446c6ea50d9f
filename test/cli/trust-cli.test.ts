// kbpf key generate, sign, verify on the local store, and push --password-stdin, through runCli
// (no agent needed).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import { LayoutStore } from '../../src/package/layout-store.js';

async function kbpf(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: string) {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
    env,
    ...(stdin !== undefined ? { readStdin: async () => stdin } : {}),
  });
  return { code, out, err };
}

test('key generate, sign and verify a package in the local store', async (t) => {
  const { samplePackage } = await import('../package/helpers.js');
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-trust-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stored = await new LayoutStore(join(dir, 'store')).putPackage(samplePackage('opensnoop', '1.0.0'));

  let r = await kbpf(['key', 'generate', '--dir', dir, 'release']);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out,
    /^private key: .*release\.key \(mode 0600: keep it secret\)\npublic key: {2}.*release\.pub\nkey id: {6}sha256:[0-9a-f]{16}\n$/,
  );
  assert.equal(statSync(join(dir, 'release.key')).mode & 0o777, 0o600);
  r = await kbpf(['key', 'generate', '--dir', dir, 'other', '-o', 'json']);
  assert.equal(r.code, 0, r.err);
  assert.match(JSON.parse(r.out).keyId, /^sha256:/);
  r = await kbpf(['key', 'generate', '--dir', dir, 'release']);
  assert.equal(r.code, 1);
  assert.match(r.err, /release\.key exists already; remove it, or use --force/);

  const sd = ['--state-dir', dir];
  r = await kbpf([...sd, 'verify', '--key', join(dir, 'release.pub'), 'opensnoop:1.0.0']);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`^kbpf: opensnoop:1\\.0\\.0: signature missing for ${stored.digest}`));

  r = await kbpf([...sd, 'sign', '--key', join(dir, 'release.key'), 'opensnoop:1.0.0']);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out,
    new RegExp(
      `^signed opensnoop:1\\.0\\.0 \\(${stored.digest}\\)\\nkey: sha256:[0-9a-f]{16}\\nsignature: opensnoop:sha256-[0-9a-f]{64}\\.sig \\(1 in all\\)\\n$`,
    ),
  );

  r = await kbpf([
    ...sd,
    'verify',
    '--key',
    join(dir, 'other.pub'),
    '--key',
    join(dir, 'release.pub'),
    'opensnoop:1.0.0',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out,
    /^verified opensnoop:1\.0\.0 \(sha256:[0-9a-f]{64}\)\nsigned by release \(sha256:[0-9a-f]{16}\)\n$/,
  );
  r = await kbpf([...sd, 'verify', '--key', join(dir, 'other.pub'), 'opensnoop:1.0.0']);
  assert.equal(r.code, 1);
  assert.match(r.err, /1 signature for sha256:[0-9a-f]{64}, none by a trusted key; keys tried: other/);

  r = await kbpf(['sign', '--help']);
  assert.match(r.out, /--key <file>/);
  assert.match(r.out, /Examples:/);
});

test('push reads the password from standard input or KBPF_REGISTRY_PASSWORD, and warns about --password', async (t) => {
  const { FakeRegistry } = await import('../package/fake-registry.js');
  const { samplePackage } = await import('../package/helpers.js');
  const reg = new FakeRegistry({ auth: { mode: 'basic', username: 'kbpf', password: 's3cret' } });
  await reg.start();
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-pw-'));
  t.after(async () => {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await new LayoutStore(join(dir, 'store')).putPackage(samplePackage('opensnoop', '1.0.0'));
  const remote = `${reg.host}/opensnoop:1.0.0`;
  const sd = ['--state-dir', dir];
  let r = await kbpf(
    [...sd, 'push', '--username', 'kbpf', '--password-stdin', 'opensnoop:1.0.0', remote],
    {},
    's3cret\n',
  );
  assert.equal(r.code, 0, r.err);
  r = await kbpf([...sd, 'push', '--username', 'kbpf', 'opensnoop:1.0.0', remote], {
    KBPF_REGISTRY_PASSWORD: 's3cret',
  });
  assert.equal(r.code, 0, r.err);
  r = await kbpf([...sd, 'push', '--username', 'kbpf', '--password-stdin', 'opensnoop:1.0.0', remote]);
  assert.equal(r.code, 1);
  assert.match(r.err, /--password-stdin: there is no standard input/);
  r = await kbpf([...sd, 'push', '--username', 'kbpf', '--password', 's3cret', 'opensnoop:1.0.0', remote]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warning: a password given with --password can be read by any user/);
});
