// Inputs the property tests (parsers.test.ts) found crashing, kept as regression tests. Each
// failed with an untyped TypeError before its fix.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSourceManifest } from '../../src/compile/source-manifest.js';
import { Invalid, isKind, KbpfError } from '../../src/errors.js';
import { credentialsFromDockerConfig, RegistryClient } from '../../src/package/index.js';

describe('fuzz regressions', () => {
  it('a pull secret whose auths entry is null is refused as a bad auth config', () => {
    // counterexample: ["{\"auths\":{\"\":null}}"]
    assert.throws(
      () => credentialsFromDockerConfig('{"auths":{"":null}}', 'secret'),
      (e: unknown) => isKind(e, Invalid) && /auths\[""\] is not an object/.test(String(e)),
    );
    assert.throws(() => credentialsFromDockerConfig('null', 'secret'), /is not a JSON object/);
    assert.throws(() => credentialsFromDockerConfig('{"auths":{"h":{"auth":5}}}', 'secret'), /"auth" is not a string/);
    // a host named like an inherited key is just a host
    const creds = credentialsFromDockerConfig(
      JSON.stringify({ auths: { constructor: { auth: Buffer.from('u:p').toString('base64') } } }),
      'secret',
    );
    assert.deepEqual({ ...creds.constructor }, { username: 'u', password: 'p' });
  });

  it('a token server answering JSON null is a registry error, not a TypeError', async () => {
    // counterexample: ["null", 200]
    const fetch = (async (input: string | URL) =>
      new URL(String(input)).pathname === '/token'
        ? new Response('null', { status: 200 })
        : new Response('', {
            status: 401,
            headers: { 'WWW-Authenticate': 'Bearer realm="https://registry.example.com/token"' },
          })) as typeof globalThis.fetch;
    const c = new RegistryClient({ credentials: {}, fetch });
    await assert.rejects(
      c.getManifest('registry.example.com/app:1'),
      (e: unknown) => e instanceof KbpfError && /the token server's answer has no token/.test(e.message),
    );
  });

  it('kbpf.yaml keys named __proto__ or constructor are names, not prototypes', () => {
    const m = parseSourceManifest(
      '{"programs": {"__proto__": {"attach": "xdp"}, "constructor": {"attach": "tc:ingress"}}, "maps": {"toString": {"pin": false}}}',
    );
    assert.deepEqual(Object.keys(m.programs).sort(), ['__proto__', 'constructor']);
    assert.deepEqual(Object.getOwnPropertyDescriptor(m.programs, '__proto__')?.value, {
      attach: { hook: 'xdp', target: undefined },
    });
    assert.equal(m.maps['toString' as string]?.pin, false);
    assert.equal(Object.keys(parseSourceManifest('{}').programs).length, 0);
    assert.equal(parseSourceManifest('{}').programs.constructor, undefined, 'no inherited entries');
  });
});
