// The trust policy on its own: rules by name pattern, enforce and warn, local packages, policy
// files; checkTrust against signatures in a store.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Invalid, isKind, Refused } from '../../src/errors.js';
import { LayoutStore } from '../../src/package/index.js';
import {
  checkTrust,
  loadPrivateKey,
  loadPublicKey,
  loadTrustPolicy,
  policyFromKeys,
  signPackage,
  storeSignatures,
  writeKeyPair,
} from '../../src/package/trust/index.js';
import { samplePackage, tempDir } from './helpers.js';

async function fixture() {
  const { dir, cleanup } = await tempDir('kbpf-policy-');
  const store = new LayoutStore(join(dir, 'store'));
  const name = 'registry.example.com/ebpf/opensnoop';
  const digest = (await store.putPackage(samplePackage('opensnoop', '1.0'), `${name}:1.0`)).digest;
  const ka = await writeKeyPair('release', dir);
  const kb = await writeKeyPair('other', dir);
  const release = await loadPublicKey(ka.publicPath);
  const other = await loadPublicKey(kb.publicPath);
  const source = storeSignatures(store, name);
  return { dir, cleanup, store, name, digest, ka, release, other, source };
}

describe('checkTrust', () => {
  it('trusts a package signed by a key of the matching rule, and names the signer', async () => {
    const f = await fixture();
    try {
      await signPackage(f.source, f.digest, await loadPrivateKey(f.ka.privatePath));
      const d = await checkTrust(policyFromKeys([f.other, f.release]), `${f.name}:1.0`, f.digest, f.source);
      assert.equal(d.trusted, true);
      assert.equal(d.signer?.name, 'release');
    } finally {
      await f.cleanup();
    }
  });

  it('refuses an unsigned package in enforce mode, naming the digest and the keys tried; warns in warn mode', async () => {
    const f = await fixture();
    try {
      await assert.rejects(checkTrust(policyFromKeys([f.release]), `${f.name}:1.0`, f.digest, f.source), (e) => {
        assert.ok(isKind(e, Refused));
        assert.match(
          (e as Error).message,
          new RegExp(`signature missing for ${f.digest} .*keys tried: release \\(${f.release.keyId}\\)`),
        );
        return true;
      });
      const d = await checkTrust(policyFromKeys([f.release], { mode: 'warn' }), `${f.name}:1.0`, f.digest, f.source);
      assert.equal(d.trusted, false);
      assert.match(d.trusted ? '' : d.warning, /signature missing/);
      // a package built on this node: allowed only when the policy says so
      const local = await checkTrust(
        policyFromKeys([f.release], { allowLocal: true }),
        'opensnoop:1.0',
        f.digest,
        f.source,
      );
      assert.deepEqual(local, { trusted: true, signer: undefined, reason: 'local' });
      await assert.rejects(
        checkTrust(policyFromKeys([f.release]), 'opensnoop:1.0', f.digest, f.source),
        /signature missing/,
      );
    } finally {
      await f.cleanup();
    }
  });

  it('reads a policy file: named keys, first matching rule, per-rule mode; no rule is refused', async () => {
    const f = await fixture();
    try {
      const path = join(f.dir, 'policy.yaml');
      await writeFile(
        path,
        [
          'mode: enforce',
          'keys:',
          '  release: release.pub',
          'rules:',
          '  - match: registry.example.com/ebpf/*',
          '    keys: [release]',
          '  - match: lab.example.com/**',
          '    keys: [release]',
          '    mode: warn',
        ].join('\n'),
      );
      const policy = await loadTrustPolicy(path);
      assert.equal(policy.rules.length, 2);
      await assert.rejects(checkTrust(policy, `${f.name}:1.0`, f.digest, f.source), /signature missing/);
      const warned = await checkTrust(policy, 'lab.example.com/a/b/c:1', f.digest, f.source);
      assert.equal(warned.trusted, false);
      await assert.rejects(checkTrust(policy, 'elsewhere.example.com/x:1', f.digest, f.source), (e) => {
        assert.ok(isKind(e, Refused));
        assert.match((e as Error).message, /no trust rule matches elsewhere\.example\.com\/x/);
        return true;
      });
      await writeFile(path, 'rules:\n  - match: "*"\n    keys: [nope]\n');
      await assert.rejects(loadTrustPolicy(path), (e) => isKind(e, Invalid) && /no key named "nope"/.test(String(e)));
    } finally {
      await f.cleanup();
    }
  });
});
