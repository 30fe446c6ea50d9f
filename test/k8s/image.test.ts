// The kbpf container images under a real container engine: `scripts/image.sh` builds them (no base
// image pulled: Debian packages through mmdebstrap, podman FROM scratch) and pushes them to the
// test's docker-registry, where skopeo checks them; then podman (with runc) runs the controller
// image with the controller Deployment's securityContext and the agent image with exactly the
// DaemonSet's (its capabilities, host mounts and read-only root, nothing more) against the test
// API server. The agent pulls a package by digest, loads it into this machine's kernel, attaches
// it to its node's cgroup, reports Running, and removes it again when the deployment goes.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { API_VERSION, type BpfDeployment, instanceReady, LEASE_NAME, PLURAL } from '../../src/k8s/api.js';
import { bpftoolShow, type KernelIds, kernelIds, leftSince } from '../../testbed/kernel.js';
import { missingRegistryTools } from '../package/helpers.js';
import { loadYaml, ROOT, TestCluster, type TestNode } from './harness.js';
import {
  forKubePlay,
  KUBE_PLAY_CONF,
  type PodSpec,
  podman,
  podmanCgroups,
  podmanRunArgs,
  podmanUnavailable,
  removePodmanCgroups,
} from './podman.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const AGENT_IMAGE = `localhost/kbpf/kbpf:${VERSION}`;
const CONTROLLER_IMAGE = `localhost/kbpf/kbpf-controller:${VERSION}`;
const KUBECONFIG_IN_POD = '/var/run/secrets/kbpf/kubeconfig';

