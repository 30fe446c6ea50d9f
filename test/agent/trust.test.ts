// The agent's trust policy end to end: a package built and signed on one agent, pushed with its
// signature to Debian's docker-registry, pulled by a second agent that trusts only that key,
// runs there; the same package unsigned, signed by another key, or with a trusted key's signature
// made for another digest is refused by run (and upgrade) with nothing loaded in the kernel. A
// package built on the node itself runs only when signed with the node key or allowed
// explicitly (allowLocal). Skipped without docker-registry (the local part runs all the same).
import assert from 'node:assert/strict';
import { sign as cryptoSign } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureNodeKey, nodeKeyPaths } from '../../src/agent/trust.js';
import { Corrupted, isKind, Refused } from '../../src/errors.js';
import { RegistryClient } from '../../src/package/registry-client.js';
import {
  buildPayload,
  loadPrivateKey,
  loadPublicKey,
  type PrivateKey,
  type PublicKey,
  policyFromKeys,
  registrySignatures,
  signatureLayer,
  signPackage,
  storeSignatures,
  writeKeyPair,
} from '../../src/package/trust/index.js';
import { EXAMPLES, type TestAgent, testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';
import { missingRegistryTools, type RunningRegistry, startRegistry } from '../package/helpers.js';

const missing = missingRegistryTools().filter((m) => m !== 'skopeo');
const skip = missing.length ? `needs the Debian package(s) ${missing.join(', ')}` : false;

async function keyPair(dir: string, name: string): Promise<{ priv: PrivateKey; pub: PublicKey }> {
  const k = await writeKeyPair(name, dir);
  return { priv: await loadPrivateKey(k.privatePath), pub: await loadPublicKey(k.publicPath) };
}

/** The refusal leaves no instance, no pins and nothing in the kernel. */
async function assertNothingLeft(ta: TestAgent, name: string, before: ReturnType<typeof kernelIds>): Promise<void> {
  assert.deepEqual(
    ta.agent.list().filter((s) => s.name === name),
    [],
  );
  assert.equal(existsSync(join(ta.paths.bpffsDir, name)), false, 'no pins of the refused instance');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
}

describe('trust policy through a registry', { skip }, () => {
  let registry: RunningRegistry;
  let keys: string;
  let alice: { priv: PrivateKey; pub: PublicKey };
  let bob: { priv: PrivateKey; pub: PublicKey };
  const client = new RegistryClient({ credentials: {} });
  let builder: TestAgent;
  let node: TestAgent;
  let signedDigest: string;
  let remote: (tag: string) => string;

  before(async () => {
    keys = mkdtempSync(join(tmpdir(), 'kbpf-trust-keys-'));
    alice = await keyPair(keys, 'alice');
    bob = await keyPair(keys, 'bob');
    registry = await startRegistry();
    remote = (tag) => `${registry.host}/kbpf/opensnoop:${tag}`;
  });
  after(async () => {
    await registry?.stop();
    rmSync(keys, { recursive: true, force: true });
  });

  it('build, sign, push; a second agent that trusts the key pulls and runs it', async (t) => {
    builder = await testAgent(t);
    node = await testAgent(t, { trust: { policy: policyFromKeys([alice.pub]) } });
    const before = kernelIds();

    // built and signed on the builder, pushed with the signature
    const ref = await builder.build(join(EXAMPLES, 'opensnoop'));
    const built = await builder.agent.store.resolve(ref);
    signedDigest = built.digest;
    await signPackage(storeSignatures(builder.agent.store, built.name), built.digest, alice.priv);
    const pushed = await client.push(builder.agent.store, ref, remote('1.0.0'));
    assert.equal(pushed.signatures, 1);

    // an unsigned variant, one signed by bob, one with alice's signature made for another digest
    const variant = (marker: string) =>
      builder.build(
        builder.variant('opensnoop', (f, s) =>
          f === 'kbpf.yaml'
            ? s.replace('version: 1.0.0', `version: 1.0.0-${marker}`)
            : s.replace('e->flags = (__s32)ctx->args[2];', `e->flags = (__s32)ctx->args[2] | ${marker.length};`),
        ),
      );
    const unsigned = await variant('unsigned');
    await client.push(builder.agent.store, unsigned, remote('unsigned'));
    const byBob = await variant('bob');
    const bobPkg = await builder.agent.store.resolve(byBob);
    await signPackage(storeSignatures(builder.agent.store, bobPkg.name), bobPkg.digest, bob.priv);
    await client.push(builder.agent.store, byBob, remote('bob'));
    const other = await variant('other-digest');
    const otherPkg = await builder.agent.store.resolve(other);
    await client.push(builder.agent.store, other, remote('other-digest'), { signatures: false });
    // alice signed signedDigest; that signature is put beside the other package's digest
    const payload = buildPayload(`${registry.host}/kbpf/opensnoop`, signedDigest);
    const layer = signatureLayer(payload, cryptoSign('sha256', payload, alice.priv.key));
    await registrySignatures(client, remote('other-digest')).add(otherPkg.digest, [
      { descriptor: layer.descriptor, payload },
    ]);

    // the node pulls them all (signatures come along)
    for (const tag of ['1.0.0', 'unsigned', 'bob', 'other-digest']) await client.pull(remote(tag), node.agent.store);

    const st = await node.agent.run({ image: remote('1.0.0'), name: 'signed' });
    assert.equal(st.phase, 'running');
    assert.equal(st.digest, signedDigest);
    assert.ok(st.programs[0]?.linkId, 'attached');
    assert.equal(st.message, undefined);

    const afterSigned = kernelIds();
    const refusals: [string, typeof Refused, RegExp][] = [
      ['unsigned', Refused, /signature missing for sha256:[0-9a-f]{64} .*keys tried: alice \(sha256:/],
      ['bob', Refused, /1 signature for sha256:[0-9a-f]{64}, none by a trusted key; keys tried: alice \(sha256:/],
      [
        'other-digest',
        Corrupted,
        /the signature by alice \(sha256:[0-9a-f]+\) is for sha256:[0-9a-f]{64}, not sha256:/,
      ],
    ];
    for (const [tag, kind, re] of refusals) {
      await assert.rejects(node.agent.run({ image: remote(tag), name: `refused-${tag}` }), (e: unknown) => {
        assert.ok(isKind(e, kind), `${tag}: ${String(e)}`);
        assert.match((e as Error).message, re);
        assert.match((e as Error).message, new RegExp(`^run ${remote(tag).replace(/[.+]/g, '\\$&')}: `));
        return true;
      });
      await assertNothingLeft(node, `refused-${tag}`, afterSigned);
    }

    // an upgrade to an untrusted package is refused too, and the trusted revision keeps running
    await assert.rejects(node.agent.upgrade('signed', { image: remote('unsigned') }), /signature missing/);
    const still = node.agent.inspect('signed');
    assert.equal(still.phase, 'running');
    assert.equal(still.revision, 1);
    assert.equal(still.digest, signedDigest);
    assert.deepEqual(await leftSince(afterSigned), { prog: [], map: [], link: [] });

    // warn mode runs it, and says so
    node.agent.setTrust({ policy: policyFromKeys([alice.pub], { mode: 'warn' }) });
    const warned = await node.agent.run({ image: remote('unsigned'), name: 'warned' });
    assert.equal(warned.phase, 'running');
    assert.match(warned.message ?? '', /^untrusted \(warn\): .*signature missing for sha256:/);

    for (const n of ['signed', 'warned']) await node.agent.remove(n, { force: true });
    assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
  });
});

describe('packages built on the node', () => {
  it('run only when signed with the node key, or with allowLocal; never silently', async (t) => {
    const ta = await testAgent(t);
    const nodeKey = await ensureNodeKey(ta.paths.stateDir);
    assert.ok(existsSync(nodeKeyPaths(ta.paths.stateDir).privatePath));
    assert.equal((await ensureNodeKey(ta.paths.stateDir)).keyId, nodeKey.keyId, 'kept across starts');
    const keysDir = mkdtempSync(join(tmpdir(), 'kbpf-trust-keys-'));
    t.after(() => rmSync(keysDir, { recursive: true, force: true }));
    const release = await keyPair(keysDir, 'release');
    const trust = {
      policy: policyFromKeys([release.pub]),
      nodeKey,
      nodeKeyPath: nodeKeyPaths(ta.paths.stateDir).privatePath,
    };
    ta.agent.setTrust(trust);
    const before = kernelIds();
    const ref = await ta.build(join(EXAMPLES, 'opensnoop'));
    await assert.rejects(ta.agent.run({ image: ref, name: 'local' }), (e: unknown) => {
      assert.ok(isKind(e, Refused), String(e));
      const m = (e as Error).message;
      assert.match(m, /signature missing for sha256:[0-9a-f]{64}/);
      assert.match(m, /keys tried: node \(sha256:[0-9a-f]+\), release \(sha256:/);
      assert.match(m, /a package built on this node/);
      assert.ok(m.includes(`kbpf sign --key ${trust.nodeKeyPath} ${ref}`), m);
      assert.match(m, /--allow-local/);
      return true;
    });
    await assertNothingLeft(ta, 'local', before);

    // signed with the node key (what kbpf build does when it can read it): runs
    const pkg = await ta.agent.store.resolve(ref);
    await signPackage(storeSignatures(ta.agent.store, pkg.name), pkg.digest, await loadPrivateKey(trust.nodeKeyPath));
    const st = await ta.agent.run({ image: ref, name: 'local' });
    assert.equal(st.phase, 'running');
    await ta.agent.remove('local', { force: true });

    // the node key vouches for local packages only: a registry name signed by it is refused
    await ta.agent.store.tag(ref, '127.0.0.1:1/kbpf/opensnoop:1.0.0');
    await signPackage(
      storeSignatures(ta.agent.store, '127.0.0.1:1/kbpf/opensnoop'),
      pkg.digest,
      await loadPrivateKey(trust.nodeKeyPath),
    );
    await assert.rejects(
      ta.agent.run({ image: '127.0.0.1:1/kbpf/opensnoop:1.0.0', name: 'remote' }),
      /none by a trusted key; keys tried: release \(/,
    );

    // allowLocal: an unsigned local package runs
    const unsigned = await ta.build(
      ta.variant('opensnoop', (f, s) => (f === 'kbpf.yaml' ? s.replace('version: 1.0.0', 'version: 3.0.0') : s)),
    );
    await assert.rejects(ta.agent.run({ image: unsigned, name: 'unsigned' }), /signature missing/);
    ta.agent.setTrust({ ...trust, policy: policyFromKeys([release.pub], { allowLocal: true }) });
    assert.equal((await ta.agent.run({ image: unsigned, name: 'unsigned' })).phase, 'running');
    await ta.agent.remove('unsigned', { force: true });
    assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
  });
});
