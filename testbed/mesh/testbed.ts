// The mesh test bed, shared by test/mesh/*.test.ts and bench/mesh.ts.
//
// A "node" is a network namespace holding a bridge; a "pod" is a network namespace joined to
// that bridge by a veth pair, with its own cgroup under one parent cgroup (the one mesh-accel
// attaches to), an app and a sidecar:
//   app      HAProxy as uid 0 answering every request on :80 and :8081 itself, with a body that
//            echoes which sidecars the request went through (headers they add)
//   sidecar  Debian's HAProxy as the mesh's sidecar uid (istio 1337): outbound listener (15001)
//            and inbound listener (15006), both with `option transparent` backends, i.e. they
//            connect to the connection's original destination, which HAProxy gets from
//            getsockopt(SOL_IP, SO_ORIGINAL_DST); each adds a header naming the destination it saw.
// The same pods can be wired with iptables REDIRECT rules as istio-init writes them (owner-uid
// exclusion for the sidecar), so the iptables and eBPF data paths run on identical pods.
// Dual-stack (Testbed.create(t, prefix, { ipv6: true })): each pod also gets an address in a
// random fd00:6b62:7066:XXXX::/64 ("kbpf" in hex, a ULA prefix) on the same bridge; the app
// listens on [::]:80 and [::]:8081 too, and the IPv6 half of the sidecar is sidecar6.ts (a tiny
// Node proxy using getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)), because Debian's HAProxy does not
// ask for an IPv6 connection's original destination (see sidecar6.ts).
// Only addresses inside namespaces made here are used; everything goes at destroy(), which is
// registered with the test's cleanup (so it also runs on failure).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CGROUP2_ROOT, type Cleanup, type RunResult, uniqueName } from '../kernel.js';
import { run } from '../netns.js';

export type { Cleanup };

export type MeshModeName = 'istio' | 'linkerd' | 'kuma' | 'osm';

export interface SidecarPorts {
  outbound: number;
  inbound: number;
  uid: number;
  /** bind address of the outbound listener (linkerd's proxy binds 127.0.0.1) */
  outboundBind: string;
}

export const SIDECARS: Record<MeshModeName, SidecarPorts> = {
  istio: { outbound: 15001, inbound: 15006, uid: 1337, outboundBind: '0.0.0.0' },
  linkerd: { outbound: 4140, inbound: 4143, uid: 2102, outboundBind: '127.0.0.1' },
  kuma: { outbound: 15001, inbound: 15006, uid: 5678, outboundBind: '0.0.0.0' },
  osm: { outbound: 15001, inbound: 15003, uid: 1500, outboundBind: '0.0.0.0' },
};

/** The app's ports: 80 is meshed, 8081 is the one tests exclude. */
export const APP_PORT = 80;
export const APP_PORT_2 = 8081;

export interface Pod {
  name: string;
  netns: string;
  cgroup: string;
  ip: string;
  /** the pod's IPv6 address on a dual-stack or IPv6-only test bed */
  ip6?: string;
  /** an IPv6-only pod: `ip` is not configured (nothing in the pod has an IPv4 address but loopback) */
  ipv6Only: boolean;
  mode: MeshModeName;
  sidecar: SidecarPorts;
  dir: string;
  procs: ChildProcess[];
  sidecarProc: ChildProcess | null;
  sidecar6Proc: ChildProcess | null;
  sidecarThreads: number;
  /**
   * What the sidecar proxies, read each time it (re)starts: http (L7: parses each request, adds
   * the x-mesh-* headers, as a sidecar routing HTTP does) or tcp (L4: passes the bytes on, as a
   * sidecar does for plain TCP services; no headers)
   */
  sidecarProtocol: 'http' | 'tcp';
  /** CPUs everything in the pod runs on (taskset -c list), null = anywhere */
  cpus: string | null;
  iptables: boolean;
}

export interface PodOptions {
  mode?: MeshModeName;
  /** start the sidecar (default true) */
  sidecar?: boolean;
  /** sidecar threads (default 1) */
  threads?: number;
  /** what the sidecar proxies: http (default, L7) or tcp (L4); see Pod.sidecarProtocol */
  sidecarProtocol?: 'http' | 'tcp';
  /**
   * CPUs for everything started in the pod (a `taskset -c` list, e.g. "0"): a pod with its own
   * CPUs, as kubelet's static CPU manager gives a Guaranteed pod. Default: any CPU.
   */
  cpus?: string;
  /** the pod's cgroup directory name under the parent cgroup (default podN; kubelet names it pod<uid>) */
  cgroupName?: string;
  /** called once the pod's namespace and cgroup exist, before anything runs in it (declare it here) */
  beforeStart?: (pod: Pod) => unknown;
}

