// The plugin through Debian's real kubectl (package kubernetes-client): kubectl finds
// bin/kubectl-bpf on PATH and runs it, passing the arguments and the kubeconfig through.

import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, TestCluster } from './harness.js';

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = hasKubectl() ? false : 'needs kubectl (Debian package kubernetes-client)';

function kubectl(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'kubectl',
      args,
      { env: { ...process.env, PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

test('bin/kubectl-bpf: every verb has --help; a bad --since or --timeout is refused before the cluster is asked', () => {
  const plugin = (args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'bin', 'kubectl-bpf'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig' },
    });
  // verb → how its usage line names it (aliases after a |)
  const usage: Record<string, string> = {
    run: 'run',
    upgrade: 'upgrade',
    ps: 'ps|list',
    list: 'ps|list',
    logs: 'logs|log',
    log: 'logs|log',
    rm: 'rm|delete',
    delete: 'rm|delete',
    stop: 'stop',
    start: 'start',
    packages: 'packages|images',
    images: 'packages|images',
    show: 'show',
    clear: 'clear|rmi',
    rmi: 'clear|rmi',
    inspect: 'inspect',
    maps: 'maps',
    doctor: 'doctor',
    rollback: 'rollback',
    rollout: 'rollout',
    'rollout status': 'rollout status',
    'rollout history': 'rollout history',
    'rollout undo': 'rollout undo',
  };
  for (const [verb, name] of Object.entries(usage)) {
    const r = plugin([...verb.split(' '), '--help']);
    assert.equal(r.status, 0, `${verb} --help: ${r.stderr}`);
    assert.ok(r.stdout.startsWith(`Usage: kubectl bpf ${name} `), `${verb} --help: ${r.stdout}`);
    assert.match(r.stdout, /\nExamples:\n {2}kubectl bpf /, `${verb} --help has examples`);
  }
  // the prototype's run flags
  const run = plugin(['run', '--help']).stdout;
  for (const f of [
    '-i, --inst <name>',
    '-d, --node <name>',
    '-p, --package <package>',
    '-a, --all',
    '--registry <ref>',
  ])
    assert.ok(run.includes(f), `run --help lists ${f}`);
  // kubectl's conventions: --kubeconfig, --context, -n on every verb
  const root = plugin(['--help']).stdout;
  for (const f of ['--kubeconfig <path>', '--context <name>', '-n, --namespace <namespace>'])
    assert.ok(root.includes(f), f);

  let r = plugin(['logs', '--since', 'the dawn of time', 'conn']);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /'--since <time>' argument 'the dawn of time' is invalid\. expected a duration \(30s, 5m, 1h30m\)/,
  );
  r = plugin(['rollout', 'status', '--timeout', 'forever', 'conn']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /expected seconds \(120\) or a duration/);
  r = plugin(['ps', '-o', 'xml']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Allowed choices are table, wide, json, yaml/);
});

test('kubectl plugin list finds kubectl-bpf and kubectl bpf --help runs', { skip }, async () => {
  const list = await kubectl(['plugin', 'list']);
  assert.match(
    list.stdout,
    new RegExp(`${join(ROOT, 'bin', 'kubectl-bpf').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'),
  );
  assert.doesNotMatch(list.stderr, /warning: .*kubectl-bpf/, list.stderr);
  const help = await kubectl(['bpf', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage: kubectl bpf/);
  for (const verb of ['run', 'upgrade', 'ps', 'rm', 'rollout'])
    assert.match(help.stdout, new RegExp(`^\\s+${verb}\\b`, 'm'));
  const rollout = await kubectl(['bpf', 'rollout', '--help']);
  assert.equal(rollout.code, 0);
  for (const verb of ['status', 'history', 'undo']) assert.match(rollout.stdout, new RegExp(`^\\s+${verb}\\b`, 'm'));
});

test('kubectl bpf talks to the cluster of the kubeconfig and says what went wrong', { skip }, async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const env = { KUBECONFIG: c.kubeconfig };
  const digest = `sha256:${'b'.repeat(64)}`;
  const run = await kubectl(
    [
      'bpf',
      'run',
      'snoop',
      `127.0.0.1:5000/kbpf/opensnoop@${digest}`,
      '--set',
      'target_pid=42',
      '-l',
      'kbpf.io/tier=edge',
      '--max-unavailable',
      '25%',
    ],
    env,
  );
  assert.equal(run.code, 0, run.stderr);
  const d = await c.deployment('snoop');
  assert.deepEqual(d!.spec.config, { target_pid: 42 });
  assert.deepEqual(d!.spec.nodeSelector, { matchLabels: { 'kbpf.io/tier': 'edge' } });
  assert.equal(d!.spec.strategy!.rollingUpdate!.maxUnavailable, '25%');
  const again = await kubectl(['bpf', 'run', 'snoop', `127.0.0.1:5000/kbpf/opensnoop@${digest}`], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
  const both = await kubectl(['bpf', 'run', 'bad', 'x/y:1', '--node', 'a', '-l', 'k=v'], env);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /nodeSelector and nodeNames are mutually exclusive/);
  const missing = await kubectl(['bpf', 'rollout', 'undo', 'nope'], env);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no BpfDeployment named "nope"/);
  const noEarlier = await kubectl(['bpf', 'rollout', 'undo', 'snoop'], env);
  assert.match(noEarlier.stderr, /no earlier revision/);
  const ctx = await kubectl(['bpf', 'ps', '--context', 'test', '-o', 'json'], env);
  assert.equal(ctx.code, 0, ctx.stderr);
  const badContext = await kubectl(['bpf', 'ps', '--context', 'nope'], env);
  assert.equal(badContext.code, 1);
  assert.match(badContext.stderr, /context "nope" does not exist in the kubeconfig \(it has: test\)/);
  const rm = await kubectl(['bpf', 'rm', 'snoop'], env);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(await c.deployment('snoop'), undefined);
});

test('leader election: one controller leads through the Lease, a standby takes over', async (t) => {
  const c = new TestCluster();
  t.after(() => c.stop());
  await c.start();
  const a = c.startController('ctl-a');
  await c.until('ctl-a leads', () => a.log.some((l) => l.includes('leading')), 10_000);
  const b = c.startController('ctl-b');
  const digest = `sha256:${'c'.repeat(64)}`;
  await c.api.create('bpfdeployments', {
    apiVersion: 'kbpf.io/v1alpha1',
    kind: 'BpfDeployment',
    metadata: { name: 'idle' },
    spec: { package: { image: `127.0.0.1:5000/kbpf/opensnoop@${digest}` }, nodeNames: ['nowhere'] },
  });
  await c.until('status from the leader', async () => (await c.deployment('idle'))?.status?.desiredNodes === 0);
  assert.ok(!b.log.some((l) => l.includes('leading')), 'the standby does not lead');
  const lease = await c.kube.coordination.readNamespacedLease({ name: 'kbpf-controller', namespace: 'kbpf-system' });
  assert.equal(lease.spec!.holderIdentity, 'ctl-a');
  a.proc.kill('SIGTERM');
  await c.until('ctl-b takes over', () => b.log.some((l) => l.includes('leading')), 10_000);
  await c.api.update('bpfdeployments', 'idle', (d) => ({
    ...d,
    spec: { ...d.spec, nodeNames: ['nowhere', 'elsewhere'] },
  }));
  await c.until(
    'the new leader reconciles',
    async () => (await c.deployment('idle'))?.status?.observedGeneration === 2,
  );
  const l2 = await c.kube.coordination.readNamespacedLease({ name: 'kbpf-controller', namespace: 'kbpf-system' });
  assert.equal(l2.spec!.holderIdentity, 'ctl-b');
  assert.ok((l2.spec!.leaseTransitions ?? 0) >= 1);
});
