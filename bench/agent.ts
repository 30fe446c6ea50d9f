// Agent benchmarks: `run` of a stored package until attached (through the real agent process and
// its unix-socket API), against the bare runtime doing the same open + load + attach in-process,
// with no instance running and again at each instance count; and the agent's RSS idle and with
// 200 and 1,000 running instances (`--instances=200,1000`, the default; `--runs=N` runs per
// latency sample). `run_attach_vs_runtime` is the worst ratio of run → attached p50 over the
// runtime's p50 across the instance counts (goal ≤ 1.2).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { attachTracepoint, BpfObject, ensureBpffs } from 'kbpf/bpf';
import { ApiClient } from '../src/agent/api-client.js';
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
  // started as a user starts it: the command itself, with the V8 flags its first line gives
  const proc = spawn(
    join(ROOT, 'bin/kbpf.js'),
    ['agent', '--state-dir', stateDir, '--bpffs-dir', bpffsDir, '--socket', socket],
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
  description:
    'run-to-attached latency through the agent vs the bare runtime (idle and at each instance count); agent RSS with 200 and 1,000 instances',
  async run(opts) {
    ensureBpffs();
    const stateDir = mkdtempSync(join(tmpdir(), 'kbpf-bench-'));
    const bpffsDir = `/sys/fs/bpf/kbpf-bench-${process.pid}`;
    const cgroupRoot = `/sys/fs/cgroup/unified/kbpf-bench-${process.pid}`;
    const runs = Number(opts.args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 40);
    const counts = (opts.args.find((a) => a.startsWith('--instances='))?.slice(12) ?? '200,1000')
      .split(',')
      .map(Number)
      .filter((n) => n > 0)
      .sort((a, b) => a - b);
    const instances = counts.at(-1) ?? 0;
    let agent: { proc: ChildProcess; client: ApiClient } | undefined;
    try {
      const store = new LayoutStore(join(stateDir, 'store'));
      const built = await buildPackage(join(ROOT, 'examples/opensnoop'), { store, cacheDir: join(ROOT, 'build') });
      const ref = built.stored.reference;
      // a tracepoint takes at most 64 programs, so the many instances are per-"pod" tcpconnect
      // instances, each on its own cgroup (as a node running one instance per pod would)
      const perPod = (await buildPackage(join(ROOT, 'examples/tcpconnect'), { store, cacheDir: join(ROOT, 'build') }))
        .stored.reference;
      mkdirSync(cgroupRoot);
      for (let i = 0; i < instances; i++) mkdirSync(join(cgroupRoot, `pod-${i}`));
      const elf = (await store.getLayer(await store.resolve(ref), 'opensnoop.bpf.o')).bytes;

      // baseline: the runtime alone, in this process; its runs alternate with the agent's, so
      // that both see the same machine (other load, the kernel's deferred work)
      const bareRun = (): number => {
        const t0 = performance.now();
        const obj = BpfObject.open(elf, { name: 'opensnoop' });
        obj.setGlobal('target_pid', 1);
        obj.load();
        const link = attachTracepoint(obj.program('trace_openat'), 'syscalls/sys_enter_openat');
        const ms = performance.now() - t0;
        link.close();
        obj.close();
        return ms;
      };

      agent = await startAgent(stateDir, bpffsDir);
      const { client, proc } = agent;
      /** n runs each of the agent (run → attached, then rm) and of the bare runtime: the p50s */
      const sample = async (n: number, tag: string): Promise<{ agent: number[]; bare: number[] }> => {
        const lat: number[] = [];
        const bare: number[] = [];
        for (let i = 0; i < n; i++) {
          bare.push(bareRun());
          const t0 = performance.now();
          const st = await client.run({ image: ref, name: `lat-${tag}-${i}`, config: { target_pid: '1' } });
          lat.push(performance.now() - t0);
          if (st.phase !== 'running' || !st.programs[0]?.linkId)
            throw new Error(`instance not attached: ${JSON.stringify(st)}`);
          await client.remove(`lat-${tag}-${i}`, { force: true });
        }
        return { agent: lat, bare };
      };
      const first = await sample(runs, '0');
      const ratios = [percentile(first.agent, 50) / percentile(first.bare, 50)];
      note(`agent: ${runs} runs of ${ref} (run returns when every program is attached and pinned)`);
      result('runtime_load_attach_p50_ms', percentile(first.bare, 50).toFixed(2));
      result('run_attach_p50_ms', percentile(first.agent, 50).toFixed(2));
      result('run_attach_p95_ms', percentile(first.agent, 95).toFixed(2));

      await sleep(500);
      result('agent_rss_mb_idle', rssMb(proc.pid!).toFixed(1));
      let running = 0;
      for (const count of counts) {
        for (; running < count; running++) {
          await client.run({
            image: perPod,
            name: `rss-${running}`,
            attach: { cgroup: join(cgroupRoot, `pod-${running}`) },
          });
          if ((running + 1) % 100 === 0)
            note(`agent: ${running + 1}/${instances} instances running, RSS ${rssMb(proc.pid!).toFixed(1)} MB`);
        }
        const up = (await client.list()).filter((s) => s.phase === 'running').length;
        if (up !== count) throw new Error(`only ${up}/${count} instances running`);
        await sleep(1000);
        result(`agent_rss_mb_${count}_instances`, rssMb(proc.pid!).toFixed(1));
        // the same run → attached, now next to `count` running instances, against the runtime now
        const at = await sample(Math.max(10, runs >> 1), String(count));
        const ratio = percentile(at.agent, 50) / percentile(at.bare, 50);
        result(`run_attach_p50_ms_${count}_instances`, percentile(at.agent, 50).toFixed(2));
        note(`agent: run → attached at ${count} instances is ${ratio.toFixed(2)}× the runtime`);
        ratios.push(ratio);
      }
      result('run_attach_vs_runtime', Math.max(...ratios).toFixed(2));
      for (let i = 0; i < running; i++) await client.remove(`rss-${i}`, { force: true });
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
