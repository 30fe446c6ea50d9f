import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  authFilePaths,
  credentialsFromAuthFiles,
  PackageError,
  parseWwwAuthenticate,
} from '../../src/package/index.js';
import { tempDir } from './helpers.js';

test('parses WWW-Authenticate challenges', () => {
  assert.deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
    ),
    [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:samalba/my-app:pull,push',
        },
      },
    ],
  );
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), [
    { scheme: 'basic', params: { realm: 'Registry Realm' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="a, b", Bearer realm="https://t/x", error="insufficient_scope"'), [
    { scheme: 'basic', params: { realm: 'a, b' } },
    { scheme: 'bearer', params: { realm: 'https://t/x', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Bearer realm=token-server, service="s\\"q"'), [
    { scheme: 'bearer', params: { realm: 'token-server', service: 's"q' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(''), []);
});

test('auth files: search order, key forms, per-repository keys, tokens', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(
    authFilePaths({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/0', DOCKER_CONFIG: '/d', HOME: '/h' }),
    ['/a.json', '/run/user/0/containers/auth.json', '/d/config.json'],
  );
  assert.deepEqual(authFilePaths({ HOME: '/h' }), ['/h/.docker/config.json']);

  const regFile = join(dir, 'registry-auth.json');
  await writeFile(
    regFile,
    JSON.stringify({
      auths: {
        'reg.example.com:5000': { auth: b64('u1:p:1') },
        'reg.example.com:5000/team/special': { auth: b64('u2:p2') },
      },
    }),
  );
  await mkdir(join(dir, 'home', '.docker'), { recursive: true });
  await writeFile(
    join(dir, 'home', '.docker', 'config.json'),
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:hp') },
        'https://reg.example.com:5000': { auth: b64('docker:dp') },
        'other.example.com': { identitytoken: 'refresh-x' },
        'tok.example.com': { registrytoken: 'bearer-y' },
      },
    }),
  );
  const env = { REGISTRY_AUTH_FILE: regFile, HOME: join(dir, 'home') };
  // REGISTRY_AUTH_FILE comes first.
  assert.deepEqual(await credentialsFromAuthFiles('reg.example.com:5000', 'team/app', { env }), {
    username: 'u1',
    password: 'p:1',
  });
  // The most specific per-repository key wins.
  assert.deepEqual(await credentialsFromAuthFiles('reg.example.com:5000', 'team/special/sub', { env }), {
    username: 'u2',
    password: 'p2',
  });
  // Found in ~/.docker/config.json, with https:// and /v1/ forms of the key.
  assert.deepEqual(await credentialsFromAuthFiles('docker.io', 'library/x', { env }), {
    username: 'hub',
    password: 'hp',
  });
  assert.deepEqual(await credentialsFromAuthFiles('reg.example.com:5000', 'x', { env: { HOME: join(dir, 'home') } }), {
    username: 'docker',
    password: 'dp',
  });
  assert.deepEqual(await credentialsFromAuthFiles('other.example.com', undefined, { env }), {
    identityToken: 'refresh-x',
  });
  assert.deepEqual(await credentialsFromAuthFiles('tok.example.com', undefined, { env }), {
    registryToken: 'bearer-y',
  });
  assert.equal(await credentialsFromAuthFiles('unknown.example.com', 'x', { env }), undefined);
  assert.equal(
    await credentialsFromAuthFiles('unknown.example.com', 'x', { files: [join(dir, 'absent.json')] }),
    undefined,
  );

  const broken = join(dir, 'broken.json');
  await writeFile(broken, '{"auths": ');
  await assert.rejects(credentialsFromAuthFiles('x.io', undefined, { files: [broken] }), (err: unknown) => {
    assert.ok(err instanceof PackageError);
    assert.equal(err.code, 'AUTH_CONFIG');
    assert.match(err.message, /registry auth file .*broken\.json is not valid JSON/);
    return true;
  });
  await writeFile(broken, JSON.stringify({ auths: { 'x.io': { auth: b64('nocolon') } } }));
  await assert.rejects(
    credentialsFromAuthFiles('x.io', undefined, { files: [broken] }),
    /entry "x.io": "auth" is not base64 of "user:password"/,
  );
});

test('auth files: docker credential helpers (credHelpers, credsStore)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const bin = join(dir, 'bin');
  await mkdir(bin);
  // A helper answering per server URL read from stdin, as docker-credential-* helpers do.
  const helper = join(bin, 'docker-credential-kbpftest');
  await writeFile(
    helper,
    [
      '#!/bin/sh',
      'read server',
      'case "$server" in',
      '  helper.example.com) echo \'{"ServerURL":"helper.example.com","Username":"hu","Secret":"hs"}\' ;;',
      '  token.example.com) echo \'{"ServerURL":"token.example.com","Username":"<token>","Secret":"idt"}\' ;;',
      '  *) echo "credentials not found in native keychain"; exit 1 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  await chmod(helper, 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath ?? ''}`;
  t.after(() => {
    process.env.PATH = savedPath;
  });

  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ credHelpers: { 'helper.example.com': 'kbpftest' }, credsStore: 'kbpftest' }));
  assert.deepEqual(await credentialsFromAuthFiles('helper.example.com', undefined, { files: [file] }), {
    username: 'hu',
    password: 'hs',
  });
  assert.deepEqual(await credentialsFromAuthFiles('token.example.com', undefined, { files: [file] }), {
    identityToken: 'idt',
  });
  assert.equal(await credentialsFromAuthFiles('nobody.example.com', undefined, { files: [file] }), undefined);

  await writeFile(file, JSON.stringify({ credsStore: 'absent-helper' }));
  await assert.rejects(
    credentialsFromAuthFiles('x.example.com', undefined, { files: [file] }),
    /credential helper docker-credential-absent-helper failed for x.example.com/,
  );
});
