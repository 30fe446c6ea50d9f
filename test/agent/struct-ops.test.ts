// struct_ops run by the agent: a TCP congestion control of ours registered through a pinned
// struct_ops link — listed by the kernel, used by a socket that asks for it, still registered
// after an agent restart, and gone with everything else after rm. Both the `.struct_ops.link`
// section and the older `.struct_ops` one (which kbpf registers through a link too).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hookSupport } from 'kbpf/bpf';
import { isKind, Unsupported } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, tempDir } from '../../testbed/kernel.js';
import { leftOfOurs } from '../bpf/leak-check.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/tcp_cc/', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../../test/fixtures/cc_client.c', import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };
const OURS = {
  progs: ['kbpf_cc_init', 'kbpf_cc_ssthresh', 'kbpf_cc_cong_avoid', 'kbpf_cc_undo_cwnd'],
  maps: ['cc_calls', 'kbpf_cc', 'kbpf_cc_old'],
  objects: ['tcp_cc'],
};

const available = () => readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);

/** A copy of the package, with the map in a `.struct_ops` section (and its own name) when `plain`, edited. */
function variant(
  t: { after(fn: () => unknown): void },
  plain: boolean,
  edit: (src: string) => string = (x) => x,
): string {
  const dir = tempDir(t, 'kbpf-cc-');
  cpSync(PKG, dir, { recursive: true });
  const src = join(dir, 'tcp_cc.bpf.c');
  let text = readFileSync(src, 'utf8');
  if (plain)
    text = text
      .replace('SEC(".struct_ops.link")', 'SEC(".struct_ops")')
      .replace('kbpf_cc = {', 'kbpf_cc_old = {')
      .replace('.name = "kbpf_cc"', '.name = "kbpf_cc_old"');
  writeFileSync(src, edit(text));
  return dir;
}

for (const section of ['.struct_ops.link', '.struct_ops'])
  test(`a TCP congestion control in a ${section} map: registered at run, used by a socket, kept across an agent restart, switched in place by an upgrade, gone after rm`, async (t) => {
    const plain = section === '.struct_ops';
    const ccName = plain ? 'kbpf_cc_old' : 'kbpf_cc';
    const ta = await testAgent(t);
    const ref = plain ? await ta.build(variant(t, true), 'tcp_cc_old:0.0.1') : await ta.build(PKG);
    const spec = (await ta.agent.inspectPackage(ref)).spec;
    assert.deepEqual(spec.programs.find((p) => p.name === 'kbpf_cc_init')!.attach, { hook: 'struct_ops', map: ccName });
    const support = hookSupport('struct_ops');
    const before = kernelIds();
    if (support.supported !== 'yes') {
      await assert.rejects(ta.agent.run({ image: ref, name: 'cc' }), (e: Error) => isKind(e, Unsupported));
      assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
      return t.skip(support.detail);
    }
    assert.ok(!available().includes(ccName), `${ccName} is not registered before the run`);
    const client = join(tempDir(t, 'kbpf-cc-'), 'cc_client');
    execFileSync('cc', ['-O2', '-o', client, CLIENT]);

    const st = await ta.agent.run({ image: ref, name: 'cc' });
    assert.equal(st.phase, 'running');
    assert.ok(available().includes(ccName), `${ccName} is in tcp_available_congestion_control`);
    const linkIds = new Set(st.programs.map((p) => p.linkId));
    assert.equal(linkIds.size, 1, 'the programs of one map share its link');

    assert.equal(execFileSync(client, [ccName, '4'], { encoding: 'utf8' }).trim(), `cc ${ccName}`);
    const calls = () => new Map(ta.agent.maps('cc', 'cc_calls')[0]!.entries.map(([k, v]) => [Number(k), Number(v)]));
    assert.ok((calls().get(0) ?? 0) >= 1, `the socket started with ${ccName}: ${JSON.stringify([...calls()])}`);
    assert.ok((calls().get(1) ?? 0) > 0, `${ccName} saw ACKs`);

    // a restarted agent adopts the pinned link: still registered and usable
    await ta.agent.close();
    const { Agent } = await import('../../src/agent/agent.js');
    ta.agent = new Agent(ta.paths, { log: () => {} });
    await ta.agent.start();
    assert.equal(ta.agent.inspect('cc').phase, 'running');
    assert.ok(available().includes(ccName));
    assert.equal(execFileSync(client, [ccName, '1'], { encoding: 'utf8' }).trim(), `cc ${ccName}`);

    // an upgrade puts the new revision's map in the old one's place on the same link
    // (the new revision counts ACKs in slot 0 and started sockets in slot 1: the other way round)
    const swap = (src: string) =>
      src.replace('count(0);', 'count(9);').replace('count(1);', 'count(0);').replace('count(9);', 'count(1);');
    const v2 = await ta.build(variant(t, plain, swap), 'tcp_cc_v2:0.0.2');
    const linkId = [...linkIds][0]!;
    const up = await ta.agent.upgrade('cc', { image: v2 });
    assert.equal(up.phase, 'running');
    assert.deepEqual(new Set(up.programs.map((p) => p.linkId)), new Set([linkId]), 'the link is kept');
    assert.ok(available().includes(ccName));
    const was = calls();
    assert.equal(execFileSync(client, [ccName, '1'], { encoding: 'utf8' }).trim(), `cc ${ccName}`);
    const now = calls();
    assert.equal((now.get(1) ?? 0) - (was.get(1) ?? 0), 1, 'the new revision counted the socket it started in slot 1');
    assert.ok((now.get(0) ?? 0) - (was.get(0) ?? 0) > 1, 'and the ACKs in slot 0');

    await ta.agent.remove('cc', { force: true });
    assert.ok(!available().includes(ccName), `${ccName} is unregistered after rm`);
    assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
  });

