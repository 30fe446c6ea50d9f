// Globals the agent sets from where an instance attaches: a tracepoint sees every socket of the
// node, and a package that declares kbpf_cgroup_id / kbpf_cgroup_level keeps to the sockets of its
// instance's cgroup with them (flow-monitor does).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cgroupScope } from '../../src/agent/attach-globals.js';
import type { MapDump } from '../../src/agent/queries.js';
import { testAgent } from '../../testbed/agent.js';
import { CGROUP2_ROOT, type Cleanup, removeCgroup, runInCgroup, uniqueName } from '../../testbed/kernel.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/cgroup_scope/', import.meta.url));

function variable(dump: MapDump[], section: string, name: string): unknown {
  const v = dump.find((m) => m.section === section)?.variables?.find((x) => x.name === name);
  assert.ok(v, `variable ${name} in ${section}`);
  return v.value;
}

/** A cgroup with one below it, both removed at the end (the inner one first). */
function nestedCgroups(t: Cleanup): { outer: string; inner: string } {
  const outer = join(CGROUP2_ROOT, uniqueName('kbpf-scope'));
  const inner = join(outer, 'inner');
  mkdirSync(inner, { recursive: true });
  t.after(async () => {
    await removeCgroup(inner);
    await removeCgroup(outer);
  });
  return { outer, inner };
}

// sends n UDP datagrams to the discard port of loopback, then exits
const SEND = `
const s = require('node:dgram').createSocket('udp4');
let left = Number(process.argv[1]);
const next = () => (left-- > 0 ? s.send('x', 9, '127.0.0.1', next) : s.close());
next();
`;

test('cgroupScope: a cgroup directory as the kernel numbers it (id: its inode; level: its depth)', (t) => {
  const { outer, inner } = nestedCgroups(t);
  assert.deepEqual(cgroupScope(CGROUP2_ROOT), { id: statSync(CGROUP2_ROOT, { bigint: true }).ino, level: 0 });
  assert.deepEqual(cgroupScope(inner), { id: statSync(inner, { bigint: true }).ino, level: 2 });
  assert.equal(cgroupScope(`${outer}/`).level, 1);
  assert.throws(() => cgroupScope(join(outer, 'nope')), /cgroup .*nope/);
});

test('a tracepoint program keeps to the instance cgroup with kbpf_cgroup_id / kbpf_cgroup_level', async (t) => {
  const { outer, inner } = nestedCgroups(t);
  const ta = await testAgent(t);
  await ta.agent.run({ image: await ta.build(PKG), name: 'scope', attach: { cgroup: outer } });
  const set = ta.agent.maps('scope');
  assert.equal(BigInt(variable(set, '.rodata', 'kbpf_cgroup_id') as number), statSync(outer, { bigint: true }).ino);
  assert.equal(variable(set, '.rodata', 'kbpf_cgroup_level'), 1);

  const below = await runInCgroup(inner, 'node', ['-e', SEND, '5']);
  assert.equal(below.code, 0, below.stderr);
  const elsewhere = await runInCgroup(CGROUP2_ROOT, 'node', ['-e', SEND, '3']);
  assert.equal(elsewhere.code, 0, elsewhere.stderr);
  const after = ta.agent.maps('scope');
  assert.equal(variable(after, '.bss', 'in_scope'), 5, 'the sends of the cgroup below');
  assert.equal(variable(after, '.bss', 'in_scope_btf'), 5, 'the same by kbpf_btf_sock_in_cgroup');
  assert.ok((variable(after, '.bss', 'outside') as number) >= 3, 'the sends outside it');
  assert.ok((variable(after, '.bss', 'created') as number) >= 1, 'the socket made below the cgroup');
});

test('where the cgroup2 mount starts below the root (a bind mount of a cgroup, as in a cgroup namespace), the deeper levels are looked at too', async (t) => {
  // (cleanups run in the order they were added: the instance goes first, then the mount, then the
  // cgroups; a cleanup that throws would skip those after it)
  const ta = await testAgent(t);
  const mnt = mkdtempSync(join(tmpdir(), 'kbpf-cgmount-'));
  t.after(() => {
    spawnSync('umount', [mnt]);
    try {
      rmSync(mnt, { recursive: true, force: true });
    } catch {
      // still mounted: leave the empty directory rather than skip the cleanups after this one
    }
  });
  const { outer, inner } = nestedCgroups(t);
  const bound = spawnSync('mount', ['--bind', outer, mnt]);
  assert.equal(bound.status, 0, String(bound.stderr));
  // seen from the mount, inner is one level down (it is two below the root)
  const scope = cgroupScope(join(mnt, 'inner'));
  assert.deepEqual(scope, { id: statSync(inner, { bigint: true }).ino, level: 1 });
  await ta.agent.run({ image: await ta.build(PKG), name: 'scope', attach: { cgroup: join(mnt, 'inner') } });
  assert.equal(variable(ta.agent.maps('scope'), '.rodata', 'kbpf_cgroup_level'), 1);
  const below = await runInCgroup(inner, 'node', ['-e', SEND, '4']);
  assert.equal(below.code, 0, below.stderr);
  const beside = await runInCgroup(outer, 'node', ['-e', SEND, '2']);
  assert.equal(beside.code, 0, beside.stderr);
  const after = ta.agent.maps('scope');
  assert.equal(variable(after, '.bss', 'in_scope'), 4, "the sends of the instance's cgroup, found a level deeper");
  assert.equal(variable(after, '.bss', 'in_scope_btf'), 4, 'the same by kbpf_btf_sock_in_cgroup');
  assert.ok((variable(after, '.bss', 'outside') as number) >= 2, 'the sends of the cgroup above it are outside');
});
