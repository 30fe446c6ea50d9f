// kbpf test: the example packages' and mesh-accel's own cases in the VM, in the kernel and in
// both; a wrong expectation fails with a diff; the cases travel in the package (a layer) and
// run from the store; the test file format refuses what it does not know.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/program.js';
import { buildPackage } from '../../src/compile/builder.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { KBPF_TESTS } from '../../src/package/media-types.js';
import { RegistryClient } from '../../src/package/registry-client.js';
import { parseTestFile } from '../../src/pkgtest/cases.js';
import { packageTestInput } from '../../src/pkgtest/package.js';
import { buildPacket } from '../../src/pkgtest/packet.js';
import { runTests, type TestInput } from '../../src/pkgtest/runner.js';
import { EXAMPLES, VMLINUX_CACHE } from '../../testbed/agent.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';
import { FakeRegistry } from '../package/fake-registry.js';

const APPS = fileURLToPath(new URL('../../../apps/', import.meta.url));

async function built(
  t: { after(fn: () => void): void },
  dir: string,
): Promise<{ input: TestInput; store: LayoutStore; state: string }> {
  const state = tempDir(t, 'kbpf-pkgtest-');
  const store = new LayoutStore(join(state, 'store'));
  const res = await buildPackage(dir, { store, cacheDir: VMLINUX_CACHE });
  return { input: await packageTestInput(store, res.stored.reference), store, state };
}

/** packetfilter's tests as built by the first test that builds it (the next ones reuse them) */
let packetfilter: TestInput | undefined;

test('the packet builder fills in lengths and checksums', () => {
  const p = buildPacket({ eth: {}, ipv4: { src: '10.0.0.1', dst: '10.0.0.2' }, udp: { dport: 53 }, payload: 'abc' });
  assert.equal(p.length, 14 + 20 + 8 + 3);
  const ip = Buffer.from(p.subarray(14, 34));
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'IPv4 header checksum');
  assert.equal(Buffer.from(p).readUInt16BE(12), 0x0800);
  assert.equal(Buffer.from(p).readUInt16BE(38), 11, 'UDP length');
  assert.deepEqual([...buildPacket('02 00 00 00 00 02')], [2, 0, 0, 0, 0, 2]);
});

test('test files: unknown keys, a case without program and bad packets are refused', () => {
  assert.throws(() => parseTestFile('cases: [{ name: a, program: p, expcet: {} }]', 't.yaml'), /unknown key "expcet"/);
  assert.throws(() => parseTestFile('cases: [{ name: a }]', 't.yaml'), /no program/);
  assert.throws(
    () => parseTestFile('program: p\ncases: [{ name: a, packet: { ipv4: { src: 1.2.3 } } }]', 't.yaml'),
    /not an IPv4 address/,
  );
  assert.throws(() => parseTestFile('program: p\ncases: [{ name: a }, { name: a }]', 't.yaml'), /two cases named "a"/);
  const [c] = parseTestFile('program: p\nconfig: { x: 1 }\ncases: [{ name: a, config: { y: 2 } }]', 't.yaml');
  assert.deepEqual(c!.config, { x: 1, y: 2 });
});

