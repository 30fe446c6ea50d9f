// kbpf on a (test) Kubernetes cluster, end to end: the real controller process and three real
// node-agent processes (each a "node" with its own cgroup subtree, bpffs dir, state dir and
// network namespace) against the test API server, packages pulled by digest from a real
// docker-registry (reached through the namespaces' bridge), events read through
// `kubectl bpf logs` from each agent's log endpoint, and the kernel checked with bpftool.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, type BpfDeployment, type BpfNodeInstance, instanceReady, PLURAL } from '../../src/k8s/api.js';
import { bpftoolShow, type KernelIds, kernelIds, leftSince } from '../../testbed/kernel.js';
import { netnsPath } from '../../testbed/netns.js';
import { missingRegistryTools } from '../package/helpers.js';
import { CONNECT_LOOP, CONNECT_PORT } from './fixtures.js';
import { ROOT, TestCluster } from './harness.js';
import { type Follower, kubectlFollow } from './kubectl.js';

const missing = missingRegistryTools().filter((m) => m === 'docker-registry');
const skip = missing.length ? `needs the Debian package docker-registry` : false;
const NODES = ['node-a', 'node-b', 'node-c'];

function kubectl(c: TestCluster, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'kubectl',
      args,
      {
        env: { ...process.env, KUBECONFIG: c.kubeconfig, PATH: `${join(ROOT, 'bin')}:${process.env.PATH}` },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** `kubectl bpf logs ARGS` left running (see kubectlFollow) */
function follow(c: TestCluster, args: string[]): Follower {
  return kubectlFollow(c.kubeconfig, ['bpf', 'logs', ...args], (fn) => c.onCleanup(fn));
}

interface LogLine {
  node: string;
  ts: string;
  seq: number;
  source?: string;
  event?: { dport?: number; rev?: number; comm?: string };
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
  const c = new TestCluster({ netns: true });
  let refs: Record<string, string>;
  let before0: KernelIds;

  before(async () => {
    before0 = kernelIds();
    await c.start();
    const v2 = mkdtempSync(join(tmpdir(), 'kbpf-k8s-src-'));
    c.onCleanup(() => import('node:fs').then((fs) => fs.rmSync(v2, { recursive: true, force: true })));
    cpSync(join(ROOT, 'examples/tcpconnect'), v2, { recursive: true });
    writeFileSync(
      join(v2, 'kbpf.yaml'),
      readFileSync(join(v2, 'kbpf.yaml'), 'utf8')
        .replace('version: 1.0.0', 'version: 2.0.0')
        .replace('columns: [pid, comm, daddr, dport]', 'columns: [pid, comm, daddr, dport, rev]'),
    );
    // version 2 says so in every event: a field in the struct's tail padding (same size), so the
    // ring buffer carries over and each event tells which revision's program produced it
    const src = join(v2, 'tcpconnect.bpf.c');
    writeFileSync(
      src,
      readFileSync(src, 'utf8')
        .replace('\t__u16 dport;\n', '\t__u16 dport;\n\t__u8 rev;\n')
        .replace('\te->dport = dport;\n', '\te->dport = dport;\n\te->rev = 2;\n'),
    );
    assert.match(readFileSync(src, 'utf8'), /e->rev = 2;/);
    assert.match(readFileSync(join(v2, 'kbpf.yaml'), 'utf8'), /dport, rev\]/);
    refs = await c.publish([
      { dir: join(ROOT, 'examples/tcpconnect'), tag: 'tcpconnect:1.0.0' },
      { dir: v2, tag: 'tcpconnect:2.0.0' },
    ]);
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
    const nis = await c.until(
      'conn running on three nodes',
      async () => {
        const l = await c.instances('conn');
        return l.length === 3 && l.every((n) => instanceReady(n) && n.status!.revision === 1) && l;
      },
      60_000,
    );
    assert.deepEqual(nis.map((n) => n.spec.nodeName).sort(), NODES);
    assert.ok(
      nis.every((n) => n.spec.image.includes('@sha256:') && n.status!.digest === n.spec.digest),
      'pulled and run by digest',
    );
    v1Ids = progIds(nis);
    assert.equal(new Set(v1Ids).size, 3, 'one program per node');
    const live = kernelProgIds();
    for (const id of v1Ids) assert.ok(live.has(id), `program ${id} is in the kernel`);
    for (const n of c.nodes.values()) assert.ok(existsSync(join(n.bpffsDir, 'conn')), `pins under ${n.bpffsDir}`);
    const d = await c.until('status rolled up', async () => {
      const x = await c.deployment('conn');
      return (
        x?.status?.readyNodes === 3 &&
        x.status.conditions?.find((k) => k.type === 'Progressing')?.reason === 'RolloutComplete' &&
        x
      );
    });
    assert.equal(d.status!.desiredNodes, 3);
    assert.equal(d.status!.currentRevision, 1);
    assert.equal(d.status!.conditions!.find((k) => k.type === 'Available')!.status, 'True');
    assert.equal(d.status!.conditions!.find((k) => k.type === 'Degraded')!.status, 'False');
    const ps = await kubectl(c, ['bpf', 'ps', 'conn']);
    assert.equal(ps.code, 0, ps.stderr);
    for (const n of NODES) assert.match(ps.stdout, new RegExp(`conn\\s+${n}\\s+1\\s+Running`));
    const psB = await kubectl(c, ['bpf', 'ps', '--node', 'node-b']);
    assert.equal(psB.code, 0, psB.stderr);
    assert.match(psB.stdout, /conn\s+node-b\s+1\s+Running\s+trace_connect4#\d+/);
    assert.doesNotMatch(psB.stdout, /node-a|node-c/);
  });

  it('each node is an agent in its own network namespace, serving its logs on its namespace address', () => {
    const seen = new Set<string>();
    for (const n of c.nodes.values()) {
      const ns = readlinkSync(`/proc/${n.proc!.pid}/ns/net`);
      assert.equal(ns, `net:[${statSync(netnsPath(n.netns!)).ino}]`, `${n.name}'s agent runs in ${n.netns}`);
      assert.notEqual(ns, readlinkSync('/proc/self/ns/net'));
      seen.add(ns);
    }
    assert.equal(seen.size, 3, 'three namespaces');
  });

  it('rolling upgrade moves nodes one at a time (maxUnavailable 1) and events keep flowing on every node', async (t) => {
    // every node: a workload connecting from its cgroup and namespace; all nodes' events followed through the plugin
    for (const n of c.nodes.values()) {
      const logs = (await c.api.get(PLURAL.nodes, n.name))?.status?.logs;
      assert.equal(
        logs?.url.startsWith(`https://${n.addr}:`),
        true,
        `${n.name} advertises logs on its namespace address, over TLS: ${JSON.stringify(logs?.url)}`,
      );
      assert.match(logs!.certificate, /^-----BEGIN CERTIFICATE-----/);
    }
    const logs = follow(c, ['--all', '-f', '-o', 'json', 'conn']);
    const work = new Map(NODES.map((n) => [n, c.startWorkload(n, CONNECT_LOOP)]));
    const ours = (node: string): LogLine[] =>
      logs.lines.map((l) => JSON.parse(l) as LogLine).filter((l) => l.node === node && l.event?.dport === CONNECT_PORT);
    await c.until('events from every node', () => NODES.every((n) => ours(n).length >= 5), 15_000);
    const upgradeStart = Date.now();
    const from = c.server.resourceVersion;
    await c.api.update(PLURAL.deployments, 'conn', (d) => ({
      ...d,
      spec: { ...d.spec, package: { image: refs['tcpconnect:2.0.0']! } },
    }));
    const nis = await c.until(
      'conn at revision 2 on three nodes',
      async () => {
        const l = await c.instances('conn');
        return l.length === 3 && l.every((n) => instanceReady(n) && n.status!.revision === 2) && l;
      },
      60_000,
    );
    // replay every change to the node instances since the update: never two nodes unavailable
    const state = new Map<string, BpfNodeInstance>();
    for (const n of await c.instances('conn')) state.set(n.metadata.name, n);
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
    // events kept flowing on every node through the upgrade, from both revisions, none lost
    await c
      .until(
        'revision 2 events from every node',
        () => NODES.every((n) => ours(n).filter((l) => l.event!.rev === 2).length >= 5),
        15_000,
      )
      .catch((e: Error) => {
        throw new Error(`${e.message}\nlast events: ${logs.lines.slice(-4).join('\n')}\n${logs.stderr.join('')}`);
      });
    await c.stopWorkloads();
    const made = new Map(NODES.map((n) => [n, Number(work.get(n)!.out.at(-1) ?? 0)]));
    await c.until(
      'every connection the workloads made is in the log',
      () => NODES.every((n) => ours(n).length >= made.get(n)!),
      10_000,
    );
    await sleep(300);
    await logs.stop();
    assert.equal(logs.stderr.join(''), '', 'the follower reported no error');
    for (const n of NODES) {
      const evs = ours(n);
      const v1 = evs.filter((l) => l.event!.rev === undefined);
      const v2 = evs.filter((l) => l.event!.rev === 2);
      assert.ok(
        v1.length >= 5 && v2.length >= 5,
        `${n}: events of both revisions (${v1.length} of revision 1, ${v2.length} of revision 2)`,
      );
      assert.ok(Date.parse(v1.at(-1)!.ts) <= Date.parse(v2.at(-1)!.ts));
      // one event per connect: the workload counted its attempts; killed mid-attempt, at most one more
      assert.ok(
        evs.length >= made.get(n)! && evs.length <= made.get(n)! + 1,
        `${n}: ${evs.length} events for ${made.get(n)} connects (no event lost in the upgrade)`,
      );
      assert.deepEqual(
        evs.map((l) => l.seq),
        [...evs.map((l) => l.seq)].sort((a, b) => a - b),
        `${n}: in order`,
      );
      const during = evs.filter((l) => Date.parse(l.ts) >= upgradeStart - 1000).map((l) => Date.parse(l.ts));
      let gap = 0;
      for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i]! - during[i - 1]!);
      assert.ok(gap < 1500, `${n}: longest gap between events during the upgrade ${gap} ms`);
      t.diagnostic(
        `${n}: ${evs.length} events for ${made.get(n)} connects, ${v1.length} from revision 1 and ${v2.length} from revision 2, longest gap ${gap} ms`,
      );
    }
    const v2Ids = progIds(nis);
    assert.equal(v2Ids.filter((id) => v1Ids.includes(id)).length, 0, 'every node runs a new program');
    const live = kernelProgIds();
    await c.until(
      'revision 1 programs gone from the kernel',
      () => v1Ids.every((id) => !kernelProgIds().has(id)),
      10_000,
    );
    for (const id of v2Ids) assert.ok(live.has(id));
    const d = await c.until('status at revision 2', async () => {
      const x = await c.deployment('conn');
      return x?.status?.currentRevision === 2 && x.status.updatedNodes === 3 && x;
    });
    assert.equal(d.status!.packageDigest, nis[0]!.spec.digest);
  });

  it("kubectl bpf logs: one node's or every node's events, each line with its node", async () => {
    const bare = await kubectl(c, ['bpf', 'logs', 'conn']);
    assert.notEqual(bare.code, 0);
    assert.match(bare.stderr, /runs on 3 nodes \(node-a, node-b, node-c\): say --node NAME or --all/);
    const one = await kubectl(c, ['bpf', 'logs', '--node', 'node-b', '--tail', '5', 'conn']);
    assert.equal(one.code, 0, one.stderr);
    const lines = one.stdout.trim().split('\n');
    assert.equal(lines.length, 5);
    for (const l of lines) assert.match(l, /^node-b {2}\d{4}-\d\d-\d\dT\S+Z {2}events \{.*"dport":/);
    const all = await kubectl(c, ['bpf', 'logs', '--all', '--tail', '3', 'conn']);
    assert.equal(all.code, 0, all.stderr);
    const byNode = all.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    for (const n of NODES) assert.equal(byNode.filter((x) => x === n).length, 3, `${n} in:\n${all.stdout}`);
    const nowhere = await kubectl(c, ['bpf', 'logs', '--node', 'node-z', 'conn']);
    assert.notEqual(nowhere.code, 0);
    assert.match(nowhere.stderr, /conn does not run on node-z/);
  });

  it("kubectl bpf rollout undo goes back to revision 1's package as revision 3", async () => {
    const v1Digest = (await c.api.list(PLURAL.revisions, { labelSelector: 'kbpf.io/deployment=conn' })).items.find(
      (r) => r.revision === 1,
    )!.digest;
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
    await c.api.create(
      PLURAL.deployments,
      deployment('edge', refs['tcpconnect:1.0.0']!, { nodeSelector: { matchLabels: { 'kbpf.io/tier': 'edge' } } }),
    );
    await c.until(
      'edge on node-a only',
      async () => {
        const l = await c.instances('edge');
        return l.length === 1 && l[0]!.spec.nodeName === 'node-a' && instanceReady(l[0]!);
      },
      30_000,
    );
    assert.ok(!existsSync(join(c.nodes.get('node-b')!.bpffsDir, 'edge')));
    const nodeB = await c.kube.core.readNode({ name: 'node-b' });
    nodeB.metadata!.labels = { ...nodeB.metadata!.labels, 'kbpf.io/tier': 'edge' };
    await c.kube.core.replaceNode({ name: 'node-b', body: nodeB });
    await c.until(
      'edge on node-b too',
      async () => {
        const l = await c.instances('edge');
        return l.length === 2 && l.every(instanceReady);
      },
      30_000,
    );
    assert.ok(existsSync(join(c.nodes.get('node-b')!.bpffsDir, 'edge')));
    const nodeA = await c.kube.core.readNode({ name: 'node-a' });
    delete nodeA.metadata!.labels!['kbpf.io/tier'];
    await c.kube.core.replaceNode({ name: 'node-a', body: nodeA });
    await c.until(
      'edge gone from node-a',
      async () => {
        const l = await c.instances('edge');
        return (
          l.length === 1 &&
          l[0]!.spec.nodeName === 'node-b' &&
          !existsSync(join(c.nodes.get('node-a')!.bpffsDir, 'edge'))
        );
      },
      30_000,
    );
    const d = await c.until('edge counts', async () => {
      const x = await c.deployment('edge');
      return x?.status?.desiredNodes === 1 && x.status.readyNodes === 1 && x;
    });
    assert.equal(d.status!.failedNodes, 0);
  });

  it("a failed load on one node shows in that node's status and in the deployment's Degraded condition", async () => {
    for (const n of ['node-a', 'node-b']) mkdirSync(join(c.nodes.get(n)!.cgroup, 'workloads'));
    await c.api.create(
      PLURAL.deployments,
      deployment('scoped', refs['tcpconnect:1.0.0']!, { attach: { cgroup: 'workloads' } }),
    );
    const d = await c.until(
      'scoped degraded on node-c',
      async () => {
        const x = await c.deployment('scoped');
        return x?.status?.failedNodes === 1 && x.status.readyNodes === 2 && x;
      },
      30_000,
    );
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

  it("kubectl bpf run --share-map / --map-size: on every node the deployment uses another deployment's map there and sizes one of its own", async () => {
    const r = await kubectl(c, [
      'bpf',
      'run',
      '-i',
      'sharer',
      '--share-map',
      'connects_by_port=conn',
      '--map-size',
      'events=524288',
      refs['tcpconnect:1.0.0']!,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const d = await c.deployment('sharer');
    assert.deepEqual(d?.spec.attach, { mapSizes: { events: 524288 }, shareMaps: { connects_by_port: 'conn' } });
    const nis = await c.until(
      'sharer on three nodes',
      async () => {
        const l = await c.instances('sharer');
        return l.length === 3 && l.every(instanceReady) && l;
      },
      60_000,
    );
    const conn = await c.instances('conn');
    const maps = new Map(bpftoolShow('map').map((m) => [m.id as number, m]));
    for (const ni of nis) {
      const owner = conn.find((n) => n.spec.nodeName === ni.spec.nodeName)!;
      const shared = (ni.status?.mapIds ?? []).filter((id) => owner.status?.mapIds?.includes(id));
      assert.equal(shared.length, 1, `${ni.spec.nodeName}: one map of conn's (${JSON.stringify(ni.status?.mapIds)})`);
      assert.equal(maps.get(shared[0]!)?.name, 'connects_by_por', 'the kernel keeps 15 characters of a name');
      const ring = (ni.status?.mapIds ?? []).map((id) => maps.get(id)).find((m) => m?.type === 'ringbuf');
      assert.equal(ring?.max_entries, 524288, `${ni.spec.nodeName}: its ring sized by --map-size`);
    }
  });

  it('an agent killed and restarted keeps its programs running and its status', async () => {
    const before = (await c.instances('conn')).find((n) => n.spec.nodeName === 'node-b')!;
    const ids = progIds([before]);
    await c.killAgent('node-b');
    assert.ok(
      ids.every((id) => kernelProgIds().has(id)),
      'programs keep running without the agent',
    );
    c.startAgent('node-b');
    await c.until(
      'node-b agent adopted its instances',
      () => c.nodes.get('node-b')!.log.some((l) => /adopted revision/.test(l)),
      20_000,
    );
    // a change while it was down is picked up too
    await c.api.update(PLURAL.deployments, 'edge', (d) => ({
      ...d,
      spec: { ...d.spec, config: { target_port: 8080 } },
    }));
    await c.until(
      'edge reconfigured on node-b',
      async () => {
        const l = await c.instances('edge');
        return l.length === 1 && instanceReady(l[0]!) && l[0]!.status!.revision === 2;
      },
      30_000,
    );
    const after = (await c.instances('conn')).find((n) => n.spec.nodeName === 'node-b')!;
    assert.deepEqual(progIds([after]), ids, 'same programs, not attached twice');
    assert.equal(after.status!.phase, 'Running');
  });

  it('deleting the deployments leaves nothing on any node (bpftool)', async () => {
    for (const name of ['conn', 'edge', 'scoped', 'sharer']) {
      const r = await kubectl(c, ['bpf', 'rm', name]);
      assert.equal(r.code, 0, r.stderr);
    }
    await c.until(
      'no node instances or revisions left',
      async () => {
        const ni = await c.api.list(PLURAL.nodeInstances);
        const rev = await c.api.list(PLURAL.revisions);
        return ni.items.length === 0 && rev.items.length === 0;
      },
      30_000,
    );
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
    await c.until(
      'every reported program and map gone',
      () => {
        const liveProgs = bpftoolShow('prog');
        const liveMaps = new Set(bpftoolShow('map').map((m) => m.id as number));
        const ours = liveProgs.filter(
          (p) => progs.has(p.id as number) || (p.name === 'trace_connect4' && !before0.prog.has(p.id as number)),
        );
        return ours.length === 0 && [...maps].every((m) => !liveMaps.has(m));
      },
      5000,
    );
    const left = await leftSince(before0, 0);
    assert.deepEqual(
      bpftoolShow('link').filter((l) => left.link.includes(l.id as number) && progs.has(l.prog_id as number)),
      [],
      'no link of ours',
    );
  });
});
