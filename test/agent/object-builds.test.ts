// The two builds of an object: kbpf build compiles every source as clang's default (v1) code and
// as -mcpu=v3 code, the package carries both, and the agent loads the v3 build when the verifier
// refuses the default one; the choice is recorded in the revision and kept across agent
// restarts, stop/start and rollback, decided afresh by an upgrade. Our own programs: one that
// verifies only as v3 code (a u32 argument bounds-checked on a copy in v1 code), one that no
// build makes verifiable.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfObject, VerifierError } from 'kbpf/bpf';
import { Agent } from '../../src/agent/agent.js';
import { describeInstance, renderInstances } from '../../src/cli/render/instances.js';
import { KBPF_BYTECODE, KBPF_BYTECODE_ALTERNATIVE } from '../../src/package/media-types.js';
import { readPackageObjects } from '../../src/package/package-objects.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));

/** BTF objects in the kernel now (libbpf loads an object's BTF before its programs). */
function btfIds(): Set<number> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'show'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return new Set((JSON.parse(out || '[]') as { id?: number }[]).map((b) => b.id).filter((id) => id !== undefined));
}

/** The count of calls the instance's programs tallied (after its bounds check, so through the global arrays). */
function counted(agent: Agent, name: string): number {
  const [, value] = agent.maps(name, 'counted')[0]!.entries[0]!;
  return Number(value);
}

async function tallies(agent: Agent, name: string, more: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    for (let j = 0; j < 20; j++) statSync('/');
    const n = counted(agent, name);
    if (n >= more) return n;
  }
  return counted(agent, name);
}