test('packetfilter: every case passes in the VM, the interpreter, and in the kernel agreeing with the VM', async (t) => {
  const before = kernelIds();
  const { input, store } = await built(t, join(EXAMPLES, 'packetfilter'));
  packetfilter = input;
  const pkg = await store.resolve(input.reference);
  assert.ok(
    pkg.manifest.layers.some((l) => l.mediaType === KBPF_TESTS),
    'the tests are a layer of the package',
  );
  for (const engine of ['vm', 'interpreter', 'both'] as const) {
    const r = runTests(input, engine);
    assert.equal(
      r.failed,
      0,
      `${engine}: ${JSON.stringify(
        r.cases.filter((c) => c.status !== 'pass'),
        null,
        1,
      )}`,
    );
    assert.equal(r.passed, 12, engine);
    if (engine === 'both')
      for (const c of r.cases) assert.deepEqual(c.ran, c.name.includes('runt') ? ['vm'] : ['vm', 'kernel'], c.name); // < 14 bytes: EINVAL
  }
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('a wrong expectation fails with the difference, in each engine and as a disagreement', () => {
  const input = packetfilter!;
  const cases = input.tests.cases.map((c) =>
    c.name.startsWith('DNS is dropped')
      ? { ...c, expect: { ...c.expect, return: 'XDP_PASS', maps: { verdicts: [{ key: 1, value: 7 }] } } }
      : c,
  );
  const r = runTests({ ...input, tests: { version: 1, cases } }, 'both', { filter: 'DNS is dropped' });
  assert.equal(r.cases.length, 1);
  const [c] = r.cases;
  assert.equal(c!.status, 'fail');
  assert.ok(c!.failures.includes('[vm] return: expected 2 (XDP_PASS), got 1 (XDP_DROP)'), c!.failures.join('\n'));
  assert.ok(c!.failures.includes('[kernel] maps.verdicts[1]: expected 7, got 1'), c!.failures.join('\n'));
});

test('mesh-accel and tcpconnect: the cgroup programs run in the VM with the task the case gives', async (t) => {
  const mesh = await built(t, join(APPS, 'mesh-accel'));
  const r = runTests(mesh.input, 'both');
  assert.equal(
    r.failed,
    0,
    JSON.stringify(
      r.cases.filter((c) => c.status === 'fail'),
      null,
      1,
    ),
  );
  assert.equal(r.passed, 12);
  const sockops = r.cases.find((c) => c.program === 'mesh_sockops')!;
  assert.equal(sockops.status, 'skip');
  assert.match(sockops.skipped.map((s) => s.reason).join('\n'), /bpf_sock_hash_update is not available/);
  for (const c of r.cases)
    assert.match(c.skipped.find((s) => s.engine === 'kernel')?.reason ?? '', /cannot be test-run in the kernel/);
  const tcp = await built(t, join(EXAMPLES, 'tcpconnect'));
  assert.equal(runTests(tcp.input, 'vm').passed, 4);
});

test('kbpf test DIR prints a line per case and exits 1 when one fails; -o json has the report', async (t) => {
  const state = tempDir(t, 'kbpf-pkgtest-cli-');
  let out = '';
  let err = '';
  const io = {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    env: { KBPF_STATE_DIR: state },
  };
  const code = await runCli(['test', join(EXAMPLES, 'packetfilter')], io);
  assert.equal(code, 0, err);
  assert.match(out, /^ {2}PASS {2}UDP echo goes back with addresses and ports swapped {2}\(vm, /m);
  assert.match(out, /12 passed, 0 failed, 0 skipped/);
  out = '';
  assert.equal(await runCli(['test', '-o', 'json', '--case', 'runt', 'packetfilter:1.0.0'], io), 0, err);
  const report = JSON.parse(out);
  assert.equal(report.cases.length, 1);
  assert.equal(report.cases[0].status, 'pass');
  assert.equal(await runCli(['test', 'nosuch:1.0.0'], io), 1);
});

test('the cases travel with the package: pushed, pulled into another store, and run from there', async (t) => {
  const { store, state } = await built(t, join(EXAMPLES, 'packetfilter'));
  const reg = new FakeRegistry();
  await reg.start();
  t.after(() => reg.stop());
  const client = new RegistryClient({ credentials: {} });
  await client.push(store, 'packetfilter:1.0.0', `${reg.host}/demo/packetfilter:1.0.0`);
  const other = new LayoutStore(join(state, 'pulled'));
  await client.pull(`${reg.host}/demo/packetfilter:1.0.0`, other);
  const r = runTests(await packageTestInput(other, `${reg.host}/demo/packetfilter:1.0.0`), 'vm');
  assert.equal(r.passed, 12);
  assert.equal(r.failed, 0);
});