const tools = ['podman', 'runc', 'mmdebstrap', 'skopeo'].filter(
  (t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0,
);
const missing = [...tools, ...missingRegistryTools().filter((m) => m === 'docker-registry')];
const skip = missing.length ? `needs ${missing.join(', ')} (Debian packages)` : false;

interface Workload {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    replicas?: number;
    template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

function manifest(file: string): Workload {
  return loadYaml(join(ROOT, 'deploy', file))[0] as unknown as Workload;
}

function podSpec(file: string): PodSpec {
  return manifest(file).spec.template.spec;
}

/** The container's main process, from the host: its uid, effective capabilities, no_new_privs, and its root mount. */
function processOf(name: string): {
  uid: number;
  capEff: bigint;
  noNewPrivs: boolean;
  rootReadOnly: boolean;
  /** under a seccomp filter */
  seccomp: boolean;
} {
  const pid = execFileSync('podman', ['inspect', '--format', '{{.State.Pid}}', name], { encoding: 'utf8' }).trim();
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:\\s+(\\S+)`, 'm').exec(status)?.[1] ?? '';
  const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === '/');
  return {
    uid: Number(field('Uid')),
    capEff: BigInt(`0x${field('CapEff')}`),
    noNewPrivs: field('NoNewPrivs') === '1',
    seccomp: field('Seccomp') === '2',
    rootReadOnly: !!root && root.split(' ')[5]!.split(',').includes('ro'),
  };
}

const CAP = { NET_ADMIN: 12n, PERFMON: 38n, BPF: 39n };
const AGENT_CAPS = (1n << CAP.BPF) | (1n << CAP.PERFMON) | (1n << CAP.NET_ADMIN);

/** The DaemonSet's args with this test's bpffs dir (on a shared machine) and a free log port, and the kubeconfig. */
function agentArgs(bpffsDir: string): (a: string[]) => string[] {
  const replace = (a: string[], flag: string, value: string) => a.map((x, i) => (a[i - 1] === flag ? value : x));
  return (a) => [
    ...replace(replace(a, '--bpffs-dir', bpffsDir), '--logs-address', '127.0.0.1:0'),
    '--kubeconfig',
    KUBECONFIG_IN_POD,
  ];
}

// on a machine without the cached build base, image.sh makes it first (mmdebstrap, ~3 min) before
// the two builds (~1.5 min): the bound leaves room for that
describe('the kbpf images under podman', { skip, timeout: 900_000 }, () => {
  const c = new TestCluster();
  const containers: string[] = [];
  const played: string[] = [];
  let refs: Record<string, string>;
  let built = '';
  let cannotRun: string | undefined;
  let before0: KernelIds;
  const stateDir = mkdtempSync(join(tmpdir(), 'kbpf-image-state-'));
  // the cgroups podman's containers and pods get (they outlive the containers under runc + cgroupfs)
  const cgroupsBefore = podmanCgroups();

  const logsOf = (name: string): string =>
    spawnSync('podman', ['logs', '--tail', '30', name], { encoding: 'utf8' }).stderr ?? '';
  const start = async (name: string, args: string[]): Promise<void> => {
    containers.push(name);
    const r = await podman(args);
    assert.equal(r.code, 0, `podman ${args.join(' ')}: ${r.stderr}`);
  };

  /**
   * The agent in `container` runs a deployment of tcpconnect on `node`: pulled by digest, loaded
   * into this kernel, pinned, attached to the node's cgroup, reported Running with its log
   * endpoint; and once the deployment is deleted nothing of it is left in the kernel.
   */
  const servesDeployment = async (deployment: string, node: TestNode, container: string): Promise<void> => {
    const d: BpfDeployment = {
      apiVersion: API_VERSION,
      kind: 'BpfDeployment',
      metadata: { name: deployment },
      spec: { package: { image: refs['tcpconnect:1.0.0']! }, nodeNames: [node.name] },
    };
    await c.api.create(PLURAL.deployments, d);
    const [ni] = await c
      .until(
        `the agent container ${container} runs ${deployment}`,
        async () => {
          const l = await c.instances(deployment);
          if (spawnSync('podman', ['container', 'exists', container]).status !== 0) throw new Error(logsOf(container));
          return l.length === 1 && instanceReady(l[0]!) && l;
        },
        90_000,
      )
      .catch((e: Error) => {
        throw new Error(`${e.message}\n--- agent container:\n${logsOf(container)}`);
      });
    const ids = (ni!.status!.programs ?? []).map((x) => x.progId!).filter(Boolean);
    assert.equal(ids.length, 1, JSON.stringify(ni!.status));
    assert.ok(
      bpftoolShow('prog').some((x) => x.id === ids[0]),
      `program ${ids[0]} is in the host kernel`,
    );
    assert.ok(existsSync(join(node.bpffsDir, deployment)), `pinned in the host's bpffs under ${node.bpffsDir}`);
    const attached = execFileSync('bpftool', ['-j', 'cgroup', 'show', node.cgroup], { encoding: 'utf8' });
    assert.ok(
      (JSON.parse(attached || '[]') as { id: number }[]).some((x) => x.id === ids[0]),
      `attached to the node's cgroup ${node.cgroup}`,
    );
    const endpoint = (await c.api.get(PLURAL.nodes, node.name))?.status?.logs;
    assert.match(endpoint?.url ?? '', /^https:\/\/127\.0\.0\.1:\d+$/, 'serves its event logs over TLS');

    await c.api.delete(PLURAL.deployments, deployment);
    await c.until('the instance is gone', async () => (await c.instances(deployment)).length === 0, 30_000);
    const left = await leftSince(before0);
    assert.deepEqual(left, { prog: [], map: [], link: [] }, 'nothing of it is left in the kernel');
  };

  before(async () => {
    before0 = kernelIds();
    await c.start();
    refs = await c.publish([{ dir: join(ROOT, 'examples/tcpconnect'), tag: 'tcpconnect:1.0.0' }]);
    // the images of this build (dist/ is built by the test command), pushed to the test's registry
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const p = spawn('bash', [join(ROOT, 'scripts/image.sh'), '--push', c.registry!.host], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      p.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      p.stderr.on('data', (d: Buffer) => {
        text += d.toString();
      });
      p.on('exit', (code) => resolve({ code, text }));
    });
    assert.equal(out.code, 0, `scripts/image.sh failed:\n${out.text}`);
    built = out.text;
    cannotRun = podmanUnavailable(AGENT_IMAGE);
  });

  after(async () => {
    for (const file of played.reverse()) await podman(['kube', 'down', file]);
    for (const name of containers.reverse()) await podman(['rm', '-f', '-t', '5', name]);
    const left = removePodmanCgroups(cgroupsBefore);
    if (left.length) process.stderr.write(`podman cgroups still in use, left: ${left.join(' ')}\n`);
    await c.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('builds both images, each in the registry as skopeo sees it, ≤ 120 MB compressed', () => {
    for (const repo of ['kbpf', 'kbpf-controller']) {
      const m = new RegExp(
        `${c.registry!.host}/kbpf/${repo}:${VERSION}: sha256:[a-f0-9]{64}, \\d+ layers, ([\\d.]+) MB compressed \\(linux/`,
      ).exec(built);
      assert.ok(m, `skopeo inspected ${repo}:\n${built}`);
      assert.ok(Number(m[1]) <= 120, `${repo}: ${m[1]} MB compressed`);
    }
  });

  it("runs the controller image with the controller Deployment's securityContext: it takes the lease", async (t) => {
    if (cannotRun) return t.skip(cannotRun);
    const name = `${c.id}-controller`;
    await start(
      name,
      podmanRunArgs(podSpec('controller-deployment.yaml'), {
        name,
        image: CONTROLLER_IMAGE,
        scratchDir: stateDir,
        fields: { 'metadata.name': name, 'metadata.namespace': 'kbpf-system' },
        // the API server of this test listens on the host's loopback
        network: 'host',
        args: (a) => [...a, '--kubeconfig', KUBECONFIG_IN_POD],
        extraMounts: [`${c.kubeconfig}:${KUBECONFIG_IN_POD}:ro`],
      }),
    );
    await c.until(`the controller container leads (${name})`, async () => {
      const lease = await c.kube.coordination
        .readNamespacedLease({ name: LEASE_NAME, namespace: 'kbpf-system' })
        .catch(() => undefined);
      if (lease?.spec?.holderIdentity === name) return true;
      if (spawnSync('podman', ['container', 'exists', name]).status !== 0) throw new Error(logsOf(name));
      return false;
    });
    const p = processOf(name);
    assert.equal(p.uid, 65532, 'runs as the non-root user of the Deployment');
    assert.equal(p.capEff, 0n, 'no capabilities');
    assert.ok(p.noNewPrivs, 'no privilege escalation');
    assert.ok(p.rootReadOnly, 'read-only root file system');
    assert.ok(p.seccomp, 'the runtime default seccomp profile');
  });

  it("runs the agent image with exactly the DaemonSet's securityContext: loads a deployment into the kernel and reports it", async (t) => {
    if (cannotRun) return t.skip(cannotRun);
    const node = await c.addNode('image-node');
    const name = `${c.id}-agent`;
    await start(
      name,
      podmanRunArgs(podSpec('agent-daemonset.yaml'), {
        name,
        image: AGENT_IMAGE,
        scratchDir: stateDir,
        fields: { 'spec.nodeName': node.name, 'status.hostIP': '127.0.0.1', 'metadata.namespace': 'kbpf-system' },
        // the node's own directories on this shared machine, where the DaemonSet names the host's
        hostPaths: { state: stateDir, cgroup: node.cgroup },
        args: agentArgs(node.bpffsDir),
        extraMounts: [`${c.kubeconfig}:${KUBECONFIG_IN_POD}:ro`],
      }),
    );
    const p = processOf(name);
    assert.equal(p.uid, 0);
    assert.equal(
      p.capEff,
      (1n << CAP.BPF) | (1n << CAP.PERFMON) | (1n << CAP.NET_ADMIN),
      'BPF, PERFMON, NET_ADMIN only',
    );
    assert.ok(p.noNewPrivs, 'no privilege escalation');
    assert.ok(p.rootReadOnly, 'read-only root file system');

    await servesDeployment('image-conn', node, name);
  });

  it("podman kube play runs the rendered controller Deployment and the DaemonSet's pod the same way", async (t) => {
    if (cannotRun) return t.skip(cannotRun);
    // podman 4.3 plays Pods and Deployments, not DaemonSets: the agent runs as the Pod a DaemonSet
    // controller makes of its template; the images under the manifests' name, as a release publishes
    const published = manifest('agent-daemonset.yaml').spec.template.spec.containers[0]!.image;
    assert.equal(published, manifest('controller-deployment.yaml').spec.template.spec.containers[0]!.image);
    assert.equal((await podman(['tag', AGENT_IMAGE, published])).code, 0);
    // only that name (without one, untag removes every name of the image)
    t.after(() => podman(['untag', published, published]));
    const node = await c.addNode('play-node');
    const conf = join(c.dir, 'containers.conf');
    writeFileSync(conf, KUBE_PLAY_CONF);
    const kubeconfig = { host: c.kubeconfig, inPod: KUBECONFIG_IN_POD };
    const play = async (file: string, doc: object, flags: string[] = []): Promise<void> => {
      writeFileSync(file, JSON.stringify(doc));
      played.push(file);
      const r = await new Promise<{ code: number | null; text: string }>((resolve) => {
        const p = spawn('podman', ['kube', 'play', ...flags, file], {
          env: { ...process.env, CONTAINERS_CONF: conf },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        p.stdout.on('data', (d: Buffer) => {
          text += d.toString();
        });
        p.stderr.on('data', (d: Buffer) => {
          text += d.toString();
        });
        p.on('exit', (code) => resolve({ code, text }));
      });
      assert.equal(r.code, 0, `podman kube play ${file}: ${r.text}`);
    };

    // the controller Deployment as rendered (one replica), in place of the one started above
    for (const name of containers.splice(0)) await podman(['rm', '-f', '-t', '10', name]);
    const ctl = manifest('controller-deployment.yaml');
    ctl.spec.replicas = 1;
    const ctlPlay = forKubePlay(ctl.spec.template.spec, {
      fields: { 'metadata.namespace': 'kbpf-system' },
      args: (a) => [...a, '--kubeconfig', KUBECONFIG_IN_POD],
      kubeconfig,
    });
    ctl.spec.template = {
      metadata: { ...ctl.spec.template.metadata, annotations: ctlPlay.annotations },
      spec: ctlPlay.spec,
    };
    // the test's API server is on the host's loopback: the controller joins the host's network
    await play(join(c.dir, 'controller.json'), ctl, ['--network', 'host']);
    const ctlContainer = `${ctl.metadata.name}-pod-0-controller`;
    const lease = await c.until('the played controller leads', async () => {
      const l = await c.kube.coordination
        .readNamespacedLease({ name: LEASE_NAME, namespace: 'kbpf-system' })
        .catch(() => undefined);
      return l?.spec?.holderIdentity?.startsWith(ctl.metadata.name) && l;
    });
    assert.ok(lease.spec!.holderIdentity, 'identity from the downward API (metadata.name)');
    const cp = processOf(ctlContainer);
    assert.deepEqual([cp.uid, cp.capEff, cp.noNewPrivs, cp.rootReadOnly, cp.seccomp], [65532, 0n, true, true, true]);

    const ds = manifest('agent-daemonset.yaml');
    const agentPlay = forKubePlay(ds.spec.template.spec, {
      fields: { 'spec.nodeName': node.name, 'status.hostIP': '127.0.0.1', 'metadata.namespace': 'kbpf-system' },
      hostPaths: { state: mkdtempSync(join(c.dir, 'state-')), cgroup: node.cgroup },
      args: agentArgs(node.bpffsDir),
      kubeconfig,
    });
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${ds.metadata.name}-${node.name}`,
        labels: ds.spec.template.metadata.labels,
        annotations: agentPlay.annotations,
      },
      spec: { ...agentPlay.spec, nodeName: node.name },
    };
    await play(join(c.dir, 'agent.json'), pod); // hostNetwork: true, as declared
    const agentContainer = `${pod.metadata.name}-agent`;
    const ap = processOf(agentContainer);
    assert.deepEqual(
      [ap.uid, ap.capEff, ap.noNewPrivs, ap.rootReadOnly, ap.seccomp],
      [0, AGENT_CAPS, true, true, false],
    );
    await servesDeployment('play-conn', node, agentContainer);
  });
});
