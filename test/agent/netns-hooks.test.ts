// Programs of the network hooks that are not cgroup/tc/xdp, run as packages on the real kernel:
// a BPF netfilter program dropping a port on loopback, an sk_lookup program steering
// connections to a socket in a test namespace, a flow dissector attached in a test namespace.
// Each attaches, acts, and leaves nothing in the kernel after rm; where the kernel lacks the
// hook, the run is refused naming it with nothing loaded.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hookSupport, Program, testRun } from 'kbpf/bpf';
import { isKind, Unsupported } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds } from '../../testbed/kernel.js';
import { bpftoolLink, makeNetns, netnsPath, run } from '../../testbed/netns.js';
import { leftOfOurs, type Ours } from '../bpf/leak-check.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));
const CLIENT = fileURLToPath(new URL('../../../test/fixtures/sk_lookup_client.py', import.meta.url));
const NOTHING = { prog: [], map: [], link: [] };

function counter(
  agent: { maps(n: string, m?: string): { entries: [unknown, unknown][] }[] },
  name: string,
  map: string,
) {
  return Number(agent.maps(name, map)[0]!.entries[0]?.[1] ?? 0);
}

/** Whether a TCP connection to 127.0.0.1:port is made within ms (false: it timed out or failed). */
function connects(port: number, ms = 700): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.on('connect', () => {
      clearTimeout(timer);
      s.end();
      resolve(true);
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

async function refusedNamingHook(
  run: () => Promise<unknown>,
  ours: Ours,
  hook: 'netfilter' | 'sk_lookup' | 'flow_dissector',
): Promise<void> {
  const before = kernelIds();
  await assert.rejects(run, (e: Error) => isKind(e, Unsupported) && e.message.includes(hookSupport(hook).detail));
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
}

test('netfilter: a program on ipv4 local_in drops TCP to one loopback port and counts it; rm leaves nothing', async (t) => {
  const ta = await testAgent(t);
  const ref = await ta.build(PKG('nf_drop'));
  const ours = { progs: ['drop_port'], maps: ['dropped'], objects: ['nf_drop'] };
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs[0]!.attach, { hook: 'netfilter' });
  const server: Server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const runIt = () =>
    ta.agent.run({
      image: ref,
      name: 'nfdrop',
      config: { blocked_port: port },
      attach: { programs: { drop_port: 'netfilter:ipv4:local_in:-100' } },
    });
  if (hookSupport('netfilter').supported === 'no') return refusedNamingHook(runIt, ours, 'netfilter');

  assert.equal(await connects(port), true, 'the port answers before');
  const before = kernelIds();
  const st = await runIt();
  const link = bpftoolLink(ta.agent.inspect('nfdrop').programs[0]!.linkId!);
  assert.ok(link?.type === 'netfilter' || link?.type === 10, JSON.stringify(link)); // 10: BPF_LINK_TYPE_NETFILTER (older bpftool)
  assert.equal(await connects(port), false, 'SYNs to the port are dropped');
  assert.ok(counter(ta.agent, 'nfdrop', 'dropped') >= 1, 'and counted');
  assert.ok(st.programs.length === 1);
  await ta.agent.remove('nfdrop', { force: true });
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
  assert.equal(await connects(port), true, 'the port answers again after rm');
});

test("sk_lookup: a program attached in a test namespace steers a port's connections to the socket in its sockmap; rm leaves nothing", async (t) => {
  const ta = await testAgent(t);
  const ns = await makeNetns(t);
  const ref = await ta.build(PKG('steer_lookup'));
  const ours = { progs: ['steer'], maps: ['target'], objects: ['steer_lookup'] };
  const asked = 7070;
  const listen = 7171;
  const runIt = () =>
    ta.agent.run({
      image: ref,
      name: 'steer',
      config: { steered_port: asked },
      attach: { programs: { steer: `sk_lookup:${netnsPath(ns)}` } },
    });
  if (hookSupport('sk_lookup').supported === 'no') return refusedNamingHook(runIt, ours, 'sk_lookup');
  const client = (map: string) =>
    run('nsenter', [`--net=${netnsPath(ns)}`, 'python3', CLIENT, map, String(asked), String(listen)]);

  assert.equal((await client('-')).stdout.trim(), 'refused', 'nothing listens on the port asked for');
  const before = kernelIds();
  await runIt();
  const link = bpftoolLink(ta.agent.inspect('steer').programs[0]!.linkId!);
  assert.equal(link?.netns_ino, statSync(netnsPath(ns)).ino, `attached in the test namespace: ${JSON.stringify(link)}`);
  const r = await client(ta.agent.instanceMapPath('steer', 'target'));
  assert.equal(r.stdout.trim(), 'steered', r.stderr);
  assert.equal(await connects(asked, 300), false, 'the root namespace is not steered');
  await ta.agent.remove('steer', { force: true });
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
  assert.equal((await client('-')).stdout.trim(), 'refused', 'no steering after rm');
});

/** Ethernet + IPv4 + TCP, 10.1.2.3:4242 → 10.4.5.6:80. */
function tcpPacket(): Uint8Array {
  const b = Buffer.alloc(14 + 20 + 20);
  b.writeUInt16BE(0x0800, 12);
  b.set([0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 1, 2, 3, 10, 4, 5, 6], 14);
  b.writeUInt16BE(4242, 34);
  b.writeUInt16BE(80, 36);
  b[46] = 0x50; // data offset
  b[47] = 0x02; // SYN
  return b;
}

test('flow_dissector: a program attached in a test namespace dissects (BPF_PROG_TEST_RUN fills its flow keys); rm leaves nothing', async (t) => {
  const ta = await testAgent(t);
  const ns = await makeNetns(t);
  const ref = await ta.build(PKG('dissect_ports'));
  const ours = { progs: ['dissect'], maps: ['dissected'], objects: ['dissect_ports'] };
  const runIt = () =>
    ta.agent.run({ image: ref, name: 'dissect', attach: { programs: { dissect: `flow_dissector:${netnsPath(ns)}` } } });
  if (hookSupport('flow_dissector').supported === 'no') return refusedNamingHook(runIt, ours, 'flow_dissector');

  const before = kernelIds();
  await runIt();
  const view = ta.agent.inspect('dissect');
  const link = bpftoolLink(view.programs[0]!.linkId!);
  assert.equal(link?.netns_ino, statSync(netnsPath(ns)).ino, `attached in the test namespace: ${JSON.stringify(link)}`);
  assert.match(String(link?.attach_type), /flow_dissector/);
  const prog = Program.fromPin(
    ta.agent.instanceMapPath('dissect', 'dissected').replace(/\/maps\/[^/]+$/, '/progs/dissect'),
  );
  try {
    const r = testRun(prog, { data: tcpPacket(), dataOutSize: 64 });
    assert.equal(r.retval, 0, `BPF_OK: ${r.dataOut?.toString('hex')}`);
    const keys = r.dataOut!;
    assert.equal(keys.readUInt16LE(0), 14, 'nhoff');
    assert.equal(keys.readUInt16LE(2), 34, 'thoff');
    assert.equal(keys[9], 6, 'ip_proto TCP');
    assert.equal(keys.readUInt16BE(12), 4242, 'sport');
    assert.equal(keys.readUInt16BE(14), 80, 'dport');
    assert.deepEqual([...keys.subarray(16, 24)], [10, 1, 2, 3, 10, 4, 5, 6], 'addresses');
  } finally {
    prog.close();
  }
  assert.ok(counter(ta.agent, 'dissect', 'dissected') >= 1, 'the program counted it');
  await ta.agent.remove('dissect', { force: true });
  assert.deepEqual(await leftOfOurs(before, ours), NOTHING);
});
