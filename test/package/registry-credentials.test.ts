// Where the registry client sends credentials: only to the registry's own origin and to a token
// server on its site over HTTPS (or loopback); never along a redirect to another origin, never to
// a plain-HTTP upload Location named by an HTTPS registry. A stub fetch records every request.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKind, Refused } from '../../src/errors.js';
import { LayoutStore, RegistryClient } from '../../src/package/index.js';
import { samplePackage, tempDir } from './helpers.js';

interface Seen {
  url: string;
  method: string;
  authorization?: string;
}

type Handler = (url: URL, init: RequestInit) => Response | undefined;

function stubFetch(handler: Handler): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const f = (async (input: string | URL, init: RequestInit = {}) => {
    const url = new URL(String(input));
    const headers = (init.headers ?? {}) as Record<string, string>;
    const s: Seen = { url: url.toString(), method: init.method ?? 'GET' };
    if (headers.Authorization) s.authorization = headers.Authorization;
    seen.push(s);
    return handler(url, init) ?? new Response('{"errors":[{"code":"NAME_UNKNOWN"}]}', { status: 404 });
  }) as typeof fetch;
  return { fetch: f, seen };
}

const CREDS = { username: 'me', password: 'secret' };
const challenge = (realm: string) =>
  new Response('', { status: 401, headers: { 'WWW-Authenticate': `Bearer realm="${realm}",service="reg"` } });

function bearerRegistry(realm: string): Handler {
  return (url, init) => {
    const auth = (init.headers as Record<string, string>).Authorization;
    if (url.pathname === '/token') return Response.json({ token: 'tok' });
    if (url.pathname.startsWith('/v2/') && auth !== 'Bearer tok') return challenge(realm);
    return undefined; // 404: the manifest is unknown, which is where these tests stop
  };
}

describe('registry credentials stay with the registry', () => {
  it('sends credentials to a token server on the same site over HTTPS', async () => {
    const { fetch, seen } = stubFetch(bearerRegistry('https://auth.example.com/token'));
    const c = new RegistryClient({ credentials: CREDS, fetch });
    await assert.rejects(c.getManifest('registry.example.com/app:1'), /no manifest/);
    const token = seen.find((s) => s.url.startsWith('https://auth.example.com/token'));
    assert.ok(token?.authorization?.startsWith('Basic '), 'credentials sent to auth.example.com');
  });

  it('withholds credentials from a token realm on another site', async () => {
    const { fetch, seen } = stubFetch(bearerRegistry('https://collector.evil.test/token'));
    const c = new RegistryClient({ credentials: CREDS, fetch });
    await assert.rejects(c.getManifest('registry.example.com/app:1'), /no manifest/);
    const token = seen.find((s) => s.url.startsWith('https://collector.evil.test/'));
    assert.ok(token, 'the token was still asked for, anonymously');
    assert.equal(token.authorization, undefined);
    assert.ok(!new URL(token.url).searchParams.has('account'));
  });

  it('withholds credentials from a plain-HTTP token realm that is not loopback', async () => {
    const { fetch, seen } = stubFetch(bearerRegistry('http://registry.example.com/token'));
    const c = new RegistryClient({ credentials: CREDS, fetch });
    await assert.rejects(c.getManifest('registry.example.com/app:1'), /no manifest/);
    assert.equal(seen.find((s) => s.url.startsWith('http://registry.example.com/token'))?.authorization, undefined);
  });

  it('drops Authorization on a redirect to another origin, and refuses HTTPS to HTTP', async () => {
    const { fetch, seen } = stubFetch((url) => {
      if (url.hostname === 'registry.example.com' && url.pathname.endsWith('/manifests/1'))
        return new Response('', { status: 307, headers: { Location: 'https://cdn.example.net/m' } });
      if (url.hostname === 'registry.example.com' && url.pathname.endsWith('/manifests/2'))
        return new Response('', { status: 302, headers: { Location: 'http://cdn.example.net/m' } });
      return undefined;
    });
    const c = new RegistryClient({ credentials: async () => CREDS, fetch });
    // Basic credentials cached for the registry: prime them with a 401 first.
    (c as unknown as { authCache: Map<string, string> }).authCache.set('registry.example.com', 'Basic bWU6c2VjcmV0');
    (c as unknown as { basicRegistries: Set<string> }).basicRegistries.add('registry.example.com');
    await assert.rejects(c.getManifest('registry.example.com/app:1'), /no manifest/);
    assert.equal(seen[0]?.authorization, 'Basic bWU6c2VjcmV0');
    assert.equal(seen[1]?.url, 'https://cdn.example.net/m');
    assert.equal(seen[1]?.authorization, undefined, 'no credentials for the CDN');
    await assert.rejects(c.getManifest('registry.example.com/app:2'), (e: unknown) => {
      assert.ok(isKind(e, Refused));
      assert.match(String((e as Error).message), /redirected from HTTPS to http:\/\/cdn\.example\.net; refused/);
      return true;
    });
    assert.ok(!seen.some((s) => s.url.startsWith('http://')), 'nothing was sent over plain HTTP');
  });

  it('refuses a plain-HTTP upload Location from an HTTPS registry', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new LayoutStore(join(dir, 's'));
      await store.putPackage(samplePackage());
      const { fetch, seen } = stubFetch((url, init) => {
        if (init.method === 'HEAD') return new Response(null, { status: 404 });
        if (init.method === 'POST')
          return new Response('', { status: 202, headers: { Location: `http://${url.host}/upload/1` } });
        return undefined;
      });
      const c = new RegistryClient({ credentials: CREDS, fetch });
      await assert.rejects(c.push(store, 'opensnoop:1.0', 'registry.example.com/opensnoop:1.0'), (e: unknown) => {
        assert.ok(isKind(e, Refused), String(e));
        assert.match(String((e as Error).message), /plain HTTP upload Location/);
        return true;
      });
      assert.ok(!seen.some((s) => s.url.startsWith('http://')), 'nothing was sent over plain HTTP');
    } finally {
      await cleanup();
    }
  });
});
