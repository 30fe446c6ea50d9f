// The prototype's verbs and flags, through Debian's real kubectl (bin/kubectl-bpf on PATH),
// against the test API server with the real controller and two real node agents, and no
// registry at all: `run FILE.bpf.c FILE.h -i NAME -a` builds here and stores the package in the
// cluster (a BpfPackage) from which every node pulls by digest and runs it; packages/images,
// show (with the source), list/ps, inspect and maps per node, doctor, stop/start, upgrade from
// source and rollback, clear (refused while run, -f removes the deployment and its instances),
// and a package over the size limit refused with the message that says to use a registry.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BpfNodeInstance, instanceReady } from '../../src/k8s/api.js';
import { clusterStoreName, MAX_PACKAGE_BYTES } from '../../src/k8s/cluster-packages.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { bpftoolShow, type KernelIds, kernelIds, leftSince } from '../../testbed/kernel.js';
import { ROOT, TestCluster } from './harness.js';
import { kubectl, needsKubectl } from './kubectl.js';

const NODES = ['node-a', 'node-b'];

function kernelProgIds(): Set<number> {
  return new Set(bpftoolShow('prog').map((p) => p.id as number));
}

function progIdsOf(nis: BpfNodeInstance[]): number[] {
  return nis.flatMap((n) => (n.status?.programs ?? []).map((p) => p.progId!)).filter(Boolean);
}