function q(a: string): string {
  return `'${a.replace(/'/g, `'\\''`)}'`;
}

/** A shell line that runs cmd in the pod: its cgroup, its netns, its CPUs, optionally as another uid. */
function podScript(pod: Pod, cmd: string, args: string[], uid?: number): string {
  const priv = uid !== undefined ? `setpriv --reuid=${uid} --regid=${uid} --clear-groups ` : '';
  const cpus = pod.cpus !== null ? `taskset -c ${q(pod.cpus)} ` : '';
  return `echo $$ > ${q(`${pod.cgroup}/cgroup.procs`)} && exec ${cpus}ip netns exec ${q(pod.netns)} ${priv}${[cmd, ...args].map(q).join(' ')}`;
}

async function must(cmd: string, args: string[], what = `${cmd} ${args.join(' ')}`): Promise<RunResult> {
  const r = await run(cmd, args, { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

export interface TestbedOptions {
  /** dual-stack pods: an IPv6 address each (fd00:6b62:7066:XXXX::/64), app and sidecar on IPv6 too */
  ipv6?: boolean;
  /** with ipv6: IPv6-only pods (no IPv4 address on eth0; `pod.ip` is only a name then) */
  ipv6Only?: boolean;
}

const SIDECAR6 = fileURLToPath(new URL('./sidecar6.js', import.meta.url));

export class Testbed {
  readonly pods: Pod[] = [];
  readonly parentCgroup: string;
  readonly nodeNs: string;
  readonly subnet: string;
  /** the IPv6 /64 (without the trailing ::/64) on a dual-stack test bed */
  readonly subnet6: string | null;
  readonly dir: string;
  readonly ipv6Only: boolean;
  #destroyed = false;

  private constructor(
    readonly prefix: string,
    opts: TestbedOptions,
  ) {
    this.parentCgroup = `${CGROUP2_ROOT}/${uniqueName(`${prefix}-node`)}`;
    this.nodeNs = uniqueName(`${prefix}-node`);
    this.subnet = `10.${randomInt(200, 251)}.${randomInt(0, 256)}`;
    this.subnet6 = opts.ipv6 || opts.ipv6Only ? `fd00:6b62:7066:${randomInt(1, 0xffff).toString(16)}` : null;
    this.ipv6Only = !!opts.ipv6Only;
    this.dir = mkdtempSync(join(tmpdir(), 'kbpf-mesh-'));
    chmodSync(this.dir, 0o755); // the sidecar (another uid) reads its config here
  }

  /** An empty node (bridge namespace + parent cgroup); destroyed at the test's cleanup. */
  static async create(t: Cleanup, prefix = 'kbpfmesh', opts: TestbedOptions = {}): Promise<Testbed> {
    const tb = new Testbed(prefix, opts);
    t.after(() => tb.destroy());
    mkdirSync(tb.parentCgroup);
    await must('ip', ['netns', 'add', tb.nodeNs]);
    await must('ip', ['-n', tb.nodeNs, 'link', 'set', 'lo', 'up']);
    await must('ip', ['-n', tb.nodeNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', tb.nodeNs, 'link', 'set', 'br0', 'up']);
    return tb;
  }

  /** A pod with its app (and sidecar unless opts.sidecar is false), answering once this returns. */
  async addPod(opts: PodOptions = {}): Promise<Pod> {
    const i = this.pods.length;
    const mode = opts.mode ?? 'istio';
    const name = `pod${i}`;
    const netns = uniqueName(`${this.prefix}-${name}`);
    const cgroup = join(this.parentCgroup, opts.cgroupName ?? name);
    const ip6 = this.subnet6 ? `${this.subnet6}::${(10 + i).toString(16)}` : undefined;
    const pod: Pod = {
      name,
      netns,
      cgroup,
      ip: `${this.subnet}.${10 + i}`,
      ip6,
      mode,
      sidecar: SIDECARS[mode],
      dir: join(this.dir, name),
      procs: [],
      sidecarProc: null,
      sidecar6Proc: null,
      sidecarThreads: opts.threads ?? 1,
      sidecarProtocol: opts.sidecarProtocol ?? 'http',
      cpus: opts.cpus ?? null,
      iptables: false,
      ipv6Only: this.ipv6Only,
    };
    this.pods.push(pod);
    mkdirSync(pod.dir);
    mkdirSync(cgroup);
    await must('ip', ['netns', 'add', netns]);
    await must('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const v6 = ip6 ? 0 : 1;
    await must('ip', [
      'netns',
      'exec',
      netns,
      'sh',
      '-c',
      `echo ${v6} > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo ${v6} > /proc/sys/net/ipv6/conf/default/disable_ipv6; true`,
    ]);
    const host = `v${i}`;
    await must('ip', ['-n', this.nodeNs, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await must('ip', ['-n', this.nodeNs, 'link', 'set', host, 'master', 'br0', 'up']);
    if (!pod.ipv6Only) await must('ip', ['-n', netns, 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0']);
    // nodad: the address is usable at once (no duplicate address detection wait)
    if (ip6) await must('ip', ['-n', netns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
    await must('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await opts.beforeStart?.(pod);
    this.startApp(pod);
    if (opts.sidecar !== false) this.startSidecar(pod);
    const ports = [
      APP_PORT,
      APP_PORT_2,
      ...(opts.sidecar !== false ? [pod.sidecar.outbound, pod.sidecar.inbound] : []),
    ];
    await this.waitListening(pod, ports);
    if (ip6) await this.waitListening(pod, ports, 10_000, 6);
    return pod;
  }

  /**
   * Moves everything running in the pod (every thread of every process in its cgroup) to these
   * CPUs, or back to all of them (null); what starts in the pod later runs there too.
   */
  async setPodCpus(pod: Pod, cpus: string | null): Promise<void> {
    pod.cpus = cpus;
    const list = cpus ?? `0-${availableParallelism() - 1}`;
    const pids = readFileSync(join(pod.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const pid of pids) {
      const r = await run('taskset', ['-a', '-p', '-c', list, pid], { timeoutMs: 15_000 });
      // a process may exit meanwhile (ESRCH): nothing to move
      if (r.code !== 0 && existsSync(`/proc/${pid}`))
        throw new Error(`${pod.name}: taskset -p ${list} ${pid}: ${r.stderr.trim()}`);
    }
  }

  /** The IP the next addPod() gets. */
  nextPodIp(): string {
    return `${this.subnet}.${10 + this.pods.length}`;
  }

  /** Starts a long-running process inside the pod (netns + cgroup), optionally as another uid. */
  spawnInPod(pod: Pod, cmd: string, args: string[], opts: { uid?: number; log?: string } = {}): ChildProcess {
    // join the cgroup first: `ip netns exec` remounts /sys, which hides the cgroup2 mount
    const script = podScript(pod, cmd, args, opts.uid);
    const out = opts.log ? (['ignore', 'pipe', 'pipe'] as const) : (['ignore', 'ignore', 'pipe'] as const);
    const child = spawn('sh', ['-c', script], { stdio: [...out] });
    let err = '';
    child.stderr?.on('data', (d) => {
      if (err.length < 8192) err += d;
    });
    if (opts.log) {
      child.stdout?.on('data', (d) => writeFileSync(opts.log!, d, { flag: 'a' }));
      child.stderr?.on('data', (d) => writeFileSync(opts.log!, d, { flag: 'a' }));
    }
    child.on('exit', (code, sig) => {
      if (!this.#destroyed && code !== 0 && sig !== 'SIGKILL' && sig !== 'SIGTERM')
        process.stderr.write(`testbed: ${cmd} in ${pod.name} exited (${code ?? sig}): ${err.trim()}\n`);
    });
    pod.procs.push(child);
    return child;
  }

  /** Runs a command to its end inside the pod (netns + cgroup). */
  execInPod(
    pod: Pod,
    cmd: string,
    args: string[],
    opts: { uid?: number; timeoutMs?: number; input?: string } = {},
  ): Promise<RunResult> {
    const script = podScript(pod, cmd, args, opts.uid);
    return run('sh', ['-c', script], { timeoutMs: opts.timeoutMs ?? 15_000, input: opts.input });
  }

  /**
   * HTTP GET from the pod's app side (uid 0, inside its cgroup): status, body, and the test bed
   * app's x-peer header (the address that connected to the app: 127.0.0.6 behind a sidecar).
   */
  async get(
    from: Pod,
    url: string,
    timeoutS = 5,
  ): Promise<{ ok: boolean; code: number; body: string; peer: string; err: string }> {
    const r = await this.execInPod(
      from,
      'curl',
      ['-sS', '-g', '--max-time', String(timeoutS), '-o', '-', '-w', '\n%header{x-peer}\n%{http_code}', url],
      { timeoutMs: (timeoutS + 5) * 1000 },
    );
    const lines = r.stdout.split('\n');
    const code = Number(lines.pop());
    const peer = lines.pop() ?? '';
    return { ok: r.code === 0 && code === 200, code, body: lines.join('\n'), peer, err: r.stderr.trim() };
  }

  private startApp(pod: Pod): void {
    const cfg = join(pod.dir, 'app.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 4000',
        '  nbthread 1',
        'defaults',
        '  mode http',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        'frontend app',
        `  bind 0.0.0.0:${APP_PORT}`,
        `  bind 0.0.0.0:${APP_PORT_2}`,
        ...(pod.ip6 ? [`  bind [::]:${APP_PORT} v6only`, `  bind [::]:${APP_PORT_2} v6only`] : []),
        // the body says which sidecars (L7) saw the request, the x-peer header who connected to the app
        `  http-request return status 200 content-type text/plain lf-string "app=${pod.name} port=%[dst_port] outbound=%[req.hdr(x-mesh-outbound)] inbound=%[req.hdr(x-mesh-inbound)]\\n" hdr x-peer %[src]`,
        '',
      ].join('\n'),
    );
    this.spawnInPod(pod, 'haproxy', ['-db', '-f', cfg]);
  }

  /**
   * Restarts the sidecar: no connection of an earlier phase (pooled upstream connections
   * included) outlives it. Returns once it listens again.
   */
  async restartSidecar(pod: Pod): Promise<void> {
    for (const old of [pod.sidecarProc, pod.sidecar6Proc]) {
      if (old && old.exitCode === null && old.signalCode === null) {
        const gone = new Promise((res) => old.once('exit', res));
        old.kill('SIGKILL');
        await gone;
      }
    }
    this.startSidecar(pod);
    await this.waitListening(pod, [pod.sidecar.outbound, pod.sidecar.inbound]);
    if (pod.ip6) await this.waitListening(pod, [pod.sidecar.outbound, pod.sidecar.inbound], 10_000, 6);
  }

  private startSidecar(pod: Pod): void {
    const threads = pod.sidecarThreads;
    const s = pod.sidecar;
    const l7 = pod.sidecarProtocol === 'http';
    const cfg = join(pod.dir, 'sidecar.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 4000',
        `  nbthread ${threads}`,
        'defaults',
        `  mode ${pod.sidecarProtocol}`,
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        // outbound: the app's connections, sent on to where the app wanted to go
        'frontend outbound',
        `  bind ${s.outboundBind}:${s.outbound}`,
        ...(l7 ? ['  http-request set-header x-mesh-outbound %[dst]:%[dst_port]'] : []),
        '  default_backend original_dst',
        'backend original_dst',
        '  option transparent',
        // inbound: peers' connections to this pod, handed to the local app (istio's 127.0.0.6)
        'frontend inbound',
        `  bind 0.0.0.0:${s.inbound}`,
        ...(l7 ? ['  http-request set-header x-mesh-inbound %[dst]:%[dst_port]'] : []),
        '  default_backend local_app',
        'backend local_app',
        '  option transparent',
        '  source 127.0.0.6',
        '',
      ].join('\n'),
    );
    pod.sidecarProc = this.spawnInPod(pod, 'haproxy', ['-db', '-f', cfg], { uid: s.uid });
    // the IPv6 listeners: HAProxy would answer IPv6 connections with its own address (see sidecar6.ts)
    const outbound6 = s.outboundBind === '127.0.0.1' ? '::1' : '::'; // linkerd binds loopback (bind4 / bind6 rewrite it)
    if (pod.ip6)
      pod.sidecar6Proc = this.spawnInPod(
        pod,
        process.execPath,
        [SIDECAR6, String(s.outbound), String(s.inbound), outbound6],
        { uid: s.uid },
      );
  }

  /** Waits until each port has a listener in the pod's namespace (of either family, or only IPv4 / IPv6). */
  async waitListening(pod: Pod, ports: number[], timeoutMs = 10_000, family?: 4 | 6): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await run('ip', ['netns', 'exec', pod.netns, 'ss', family ? `-Htln${family}` : '-Htln']);
      const listening = new Set([...r.stdout.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
      const missing = ports.filter((p) => !listening.has(p));
      if (missing.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(`${pod.name}: nothing listens on ${missing.join(', ')} after ${timeoutMs} ms`);
      await sleep(30);
    }
  }

  /** istio-init's nat rules in the pod's namespace (REDIRECT with owner-uid exclusion). */
  async enableIptables(pod: Pod): Promise<void> {
    const s = pod.sidecar;
    const rules = [
      '*nat',
      ':ISTIO_INBOUND - [0:0]',
      ':ISTIO_IN_REDIRECT - [0:0]',
      ':ISTIO_OUTPUT - [0:0]',
      ':ISTIO_REDIRECT - [0:0]',
      '-A PREROUTING -p tcp -j ISTIO_INBOUND',
      '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN',
      '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
      `-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${s.inbound}`,
      `-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports ${s.outbound}`,
      '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
      `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner ${s.uid} -j ISTIO_IN_REDIRECT`,
      `-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner ${s.uid} -j RETURN`,
      `-A ISTIO_OUTPUT -m owner --uid-owner ${s.uid} -j RETURN`,
      '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      'COMMIT',
      '',
    ].join('\n');
    const r = await run('ip', ['netns', 'exec', pod.netns, 'iptables-restore'], { input: rules });
    if (r.code !== 0) throw new Error(`iptables-restore in ${pod.name} failed: ${r.stderr.trim()}`);
    pod.iptables = true;
  }

  async disableIptables(pod: Pod): Promise<void> {
    await must('ip', ['netns', 'exec', pod.netns, 'iptables', '-t', 'nat', '-F']);
    await must('ip', ['netns', 'exec', pod.netns, 'iptables', '-t', 'nat', '-X']);
    pod.iptables = false;
  }

  /**
   * Forgets the pod's connection tracking entries (Debian package conntrack). Between benchmark
   * phases: once nat rules were in a namespace, conntrack keeps tracking there, and entries of
   * an earlier phase's short connections must not decide how a later phase's reused ports go.
   */
  async flushConntrack(pod: Pod): Promise<void> {
    const r = await run('ip', ['netns', 'exec', pod.netns, 'conntrack', '-F'], { timeoutMs: 15_000 });
    if (r.code !== 0 && !/0 flow entries/.test(r.stderr))
      throw new Error(`conntrack -F in ${pod.name} failed: ${r.stderr.trim()}`);
  }

  /** nat rules in the pod's namespace (iptables -t nat -S). */
  async natRules(pod: Pod): Promise<string[]> {
    const r = await run('ip', ['netns', 'exec', pod.netns, 'iptables', '-t', 'nat', '-S']);
    return r.stdout.split('\n').filter((l) => l.startsWith('-A'));
  }

  /** Removes everything: processes, namespaces, cgroups, files. Safe to call twice. */
  async destroy(): Promise<void> {
    this.#destroyed = true;
    for (const pod of this.pods) for (const p of pod.procs) p.kill('SIGKILL');
    const cgroups = [...this.pods.map((p) => p.cgroup), this.parentCgroup];
    for (const cg of cgroups) {
      if (existsSync(`${cg}/cgroup.kill`)) {
        try {
          writeFileSync(`${cg}/cgroup.kill`, '1');
        } catch {
          /* gone */
        }
      }
    }
    for (const pod of this.pods)
      if (existsSync(`/run/netns/${pod.netns}`)) await run('ip', ['netns', 'del', pod.netns]);
    if (existsSync(`/run/netns/${this.nodeNs}`)) await run('ip', ['netns', 'del', this.nodeNs]);
    for (const cg of cgroups) await removeDir(cg);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function removeDir(cg: string): Promise<void> {
  for (let i = 0; i < 100 && existsSync(cg); i++) {
    try {
      rmdirSync(cg);
      return;
    } catch {
      try {
        for (const pid of readFileSync(`${cg}/cgroup.procs`, 'utf8').split('\n').filter(Boolean))
          process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
      await sleep(30);
    }
  }
  if (existsSync(cg)) rmdirSync(cg);
}
