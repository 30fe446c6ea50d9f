// kbpf on a (test) Kubernetes cluster, end to end: the real controller process and three real
// node-agent processes (each a "node" with its own cgroup subtree, bpffs dir and state dir)
// against the test API server, packages pulled by digest from a real docker-registry on
// loopback, and the kernel checked with bpftool.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync, readdirSync, cpSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { TestCluster, ROOT } from './harness.js';
import { API_VERSION, PLURAL, instanceReady, type BpfDeployment, type BpfNodeInstance } from '../../src/k8s/api.js';
import { kernelIds, leftSince, bpftoolShow, type KernelIds } from '../helpers/kernel.js';
import { missingRegistryTools } from '../package/helpers.js';

const missing = missingRegistryTools().filter((m) => m === 'docker-registry');
const skip = missing.length ? `needs the Debian package docker-registry` : false;
const NODES = ['node-a', 'node-b', 'node-c'];

function kubectl(c: TestCluster, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('kubectl', args, { env: { ...process.env, KUBECONFIG: c.kubeconfig, PATH: `${join(ROOT, 'bin')}:${process.env.PATH}` }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

function deployment(name: string, image: string, spec: Partial<BpfDeployment['spec']> = {}): BpfDeployment {
  return { apiVersion: API_VERSION, kind: 'BpfDeployment', metadata: { name }, spec: { package: { image }, ...spec } };
}

function progIds(nis: BpfNodeInstance[]): number[] {
  return nis.flatMap((n) => (n.status?.programs ?? []).map((p) => p.progId!)).filter(Boolean);
}

function kernelProgIds(): Set<number> {
  return new Set(bpftoolShow('prog').map((p) => p.id as number));
}

describe('kbpf on Kubernetes: controller and three node agents', { skip, timeout: 240_000 }, () => {
  const c = new TestCluster();
  let refs: Record<string, string>;
  let before0: KernelIds;

  before(async () => {
    before0 = kernelIds();
    await c.start();
    const v2 = mkdtempSync(join(tmpdir(), 'kbpf-k8s-src-'));
    c.onCleanup(() => import('node:fs').then((fs) => fs.rmSync(v2, { recursive: true, force: true })));
    cpSync(join(ROOT, 'examples/tcpconnect'), v2, { recursive: true });
    writeFileSync(join(v2, 'kbpf.yaml'), readFileSync(join(v2, 'kbpf.yaml'), 'utf8').replace('version: 1.0.0', 'version: 2.0.0'));
    refs = await c.publish([{ dir: join(ROOT, 'examples/tcpconnect'), tag: 'tcpconnect:1.0.0' }, { dir: v2, tag: 'tcpconnect:2.0.0' }]);
    await c.addNode('node-a', { 'kbpf.io/tier': 'edge' });
    await c.addNode('node-b');
    await c.addNode('node-c');
    c.startController('controller-0');
    for (const n of NODES) c.startAgent(n);
  });

  after(async () => {
    await c.stop();
  });

  let v1Ids: number[] = [];

  it('deploys to all nodes: each node runs the package, pulled by digest, and reports it', async () => {
    await c.api.create(PLURAL.deployments, deployment('conn', refs['tcpconnect:1.0.0']!));
    const nis = await c.until('conn running on three nodes', async () => {
      const l = await c.instances('conn');
      return l.length === 3 && l.every((n) => instanceReady(n) && n.status!.revision === 1) && l;
    }, 60_000);
    assert.deepEqual(nis.map((n) => n.spec.nodeName).sort(), NODES);
    assert.ok(nis.every((n) => n.spec.image.includes('@sha256:') && n.status!.digest === n.spec.digest), 'pulled and run by digest');
    v1Ids = progIds(nis);
    assert.equal(new Set(v1Ids).size, 3, 'one program per node');
    const live = kernelProgIds();
    for (const id of v1Ids) assert.ok(live.has(id), `program ${id} is in the kernel`);
    for (const n of c.nodes.values()) assert.ok(existsSync(join(n.bpffsDir, 'conn')), `pins under ${n.bpffsDir}`);
    const d = await c.until('status rolled up', async () => {
      const x = await c.deployment('conn');
      return x?.status?.readyNodes === 3 && x.status.conditions?.find((k) => k.type === 'Progressing')?.reason === 'RolloutComplete' && x;
    });
    assert.equal(d.status!.desiredNodes, 3);
    assert.equal(d.status!.currentRevision, 1);
    assert.equal(d.status!.conditions!.find((k) => k.type === 'Available')!.status, 'True');
    assert.equal(d.status!.conditions!.find((k) => k.type === 'Degraded')!.status, 'False');
    const ps = await kubectl(c, ['bpf', 'ps', 'conn']);
    assert.equal(ps.code, 0, ps.stderr);
    for (const n of NODES) assert.match(ps.stdout, new RegExp(`conn\\s+${n}\\s+1\\s+Running`));
  });

  it('rolling upgrade moves nodes one at a time (maxUnavailable 1)', async () => {
    const from = c.server.resourceVersion;
    await c.api.update(PLURAL.deployments, 'conn', (d) => ({ ...d, spec: { ...d.spec, package: { image: refs['tcpconnect:2.0.0']! } } }));
    const nis = await c.until('conn at revision 2 on three nodes', async () => {
      const l = await c.instances('conn');
      return l.length === 3 && l.every((n) => instanceReady(n) && n.status!.revision === 2) && l;
    }, 60_000);
    // replay every change to the node instances since the update: never two nodes unavailable
    const state = new Map<string, BpfNodeInstance>();
    for (const n of (await c.instances('conn'))) state.set(n.metadata.name, n);
    let maxDown = 0;
    const current = new Map<string, BpfNodeInstance>();
    for (const ev of c.server.events) {
      if (ev.rv <= from || ev.rt.plural !== 'bpfnodeinstances') continue;
      const o = ev.obj as unknown as BpfNodeInstance;
      if (o.spec.deployment !== 'conn') continue;
      current.set(o.metadata.name, o);
      if (current.size < 3) continue;
      maxDown = Math.max(maxDown, [...current.values()].filter((n) => !instanceReady(n)).length);
    }
    assert.equal(maxDown, 1, 'exactly one node at a time was between revisions');
    const v2Ids = progIds(nis);
    assert.equal(v2Ids.filter((id) => v1Ids.includes(id)).length, 0, 'every node runs a new program');
    const live = kernelProgIds();
    await c.until('revision 1 programs gone from the kernel', () => v1Ids.every((id) => !kernelProgIds().has(id)), 10_000);
    for (const id of v2Ids) assert.ok(live.has(id));
    const d = await c.until('status at revision 2', async () => {
      const x = await c.deployment('conn');
      return x?.status?.currentRevision === 2 && x.status.updatedNodes === 3 && x;
    });
    assert.equal(d.status!.packageDigest, nis[0]!.spec.digest);
  });

  it('kubectl bpf rollout undo goes back to revision 1\'s package as revision 3', async () => {
    const v1Digest = (await c.api.list(PLURAL.revisions, { labelSelector: 'kbpf.io/deployment=conn' })).items.find((r) => r.revision === 1)!.digest;
    const undo = await kubectl(c, ['bpf', 'rollout', 'undo', 'conn']);
    assert.equal(undo.code, 0, undo.stderr);
    const status = await kubectl(c, ['bpf', 'rollout', 'status', 'conn', '--timeout', '60']);
    assert.equal(status.code, 0, status.stderr + status.stdout);
    assert.match(status.stdout, /successfully rolled out \(revision 3\)/);
    const nis = await c.instances('conn');
    assert.ok(nis.every((n) => instanceReady(n) && n.status!.revision === 3 && n.status!.digest === v1Digest));
    const hist = await kubectl(c, ['bpf', 'rollout', 'history', 'conn']);
    assert.equal(hist.code, 0, hist.stderr);
    assert.match(hist.stdout, /^2\s+sha256:/m);
    assert.match(hist.stdout, /^3\s+sha256:.*\(current\)$/m);
  });

  it('a label selector picks nodes; a node labelled later gets it, one unlabelled loses it', async () => {
    await c.api.create(PLURAL.deployments, deployment('edge', refs['tcpconnect:1.0.0']!, { nodeSelector: { matchLabels: { 'kbpf.io/tier': 'edge' } } }));
    await c.until('edge on node-a only', async () => {
      const l = await c.instances('edge');
      return l.length === 1 && l[0]!.spec.nodeName === 'node-a' && instanceReady(l[0]!);
    }, 30_000);
    assert.ok(!existsSync(join(c.nodes.get('node-b')!.bpffsDir, 'edge')));
    const nodeB = await c.kube.core.readNode({ name: 'node-b' });
    nodeB.metadata!.labels = { ...nodeB.metadata!.labels, 'kbpf.io/tier': 'edge' };
    await c.kube.core.replaceNode({ name: 'node-b', body: nodeB });
    await c.until('edge on node-b too', async () => {
      const l = await c.instances('edge');
      return l.length === 2 && l.every(instanceReady);
    }, 30_000);
    assert.ok(existsSync(join(c.nodes.get('node-b')!.bpffsDir, 'edge')));
    const nodeA = await c.kube.core.readNode({ name: 'node-a' });
    delete nodeA.metadata!.labels!['kbpf.io/tier'];
    await c.kube.core.replaceNode({ name: 'node-a', body: nodeA });
    await c.until('edge gone from node-a', async () => {
      const l = await c.instances('edge');
      return l.length === 1 && l[0]!.spec.nodeName === 'node-b' && !existsSync(join(c.nodes.get('node-a')!.bpffsDir, 'edge'));
    }, 30_000);
    const d = await c.until('edge counts', async () => {
      const x = await c.deployment('edge');
      return x?.status?.desiredNodes === 1 && x.status.readyNodes === 1 && x;
    });
    assert.equal(d.status!.failedNodes, 0);
  });

  it('a failed load on one node shows in that node\'s status and in the deployment\'s Degraded condition', async () => {
    for (const n of ['node-a', 'node-b']) mkdirSync(join(c.nodes.get(n)!.cgroup, 'workloads'));
    await c.api.create(PLURAL.deployments, deployment('scoped', refs['tcpconnect:1.0.0']!, { attach: { cgroup: 'workloads' } }));
    const d = await c.until('scoped degraded on node-c', async () => {
      const x = await c.deployment('scoped');
      return x?.status?.failedNodes === 1 && x.status.readyNodes === 2 && x;
    }, 30_000);
    const degraded = d.status!.conditions!.find((k) => k.type === 'Degraded')!;
    assert.equal(degraded.status, 'True');
    assert.match(degraded.message!, /node-c: .*workloads/);
    const nic = (await c.instances('scoped')).find((n) => n.spec.nodeName === 'node-c')!;
    assert.equal(nic.status!.phase, 'Failed');
    assert.match(nic.status!.message!, /workloads/);
    assert.ok(!existsSync(join(c.nodes.get('node-c')!.bpffsDir, 'scoped')), 'a failed run leaves no pins');
    const ok = (await c.instances('scoped')).filter((n) => n.spec.nodeName !== 'node-c');
    assert.ok(ok.every((n) => n.status?.phase === 'Running' && n.status.programs?.[0]?.attach?.endsWith('/workloads')));
    const ps = await kubectl(c, ['bpf', 'ps', 'scoped']);
    assert.match(ps.stdout, /scoped\s+node-c\s+\S+\s+Failed\s+.*workloads/);
  });

  it('an agent killed and restarted keeps its programs running and its status', async () => {
    const before = (await c.instances('conn')).find((n) => n.spec.nodeName === 'node-b')!;
    const ids = progIds([before]);
    await c.killAgent('node-b');
    assert.ok(ids.every((id) => kernelProgIds().has(id)), 'programs keep running without the agent');
    c.startAgent('node-b');
    await c.until('node-b agent adopted its instances', () => c.nodes.get('node-b')!.log.some((l) => /adopted revision/.test(l)), 20_000);
    // a change while it was down is picked up too
    await c.api.update(PLURAL.deployments, 'edge', (d) => ({ ...d, spec: { ...d.spec, config: { target_port: 8080 } } }));
    await c.until('edge reconfigured on node-b', async () => {
      const l = await c.instances('edge');
      return l.length === 1 && instanceReady(l[0]!) && l[0]!.status!.revision === 2;
    }, 30_000);
    const after = (await c.instances('conn')).find((n) => n.spec.nodeName === 'node-b')!;
    assert.deepEqual(progIds([after]), ids, 'same programs, not attached twice');
    assert.equal(after.status!.phase, 'Running');
  });

  it('deleting the deployments leaves nothing on any node (bpftool)', async () => {
    for (const name of ['conn', 'edge', 'scoped']) {
      const r = await kubectl(c, ['bpf', 'rm', name]);
      assert.equal(r.code, 0, r.stderr);
    }
    await c.until('no node instances or revisions left', async () => {
      const ni = await c.api.list(PLURAL.nodeInstances);
      const rev = await c.api.list(PLURAL.revisions);
      return ni.items.length === 0 && rev.items.length === 0;
    }, 30_000);
    for (const n of c.nodes.values()) {
      const left = existsSync(n.bpffsDir) ? readdirSync(n.bpffsDir) : [];
      assert.deepEqual(left, [], `${n.name}: nothing pinned`);
    }
    // every program and map any node ever reported is gone from the kernel; and no program of
    // the package appeared that is still there (other test suites may load their own meanwhile)
    const progs = new Set<number>();
    const maps = new Set<number>();
    for (const ev of c.server.events) {
      if (ev.rt.plural !== 'bpfnodeinstances') continue;
      const st = (ev.obj as unknown as BpfNodeInstance).status;
      for (const p of st?.programs ?? []) if (p.progId) progs.add(p.progId);
      for (const m of st?.mapIds ?? []) maps.add(m);
    }
    assert.ok(progs.size >= 9 && maps.size >= 9);
    await c.until('every reported program and map gone', () => {
      const liveProgs = bpftoolShow('prog');
      const liveMaps = new Set(bpftoolShow('map').map((m) => m.id as number));
      const ours = liveProgs.filter((p) => progs.has(p.id as number) || (p.name === 'trace_connect4' && !before0.prog.has(p.id as number)));
      return ours.length === 0 && [...maps].every((m) => !liveMaps.has(m));
    }, 5000);
    const left = await leftSince(before0, 0);
    assert.deepEqual(bpftoolShow('link').filter((l) => left.link.includes(l.id as number) && progs.has(l.prog_id as number)), [], 'no link of ours');
  });
});
