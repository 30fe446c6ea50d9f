// push and pull through the CLI against a real registry (Debian's docker-registry on loopback),
// then run the pulled package on a second node: the path a package takes from one machine to
// another.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelIds, leftSince } from '../../testbed/kernel.js';
import { missingRegistryTools, startRegistry } from '../package/helpers.js';
import { Node, ROOT } from './cli.js';

test('kbpf push to a registry, kbpf pull on another node, run it there', {
  skip: missingRegistryTools().length ? `needs ${missingRegistryTools().join(', ')}` : false,
}, async (t) => {
  const before = kernelIds();
  const registry = await startRegistry();
  t.after(() => registry.stop());
  const remote = `${registry.host}/kbpf/execsnoop:1.0.0`;

  const a = new Node(t);
  a.ok(['build', join(ROOT, 'examples/execsnoop')]);
  const pushed = a.ok(['push', 'execsnoop:1.0.0', remote]);
  assert.match(pushed, /sha256:[0-9a-f]{64}/);

  const b = new Node(t);
  const out = b.ok(['pull', remote]);
  const digest = /sha256:[0-9a-f]{64}/.exec(out)?.[0];
  assert.ok(digest, out);
  await b.startAgent();
  const images = b.json<{ name: string; digest: string }[]>(['images']);
  assert.ok(
    images.some((i) => i.digest === digest),
    JSON.stringify(images),
  );
  b.ok(['run', '--name', 'ex', '--set', 'target_uid=65534', remote]);
  const st = JSON.parse(b.ok(['inspect', 'ex'])) as { phase: string; digest: string };
  assert.equal(st.phase, 'running');
  assert.equal(st.digest, digest);
  // a restarted agent finds the package again from the reference with a registry port in it
  await b.stopAgent();
  await b.startAgent();
  assert.equal((JSON.parse(b.ok(['inspect', 'ex'])) as { phase: string }).phase, 'running', b.agentLog);
  b.ok(['rm', '-f', 'ex']);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
