// The README's first command, `bash scripts/demo.sh` (the main job with the embedded default):
// it builds every example package, starts an agent, runs opensnoop, shows live events and removes
// it again — run here from the built tree (KBPF_SKIP_SETUP) in a state dir, socket and bpffs dir
// of its own, with a short event window. It failed once because an example that is no package
// (examples/plugin) stopped the build loop.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelIds, leftSince, uniqueName } from '../../testbed/kernel.js';
import { ROOT } from './cli.js';

test('scripts/demo.sh builds the examples, shows opensnoop events and leaves nothing in the kernel', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'kbpf-demo-'));
  const bpffsDir = `/sys/fs/bpf/${uniqueName('kbpf-demo')}`;
  t.after(() => {
    rmSync(bpffsDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const before = kernelIds();
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const p = spawn('bash', [join(ROOT, 'scripts/demo.sh')], {
      cwd: ROOT,
      env: {
        ...process.env,
        KBPF_SKIP_SETUP: '1',
        DEMO_SECONDS: '3',
        KBPF_STATE_DIR: stateDir,
        KBPF_SOCKET: join(stateDir, 'agent.sock'),
        KBPF_BPFFS_DIR: bpffsDir,
        TMPDIR: stateDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    p.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const timer = setTimeout(() => p.kill('SIGTERM'), 240_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, text });
    });
  });
  assert.equal(out.code, 0, `demo.sh exited ${out.code}:\n${out.text}`);
  const packages = readdirSync(join(ROOT, 'examples')).filter((ex) =>
    existsSync(join(ROOT, 'examples', ex, 'kbpf.yaml')),
  );
  assert.equal(
    out.text.match(/^built \S+:\S+$/gm)?.length,
    packages.length,
    `every example package built (${packages})`,
  );
  assert.match(out.text, /== live events/);
  assert.match(out.text, /\/etc\/(hostname|os-release)/, "an openat() event of the demo's own reads was shown");
  assert.match(out.text, /\bO_(RDONLY|WRONLY|RDWR|CLOEXEC)\b/, 'open flags shown by name');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] }, 'nothing of the demo left in the kernel');
});