// a sleepable operation (`struct_ops.s/`, newer than Debian's libbpf 1.1): it may call helpers
// that sleep, here bpf_copy_from_user behind a branch the data never takes (the verifier checks it)
const SLEEPING_INIT = (sleepable: boolean) => (src: string) =>
  src.replace(
    'SEC("struct_ops/kbpf_cc_init")\nvoid BPF_PROG(kbpf_cc_init, struct sock *sk)\n{\n\tcount(0);\n',
    `SEC("struct_ops${sleepable ? '.s' : ''}/kbpf_cc_init")\nvoid BPF_PROG(kbpf_cc_init, struct sock *sk)\n{\n\t__u32 k = 1;\n\t__u64 *n = bpf_map_lookup_elem(&cc_calls, &k);\n\tchar c;\n\n\tif (n && *n > (1ULL << 62))\n\t\tbpf_copy_from_user(&c, 1, (void *)0);\n\tcount(0);\n`,
  );

test('a sleepable struct_ops operation (struct_ops.s/) loads sleepable and its map registers; the same code in a plain struct_ops/ section is refused by the verifier', async (t) => {
  const support = hookSupport('struct_ops');
  if (support.supported !== 'yes') return t.skip(support.detail);
  const ta = await testAgent(t);
  const before = kernelIds();
  const asleep = variant(t, false, SLEEPING_INIT(true));
  assert.match(readFileSync(join(asleep, 'tcp_cc.bpf.c'), 'utf8'), /struct_ops\.s\/kbpf_cc_init/);
  const ref = await ta.build(asleep, 'tcp_cc_sleep:0.0.1');
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(
    spec.programs.find((p) => p.name === 'kbpf_cc_init'),
    {
      ...spec.programs.find((p) => p.name === 'kbpf_cc_init'),
      section: 'struct_ops.s/kbpf_cc_init',
      type: 'struct_ops',
    },
  );
  const st = await ta.agent.run({ image: ref, name: 'cc-sleep' });
  assert.equal(st.phase, 'running');
  assert.ok(available().includes('kbpf_cc'));
  const client = join(tempDir(t, 'kbpf-cc-'), 'cc_client');
  execFileSync('cc', ['-O2', '-o', client, CLIENT]);
  assert.equal(execFileSync(client, ['kbpf_cc', '1'], { encoding: 'utf8' }).trim(), 'cc kbpf_cc');
  await ta.agent.remove('cc-sleep', { force: true });
  assert.ok(!available().includes('kbpf_cc'));
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);

  const awake = await ta.build(variant(t, false, SLEEPING_INIT(false)), 'tcp_cc_awake:0.0.1');
  await assert.rejects(ta.agent.run({ image: awake, name: 'cc-awake' }), /might sleep in a non-sleepable prog/);
  assert.deepEqual(await leftOfOurs(before, OURS), NOTHING);
});
