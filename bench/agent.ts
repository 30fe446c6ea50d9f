// Agent benchmarks: `run` of a stored package until attached (through the real agent process and
// its unix-socket API), against the bare runtime doing the same load + attach in-process; and the
// agent's RSS with 200 running instances, against the same agent idle.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/agent/api-client.js';
import { attachTracepoint } from '../src/bpf/link/tracing.js';
import { ensureBpffs } from '../src/bpf/mounts.js';
import { BpfObject } from '../src/bpf/object.js';
import { buildPackage } from '../src/compile/builder.js';
import { LayoutStore } from '../src/package/layout-store.js';
import { type Benchmark, note, result } from './run.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function startAgent(stateDir: string, bpffsDir: string): Promise<{ proc: ChildProcess; client: ApiClient }> {
  const socket = join(stateDir, 'agent.sock');
  const proc = spawn(
    process.execPath,
    [join(ROOT, 'bin/kbpf.js'), 'agent', '--state-dir', stateDir, '--bpffs-dir', bpffsDir, '--socket', socket],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const client = new ApiClient(socket);
  for (let i = 0; i < 200; i++) {
    if (existsSync(socket)) {
      try {
        await client.version();
        return { proc, client };
      } catch {
        /* not ready */
      }
    }
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error('the agent did not start');
}

export const benchmark: Benchmark = {
  name: 'agent',
  description: 'run-to-attached latency through the agent vs the bare runtime; agent RSS with 200 instances',
  async run(opts) {
    ensureBpffs();
    const stateDir = mkdtempSync(join(tmpdir(), 'kbpf-bench-'));
    const bpffsDir = `/sys/fs/bpf/kbpf-bench-${process.pid}`;
    const cgroupRoot = `/sys/fs/cgroup/unified/kbpf-bench-${process.pid}`;
    const runs = Number(opts.args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 40);
    const instances = Number(opts.args.find((a) => a.startsWith('--instances='))?.slice(12) ?? 200);
    let agent: { proc: ChildProcess; client: ApiClient } | undefined;
    try {
      const store = new LayoutStore(join(stateDir, 'store'));
      const built = await buildPackage(join(ROOT, 'examples/opensnoop'), { store, cacheDir: join(ROOT, 'build') });
      const ref = built.stored.reference;
      // a tracepoint takes at most 64 programs, so the 200 instances are per-"pod" tcpconnect
      // instances, each on its own cgroup (as a node running one instance per pod would)
      const perPod = (await buildPackage(join(ROOT, 'examples/tcpconnect'), { store, cacheDir: join(ROOT, 'build') }))
        .stored.reference;
      mkdirSync(cgroupRoot);
      for (let i = 0; i < instances; i++) mkdirSync(join(cgroupRoot, `pod-${i}`));
      const elf = (await store.getLayer(await store.resolve(ref), 'opensnoop.bpf.o')).bytes;

      // baseline: the runtime alone, in this process
      const bare: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const obj = BpfObject.open(elf, { name: 'opensnoop' });
        obj.setGlobal('target_pid', 1);
        obj.load();
        const link = attachTracepoint(obj.program('trace_openat'), 'syscalls/sys_enter_openat');
        bare.push(performance.now() - t0);
        link.close();
        obj.close();
      }

      agent = await startAgent(stateDir, bpffsDir);
      const { client, proc } = agent;
      const lat: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const st = await client.run({ image: ref, name: `lat-${i}`, config: { target_pid: '1' } });
        lat.push(performance.now() - t0);
        if (st.phase !== 'running' || !st.programs[0]?.linkId)
          throw new Error(`instance not attached: ${JSON.stringify(st)}`);
        await client.remove(`lat-${i}`, { force: true });
      }
      note(`agent: ${runs} runs of ${ref} (run returns when every program is attached and pinned)`);
      result('runtime_load_attach_p50_ms', percentile(bare, 50).toFixed(2));
      result('run_attach_p50_ms', percentile(lat, 50).toFixed(2));
      result('run_attach_p95_ms', percentile(lat, 95).toFixed(2));

      await sleep(500);
      const idle = rssMb(proc.pid!);
      for (let i = 0; i < instances; i++) {
        await client.run({ image: perPod, name: `rss-${i}`, attach: { cgroup: join(cgroupRoot, `pod-${i}`) } });
        if ((i + 1) % 50 === 0)
          note(`agent: ${i + 1}/${instances} instances running, RSS ${rssMb(proc.pid!).toFixed(1)} MB`);
      }
      const running = (await client.list()).filter((s) => s.phase === 'running').length;
      if (running !== instances) throw new Error(`only ${running}/${instances} instances running`);
      (global as { gc?: () => void }).gc?.();
      await sleep(1000);
      result('agent_rss_mb_idle', rssMb(proc.pid!) > 0 ? idle.toFixed(1) : 'NaN');
      result(`agent_rss_mb_${instances}_instances`, rssMb(proc.pid!).toFixed(1));
      for (let i = 0; i < instances; i++) await client.remove(`rss-${i}`, { force: true });
    } finally {
      if (agent) {
        agent.proc.kill('SIGTERM');
        await new Promise((r) => agent!.proc.once('exit', r));
      }
      rmSync(bpffsDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
      if (existsSync(cgroupRoot)) {
        for (const d of readdirSync(cgroupRoot))
          if (statSync(join(cgroupRoot, d)).isDirectory()) rmdirSync(join(cgroupRoot, d));
        rmdirSync(cgroupRoot);
      }
    }
  },
};