describe('kubectl bpf: the prototype verbs on a cluster without a registry', {
  skip: needsKubectl,
  timeout: 300_000,
}, () => {
  const c = new TestCluster();
  const src = mkdtempSync(join(tmpdir(), 'kbpf-verbs-src-'));
  let before0: KernelIds;
  const bpf = (...args: string[]) => kubectl(c.kubeconfig, ['bpf', ...args], { timeout: 120_000, cwd: src });
  const running = (name: string, revision: number) =>
    c.until(
      `${name} running revision ${revision} on ${NODES.join(', ')}`,
      async () => {
        const l = await c.instances(name);
        return l.length === NODES.length && l.every((n) => instanceReady(n) && n.status!.revision === revision) && l;
      },
      60_000,
    );

  before(async () => {
    before0 = kernelIds();
    // the prototype's example: opensnoop.bpf.c with its header opensnoop.h
    const code = readFileSync(join(ROOT, 'examples/opensnoop/opensnoop.bpf.c'), 'utf8').replace(
      '#define PATH_LEN 128\n',
      '#include "opensnoop.h"\n',
    );
    assert.match(code, /#include "opensnoop.h"/);
    writeFileSync(join(src, 'opensnoop.bpf.c'), code);
    writeFileSync(join(src, 'opensnoop.h'), '/* opensnoop.h: shared with user space */\n#define PATH_LEN 128\n');
    await c.start();
    for (const n of NODES) await c.addNode(n);
    c.startController();
    for (const n of NODES) c.startAgent(n);
  });

  after(async () => {
    await c.stop();
    rmSync(src, { recursive: true, force: true });
  });

  let v1Ids: number[] = [];

  it('run FILE.bpf.c FILE.h -i open -a: built here, stored in the cluster, pulled by digest and run on every node', async () => {
    const r = await bpf('run', 'opensnoop.bpf.c', 'opensnoop.h', '-i', 'open', '-a');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^bpfpackage\.kbpf\.io\/opensnoop\.[a-f0-9]{12} created$/m);
    assert.match(r.stdout, /^bpfdeployment\.kbpf\.io\/open created$/m);
    const d = await c.deployment('open');
    assert.match(d!.spec.package.image, /^bpfpackage:\/\/opensnoop@sha256:[a-f0-9]{64}$/);
    const nis = await running('open', 1);
    v1Ids = progIdsOf(nis);
    assert.equal(v1Ids.length, NODES.length, 'one program per node');
    const live = kernelProgIds();
    for (const id of v1Ids) assert.ok(live.has(id), `program ${id} is in the kernel`);
    const digest = d!.spec.package.image.split('@')[1]!;
    for (const n of c.nodes.values()) {
      const stored = await new LayoutStore(join(n.stateDir, 'store')).resolve(
        `${clusterStoreName('opensnoop')}@${digest}`,
      );
      assert.equal(stored.digest, digest, `node ${n.name} pulled it by digest from the BpfPackage`);
    }
    // run again under the same name: refused, saying what to do
    const again = await bpf('run', 'opensnoop.bpf.c', 'opensnoop.h', '-i', 'open');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /"open" already exists.*kubectl bpf upgrade/);
    assert.match(again.stdout, /bpfpackage\.kbpf\.io\/opensnoop\.[a-f0-9]{12} unchanged/);
  });

  it('packages / images list it with its instances; show prints its details and source', async () => {
    for (const verb of ['packages', 'images']) {
      const r = await bpf(verb);
      assert.equal(r.code, 0, r.stderr);
      const [header, row] = r.stdout.trimEnd().split('\n');
      assert.match(header!, /^PACKAGE\s+VERSION\s+DIGEST\s+SIZE\s+INSTANCES\s+DEPLOYMENTS\s+CREATED/);
      assert.match(row!, /^opensnoop\s+\S+\s+sha256:[a-f0-9]+\s+\S+( \S+)?\s+2\s+open\s/);
    }
    const json = JSON.parse((await bpf('packages', '-o', 'json')).stdout) as { name: string; instances: number }[];
    assert.deepEqual(
      json.map((p) => [p.name, p.instances]),
      [['opensnoop', 2]],
    );
    const show = await bpf('show', 'opensnoop');
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^Package:\s+opensnoop:/m);
    assert.match(show.stdout, /trace_openat\s+tracepoint/);
    assert.match(show.stdout, /^Source opensnoop\.h:\n\/\* opensnoop\.h: shared with user space \*\//m);
    assert.match(show.stdout, /SEC\("tracepoint\/syscalls\/sys_enter_openat"\)/);
    const asInspect = await bpf('inspect', 'opensnoop');
    assert.match(asInspect.stdout, /^Package:\s+opensnoop:/m);
  });

  it('list / ps, inspect and maps per node, doctor --node', async () => {
    const list = await bpf('list');
    assert.equal(list.code, 0, list.stderr);
    for (const n of NODES) assert.match(list.stdout, new RegExp(`^open\\s+${n}\\s+1\\s+Running\\s+trace_openat#`, 'm'));
    const psB = await bpf('ps', '-d', 'node-b', '-o', 'json');
    const data = JSON.parse(psB.stdout) as { instances: BpfNodeInstance[] };
    assert.deepEqual(
      data.instances.map((n) => n.spec.nodeName),
      ['node-b'],
    );
    const inspect = await bpf('inspect', 'open', '--node', 'node-a', '-o', 'json');
    assert.equal(inspect.code, 0, inspect.stderr);
    const st = (JSON.parse(inspect.stdout) as Record<string, { phase: string; programs: { progId: number }[] }>)[
      'node-a'
    ]!;
    assert.equal(st.phase, 'running');
    assert.ok(v1Ids.includes(st.programs[0]!.progId));
    const several = await bpf('inspect', 'open');
    assert.equal(several.code, 1);
    assert.match(several.stderr, /runs on 2 nodes \(node-a, node-b\): say --node NAME or --all/);
    const maps = await bpf('maps', 'open', 'opens_by_comm', '--all', '-o', 'json');
    assert.equal(maps.code, 0, maps.stderr);
    const m = JSON.parse(maps.stdout) as Record<string, { name: string }[]>;
    assert.deepEqual(Object.keys(m).sort(), NODES);
    assert.equal(m['node-a']![0]!.name, 'opens_by_comm');
    const doctor = await c.until('both nodes report their kernel', async () => {
      const r = await bpf('doctor');
      return NODES.every((n) => new RegExp(`^${n}\\s+\\d+\\.\\d+`, 'm').test(r.stdout)) && r;
    });
    assert.match(doctor.stdout, /^NODE\s+KERNEL\s+BTF\s+JIT\s+PROGRAM TYPES/);
    const one = await bpf('doctor', '--node', 'node-a');
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^kernel: /m);
    assert.match(one.stdout, /program types: \d+ of \d+/);
    const nope = await bpf('doctor', '--node', 'node-z');
    assert.equal(nope.code, 1);
    assert.match(nope.stderr, /no report from node node-z/);
  });

  it('stop unloads the programs on every node, keeping the instances; start loads them again', async () => {
    const stop = await bpf('stop', 'open');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /bpfdeployment\.kbpf\.io\/open stopped/);
    await c.until('open stopped on both nodes', async () => {
      const l = await c.instances('open');
      return l.length === 2 && l.every((n) => n.status?.phase === 'Stopped' && instanceReady(n));
    });
    await c.until('its programs left the kernel', () => {
      const live = kernelProgIds();
      return v1Ids.every((id) => !live.has(id));
    });
    const start = await bpf('start', 'open');
    assert.equal(start.code, 0, start.stderr);
    const nis = await running('open', 1);
    v1Ids = progIdsOf(nis);
    const live = kernelProgIds();
    for (const id of v1Ids) assert.ok(live.has(id));
  });

  it('upgrade from source, rollout history, rollback (rollout undo)', async () => {
    writeFileSync(join(src, 'opensnoop.h'), '/* opensnoop.h: version 2 */\n#define PATH_LEN 64\n');
    const up = await bpf('upgrade', 'open', 'opensnoop.bpf.c', 'opensnoop.h');
    assert.equal(up.code, 0, up.stderr);
    await running('open', 2);
    const hist = await bpf('rollout', 'history', 'open');
    assert.match(hist.stdout, /^2\s.*\(current\)$/m);
    const packages = JSON.parse((await bpf('images', '-o', 'json')).stdout) as { digest: string }[];
    assert.equal(packages.length, 2, 'two versions stored, one object per digest');
    const back = await bpf('rollback', 'open');
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /rolled back \(to the template of revision 1\)/);
    await running('open', 3);
    const status = await bpf('rollout', 'status', 'open', '--timeout', '60');
    assert.equal(status.code, 0, status.stderr);
  });

  it('clear refuses a package that a deployment runs; -f removes the deployment and its instances too', async () => {
    const refused = await bpf('clear', 'opensnoop');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /package opensnoop:\S+ \(opensnoop\.[a-f0-9]{12}\) is run by open \(2 instance\(s\)\)/,
    );
    assert.match(refused.stderr, /-f removes those deployments and their instances too/);
    assert.equal((await c.instances('open')).length, 2, 'nothing removed');
    const forced = await bpf('rmi', '-f', 'opensnoop');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /bpfdeployment\.kbpf\.io\/open deleted/);
    assert.match(forced.stdout, /bpfpackage\.kbpf\.io\/opensnoop\.[a-f0-9]{12} deleted/);
    await c.until('the instances are gone from every node', async () => (await c.instances('open')).length === 0);
    assert.equal(await c.deployment('open'), undefined);
    const none = await bpf('packages', '-o', 'json');
    assert.deepEqual(JSON.parse(none.stdout), []);
    const noPkg = await bpf('run', '-p', 'opensnoop', '-i', 'again', '--store', join(src, 'empty-store'));
    assert.equal(noPkg.code, 1);
    assert.match(noPkg.stderr, /no package opensnoop in the cluster/);
    const left = await leftSince(before0);
    assert.deepEqual(left, { prog: [], map: [], link: [] }, 'nothing of ours left in the kernel');
  });

  it('a package over the size limit is refused, saying to use a registry', async () => {
    const storeDir = join(src, 'big-store');
    const store = new LayoutStore(storeDir);
    await store.putPackage(
      {
        manifest: { name: 'huge', version: '1.0.0' },
        layers: [
          {
            mediaType: 'application/vnd.kbpf.bytecode.v1+elf',
            bytes: new Uint8Array(MAX_PACKAGE_BYTES + 1),
            title: 'huge.bpf.o',
          },
        ],
      },
      'huge:1.0.0',
    );
    const r = await bpf('run', '-p', 'huge:1.0.0', '--store', storeDir);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /package huge:1\.0\.0 is 1\.0 MiB: more than the 1\.0 MiB a BpfPackage can hold in the cluster; push it to a registry instead \(kubectl bpf run --registry HOST\/REPOSITORY/,
    );
    assert.equal(existsSync(storeDir), true);
    assert.deepEqual(JSON.parse((await bpf('packages', '-o', 'json')).stdout), []);
  });
});
