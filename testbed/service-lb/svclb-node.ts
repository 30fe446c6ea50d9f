// service-lb on a test bed node (testbed/mesh/testbed.ts pods), run by a real (throw-away)
// agent: build apps/service-lb, run it with --cgroup of the pods' parent cgroup, open its pinned
// maps to apply services; run the test bed client (client.ts) in a pod.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ApplyOptions, type ApplyResult, ServiceMaps } from '../../apps/service-lb/service-maps.js';
import { type NodeLocality, parseServices } from '../../apps/service-lb/services.js';
import { instanceKernelIds, type TestAgent, testAgent } from '../agent.js';
import type { Cleanup, Pod, Testbed } from '../mesh/testbed.js';
import type { MadeIds } from '../netns.js';

export const SVCLB_APP_DIR = fileURLToPath(new URL('../../../apps/service-lb/', import.meta.url));
export const CLIENT = fileURLToPath(new URL('./client.js', import.meta.url));
export const WAYPOINT = fileURLToPath(new URL('./waypoint.js', import.meta.url));

export interface ServiceLbInstance {
  ta: TestAgent;
  name: string;
  ref: string;
  maps: ServiceMaps;
  /** applies services given as the YAML document's object (services:, node:, pods:) */
  apply(doc: Record<string, unknown>, opts?: ApplyOptions): ApplyResult;
  remove(doc: Record<string, unknown>, opts?: ApplyOptions): ApplyResult;
  ids(): MadeIds;
  /** closes our map handles and removes the instance through the agent */
  stop(): Promise<void>;
}

export async function runServiceLb(
  t: Cleanup,
  tb: Testbed,
  opts: { name?: string; agent?: { ta: TestAgent; ref?: string }; node?: NodeLocality } = {},
): Promise<ServiceLbInstance> {
  const name = opts.name ?? 'svclb';
  const ta = opts.agent?.ta ?? (await testAgent(t));
  const ref = opts.agent?.ref ?? (await ta.build(SVCLB_APP_DIR));
  await ta.agent.run({ image: ref, name, attach: { cgroup: tb.parentCgroup } });
  let maps: ServiceMaps | null = ServiceMaps.ofInstance(ta.paths.bpffsDir, name);
  t.after(() => maps?.close());
  const inst: ServiceLbInstance = {
    ta,
    name,
    ref,
    get maps() {
      if (!maps) throw new Error('service-lb instance removed');
      return maps;
    },
    apply(doc, o) {
      const { services, node } = parseServices(doc, 'test');
      return inst.maps.apply(services, { ...opts.node, ...node }, o);
    },
    remove(doc, o) {
      return inst.maps.remove(parseServices(doc, 'test').services, o);
    },
    ids: () => instanceKernelIds(ta.agent, name),
    async stop() {
      maps?.close();
      maps = null;
      await ta.agent.remove(name, { force: true });
    },
  };
  return inst;
}

export interface ClientLine {
  app?: string;
  peer?: string;
  peerPort?: number;
  from?: string;
  fromPort?: number;
  err?: string;
}

/** Runs the test bed client in a pod (see client.ts) and answers its JSON lines. */
export async function client(
  tb: Testbed,
  pod: Pod,
  mode: 'tcp' | 'udp' | 'udp-connected',
  host: string,
  port: number,
  count = 1,
): Promise<ClientLine[]> {
  const r = await tb.execInPod(pod, process.execPath, [CLIENT, mode, host, String(port), String(count)], {
    timeoutMs: 20_000 + count * 3000,
  });
  const lines = r.stdout.split('\n').filter(Boolean);
  if (lines.length === 0)
    throw new Error(`client ${mode} ${host}:${port} printed nothing (${r.code}): ${r.stderr.trim()}`);
  return lines.map((l) => JSON.parse(l) as ClientLine);
}

/** Starts COUNT keep-alive connections from the pod that stay open until the process is killed. */
export async function holdConnections(
  tb: Testbed,
  pod: Pod,
  host: string,
  port: number,
  count: number,
): Promise<{ lines: ClientLine[]; close(): Promise<void> }> {
  const log = join(tb.dir, `hold-${randomBytes(4).toString('hex')}.log`);
  const child = tb.spawnInPod(pod, process.execPath, [CLIENT, 'hold', host, String(port), String(count)], { log });
  const deadline = Date.now() + 10_000 + count * 3000;
  for (;;) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (text.includes('"held"')) {
      const lines = text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as ClientLine);
      return {
        lines,
        async close() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const gone = new Promise((res) => child.once('exit', res));
          child.kill('SIGKILL');
          await gone;
        },
      };
    }
    if (Date.now() > deadline) throw new Error(`hold ${host}:${port}: no "held" after ${count} connections: ${text}`);
    await sleep(20);
  }
}

/** A UDP server answering "app=<pod name>" on PORT in the pod (both families). */
export function serveUdp(tb: Testbed, pod: Pod, port: number): void {
  tb.spawnInPod(pod, process.execPath, [CLIENT, 'serve-udp', String(port), pod.name]);
}

export interface WaypointLine {
  tlv?: string;
  dst?: string;
  dstPort?: number;
  err?: string;
}

/** The test bed's waypoint proxy (waypoint.ts) on PORT in the pod; lines(): what it recorded per connection. */
export async function startWaypoint(tb: Testbed, pod: Pod, port: number): Promise<{ lines(): WaypointLine[] }> {
  const log = join(tb.dir, `waypoint-${pod.name}.log`);
  tb.spawnInPod(pod, process.execPath, [WAYPOINT, String(port)], { log });
  const read = () =>
    (existsSync(log) ? readFileSync(log, 'utf8') : '')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as WaypointLine & { listening?: string });
  const deadline = Date.now() + 10_000;
  while (read().filter((l) => l.listening).length < 2) {
    if (Date.now() > deadline) throw new Error(`waypoint in ${pod.name}: not listening: ${read()}`);
    await sleep(20);
  }
  return { lines: () => read().filter((l) => !('listening' in l)) };
}