test('a program the default build of which the verifier refuses runs from its cpu v3 build, without kbpf.yaml', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('syscall_slots'));

  // the package: the default object, and its v3 build in a layer of its own
  const { spec } = await ta.agent.inspectPackage(ref);
  assert.deepEqual(spec.objects, ['syscall_slots.bpf.o']);
  assert.deepEqual(spec.alternatives, [
    { object: 'syscall_slots.bpf.o', file: 'syscall_slots.bpf.cpu-v3.o', cpu: 'v3' },
  ]);
  const pkg = await ta.agent.store.resolve(ref);
  assert.deepEqual(
    pkg.manifest.layers.filter((l) => l.mediaType.includes('bytecode')).map((l) => l.mediaType),
    [KBPF_BYTECODE, KBPF_BYTECODE_ALTERNATIVE],
  );
  // the VM engine (kbpf test --engine vm, the embedding API) sees the default object only
  const { objects } = await readPackageObjects(ta.agent.store, ref);
  assert.deepEqual(
    objects.map((o) => o.file),
    ['syscall_slots.bpf.o'],
  );
  // the premise: this kernel's verifier refuses the default build
  const plain = BpfObject.open(objects[0]!.bytes, { name: 'slots_v1' });
  try {
    assert.throws(
      () => plain.load(),
      (e) => e instanceof VerifierError && /unbounded memory access/.test(e.message),
    );
  } finally {
    plain.close();
  }

  const st = await ta.agent.run({ image: ref, name: 'slots', config: { target_tgid: process.pid } });
  assert.equal(st.phase, 'running');
  const [choice] = st.objects ?? [];
  assert.equal(choice?.object, 'syscall_slots.bpf.o');
  assert.equal(choice.cpu, 'v3');
  assert.match(choice.reason, /^program slots_(enter|exit): R\d unbounded memory access/);
  assert.match(
    describeInstance(ta.agent.inspect('slots')),
    /\n {2}object syscall_slots\.bpf\.o: built for cpu v3 \(the default object was refused by the verifier: program slots_\w+: R\d unbounded memory access/,
  );
  assert.match(renderInstances('wide', ta.agent.list()), /object syscall_slots\.bpf\.o: built for cpu v3 \(/);
  assert.deepEqual(ta.agent.history('slots')[0]!.objects, {
    'syscall_slots.bpf.o': { cpu: 'v3', reason: choice.reason },
  });
  const first = await tallies(ta.agent, 'slots', 1);
  assert.ok(first > 0, 'its programs count this process’s system calls');

  // an agent restart adopts it as it runs, and still says which build runs
  await ta.agent.close();
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  const adopted = ta.agent.inspect('slots');
  assert.equal(adopted.phase, 'running');
  assert.deepEqual(
    adopted.programs.map((p) => p.progId),
    st.programs.map((p) => p.progId),
    'adopted, not loaded again',
  );
  assert.deepEqual(adopted.objects, st.objects);
  assert.ok((await tallies(ta.agent, 'slots', first + 1)) > first);

  // stopped, and started by an agent that finds the recorded choice: the v3 build is loaded
  // straight away (the reason is the recorded one, not the verifier's again)
  await ta.agent.stop('slots');
  await ta.agent.close();
  const file = join(ta.paths.instancesDir, 'slots.json');
  const record = JSON.parse(readFileSync(file, 'utf8'));
  record.revisions[0].objects['syscall_slots.bpf.o'].reason = 'as recorded';
  writeFileSync(file, JSON.stringify(record));
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  const started = await ta.agent.startInstance('slots');
  assert.equal(started.phase, 'running');
  assert.deepEqual(started.objects, [{ object: 'syscall_slots.bpf.o', cpu: 'v3', reason: 'as recorded' }]);
  assert.ok((await tallies(ta.agent, 'slots', 1)) > 0, 'the counts were carried over and grow');

  // an upgrade decides afresh (the verifier's reason again); a rollback takes what its revision had
  const beforeUpgrade = await tallies(ta.agent, 'slots', 1);
  const up = await ta.agent.upgrade('slots', { image: ref, config: { target_tgid: process.pid } });
  assert.equal(up.revision, 2);
  // the objects were opened again for the v3 build: the map carried over from revision 1 still is
  assert.ok(counted(ta.agent, 'slots') >= beforeUpgrade, 'the counts were carried over to revision 2');
  assert.deepEqual(up.objects, st.objects);
  assert.equal(up.phase, 'running');
  const back = await ta.agent.rollback('slots', { toRevision: 1 });
  assert.equal(back.revision, 3);
  assert.deepEqual(back.objects, [{ object: 'syscall_slots.bpf.o', cpu: 'v3', reason: 'as recorded' }]);
  assert.ok((await tallies(ta.agent, 'slots', 1)) > 0);

  await ta.agent.remove('slots', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('a package whose both builds the verifier refuses: the default build’s error, naming the other; nothing left', async (t) => {
  const before = kernelIds();
  const btfBefore = btfIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('slots_unbounded'));
  assert.deepEqual((await ta.agent.inspectPackage(ref)).spec.alternatives?.[0]?.cpu, 'v3');
  await assert.rejects(ta.agent.run({ image: ref, name: 'unbounded' }), (e: Error) => {
    assert.match(e.message, /: load program "unbounded_enter" of object "slots_unbounded\/slots_unbounded": /);
    assert.match(e.message, /\n {2}verifier: .*(invalid access to map value|unbounded memory access)/);
    assert.match(
      e.message,
      /\n {2}its build for cpu v3 \(slots_unbounded\.bpf\.cpu-v3\.o\) was refused as well: program unbounded_enter: /,
    );
    return true;
  });
  assert.equal(ta.agent.list().length, 0);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
  const btfLeft = [...btfIds()].filter((id) => !btfBefore.has(id));
  assert.deepEqual(btfLeft, [], 'no BTF object left');
});

test('a package whose kbpf.yaml picks the instruction set gets that build only', async (t) => {
  const ta = await testAgent(t);
  const dir = ta.variant('opensnoop', (f, s) => (f === 'kbpf.yaml' ? `${s}\nbuild:\n  flags: [-mcpu=v2]\n` : s));
  const ref = await ta.build(dir);
  assert.equal((await ta.agent.inspectPackage(ref)).spec.alternatives, undefined);
  const pkg = await ta.agent.store.resolve(ref);
  assert.ok(!pkg.manifest.layers.some((l) => l.mediaType === KBPF_BYTECODE_ALTERNATIVE));
});
