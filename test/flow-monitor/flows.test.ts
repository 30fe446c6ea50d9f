// flow-monitor on a real kernel: pods in network namespaces and cgroups (the mesh test bed,
// without sidecars), flows read through the collector from the agent's log of the instance.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { FlowState } from '../../apps/flow-monitor/collector.js';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import { type FlowStats, flowStatsOf } from '../../apps/flow-monitor/stats.js';
import type { PodIdentity } from '../../apps/shared/pods.js';
import { startApiServer } from '../../src/agent/api-server.js';
import { IDLE_UNMAP_MS } from '../../src/agent/event-pump.js';
import { runCli } from '../../src/cli/program.js';
import { type TestAgent, testAgent } from '../../testbed/agent.js';
import { FLOW_APP_DIR, type FlowMonitor, runFlowMonitor } from '../../testbed/flows.js';
import { tempDir } from '../../testbed/kernel.js';
import { runMesh } from '../../testbed/mesh/mesh-node.js';
import { APP_PORT, type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { madeIds, run, stillListed } from '../../testbed/netns.js';

const PORT = 9000;
// server: reads until the client half-closes, answers with REPLY bytes, closes
const SERVER = `
const net = require('node:net');
const [port, reply] = process.argv.slice(1).map(Number);
net.createServer((s) => { let n = 0; s.on('data', (d) => (n += d.length)); s.on('end', () => s.end(Buffer.alloc(reply, 0x61))); s.on('error', () => {}); })
  .listen(port, () => console.log('listening'));
`;
// client: connects, sends SEND bytes, half-closes, counts the answer; prints "localPort received"
const CLIENT = `
const net = require('node:net');
const [host, port, send] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const c = net.connect(port, host, () => c.end(Buffer.alloc(send, 0x62)));
let n = 0; c.on('data', (d) => (n += d.length)); c.on('close', () => console.log(c.localPort ?? lp, n));
let lp; c.on('connect', () => (lp = c.localPort));
`;

function identity(p: Pod, labels: Record<string, string>): PodIdentity {
  return { namespace: 'shop', name: `${p.name}-7d4b9c6f5-x2x9k`, labels, ip: p.ip, ip6: p.ip6, cgroup: p.cgroup };
}

/** Until a UDP socket is bound to `port` in the pod. */
async function waitUdpListening(pod: Pod, port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ss = await run('ip', ['netns', 'exec', pod.netns, 'ss', '-Huln']);
    if (new RegExp(`:${port}\\s`).test(ss.stdout)) return;
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function startServer(tb: Testbed, pod: Pod, reply: number): Promise<void> {
  tb.spawnInPod(pod, 'node', ['-e', SERVER, String(PORT), String(reply)]);
  await tb.waitListening(pod, [PORT]);
}

test('one connection between two pods: one flow with its tuple, identities, bytes both ways, RTT and close state', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup, {
    pods: [identity(a, { app: 'client' }), identity(b, { app: 'server' })],
  });
  const SEND = 300_000;
  const REPLY = 120_000;
  await startServer(tb, b, REPLY);
  const r = await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), String(SEND)]);
  assert.equal(r.code, 0, r.stderr);
  const [localPort, received] = r.stdout.trim().split(' ').map(Number);
  assert.equal(received, REPLY);

  const isOurs = (f: Flow): boolean => f.l4.TCP?.destination_port === PORT && f.IP.source === a.ip;
  const closed = await fm.waitFor((f) => isOurs(f) && f.state === 'CLOSED');
  const reports = fm.source.recent(100_000).filter(isOurs);
  assert.equal(new Set(reports.map((f) => f.flow_id)).size, 1, 'one flow for the connection (not one per end)');
  assert.deepEqual(closed.IP, { source: a.ip, destination: b.ip, ipVersion: 'IPv4' });
  assert.equal(closed.l4.TCP?.source_port, localPort);
  assert.equal(closed.traffic_direction, 'EGRESS');
  assert.equal(closed.verdict, 'FORWARDED');
  assert.equal(closed.source.pod_name, `${a.name}-7d4b9c6f5-x2x9k`);
  assert.equal(closed.source.workload, a.name);
  assert.deepEqual(closed.source.labels, ['app=client']);
  assert.equal(closed.destination.namespace, 'shop');
  assert.deepEqual(closed.destination.labels, ['app=server']);
  const within = (got: number, want: number): boolean => Math.abs(got - want) <= want * 0.03;
  assert.ok(within(closed.traffic.bytes_sent, SEND), `bytes sent ${closed.traffic.bytes_sent} vs ${SEND}`);
  assert.ok(within(closed.traffic.bytes_received, REPLY), `bytes received ${closed.traffic.bytes_received}`);
  assert.ok(closed.traffic.packets_sent > 0 && closed.traffic.packets_received > 0);
  assert.ok((closed.traffic.ip_bytes_sent ?? 0) >= SEND);
  assert.ok(closed.rtt && closed.rtt.srtt_us > 0 && closed.rtt.min_rtt_us > 0, JSON.stringify(closed.rtt));
  assert.equal(closed.tcp_state, 'CLOSE');
  assert.ok(closed.l4.TCP?.flags?.SYN && closed.l4.TCP.flags.FIN && closed.l4.TCP.flags.ACK);
  assert.equal(closed.retransmits, 0);
  assert.ok(closed.duration_ms > 0);
});

// client: sends three chunks of CHUNK bytes 300 ms apart, then half-closes; prints its port
const SLOW_CLIENT = `
const net = require('node:net');
const [host, port, chunk] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const c = net.connect(port, host, () => {
  c.write(Buffer.alloc(chunk, 0x62));
  setTimeout(() => c.write(Buffer.alloc(chunk, 0x63)), 300);
  setTimeout(() => c.end(Buffer.alloc(chunk, 0x64)), 600);
});
c.on('data', () => {}); c.on('close', () => console.log(lp));
let lp; c.on('connect', () => (lp = c.localPort));
`;

test('an open TCP flow is reported while open (its bytes so far, at most every report_interval_ms), then at close', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup, { config: { report_interval_ms: 100 } });
  await startServer(tb, b, 1000);
  const CHUNK = 40_000; // more than 16 KiB: each send call crosses the check's boundary
  const r = await tb.execInPod(a, 'node', ['-e', SLOW_CLIENT, b.ip, String(PORT), String(CHUNK)]);
  assert.equal(r.code, 0, r.stderr);
  const port = Number(r.stdout.trim());
  const ours = (f: Flow) => f.l4.TCP?.source_port === port && f.l4.TCP.destination_port === PORT;
  const closed = await fm.waitFor((f) => ours(f) && f.state === 'CLOSED');
  assert.ok(Math.abs(closed.traffic.bytes_sent - 3 * CHUNK) <= 3 * CHUNK * 0.03, `bytes ${closed.traffic.bytes_sent}`);
  const open = fm.source.recent(100_000).filter((f) => ours(f) && f.state === 'OPEN');
  // the first chunk goes out within the interval of the flow's start; the next two are 300 ms later each
  assert.ok(open.length >= 1 && open.length <= 2, `open reports: ${open.length}`);
  let before = 0;
  for (const f of open) {
    assert.equal(f.flow_id, closed.flow_id, 'the same flow');
    assert.equal(f.tcp_state, 'ESTABLISHED');
    assert.ok(
      f.traffic.bytes_sent >= before && f.traffic.bytes_sent <= 3 * CHUNK,
      `bytes so far ${f.traffic.bytes_sent}`,
    );
    before = f.traffic.bytes_sent;
  }
  // the first is the second chunk's (the third had not been sent yet)
  assert.ok(
    open[0]!.traffic.bytes_sent >= CHUNK && open[0]!.traffic.bytes_sent <= 2 * CHUNK,
    `${open[0]!.traffic.bytes_sent}`,
  );
});

test('a report after the ring went quiet wakes the agent, which had unmapped it; reports close together do not wake it each', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup);
  await startServer(tb, b, 1000);
  const connect = async (): Promise<number> => {
    const r = await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), '1000']);
    assert.equal(r.code, 0, r.stderr);
    return Number(r.stdout.trim().split(' ')[0]);
  };
  const closedFrom = (port: number) => (f: Flow) => f.l4.TCP?.source_port === port && f.state === 'CLOSED';
  await fm.waitFor(closedFrom(await connect()));
  // quiet for longer than the agent keeps an idle ring mapped: it watches the ring's fd only
  await new Promise((r) => setTimeout(r, IDLE_UNMAP_MS * 1.5 + 500));
  const second = await connect();
  const t0 = Date.now();
  await fm.waitFor(closedFrom(second), 1500);
  t.diagnostic(`the report after ${IDLE_UNMAP_MS * 1.5 + 500} ms of quiet read in ${Date.now() - t0} ms`);
  // 20 connections closed at once: their reports, within 250 ms of each other, wake the agent at
  // most once per CPU (the two above woke it once each)
  const many = await tb.execInPod(a, 'node', ['-e', MANY, b.ip, String(PORT), '20']);
  assert.equal(many.stdout.trim(), 'done 20', many.stderr);
  const stats = await waitStats(fm.ta.agent, fm.name, (s) => s.closed >= 22, 3000);
  assert.equal(stats.reports, 22, JSON.stringify(stats));
  assert.ok(stats.wakeups >= 2 && stats.wakeups <= 2 + cpus().length, `wake-ups ${stats.wakeups} for 22 reports`);
  const closedHere = () => fm.source.recent(100_000).filter((f) => f.state === 'CLOSED' && f.IP.source === a.ip);
  for (const end = Date.now() + 2000; closedHere().length < 22 && Date.now() < end; )
    await new Promise((r) => setTimeout(r, 20));
  assert.equal(closedHere().length, 22, 'every report read');
});

test('a connection from outside the cgroup: the accepting end reports it (INGRESS), from its first segment sent', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup);
  const SEND = 50_000;
  const REPLY = 20_000;
  await startServer(tb, b, REPLY);
  // the client in A's network namespace but in this process's cgroup, not below the pods' parent
  const r = await run('ip', ['netns', 'exec', a.netns, 'node', '-e', CLIENT, b.ip, String(PORT), String(SEND)]);
  assert.equal(r.code, 0, r.stderr);
  const [localPort, received] = r.stdout.trim().split(' ').map(Number);
  assert.equal(received, REPLY);

  const isOurs = (f: Flow): boolean => f.l4.TCP?.source_port === localPort && f.IP.source === a.ip;
  const closed = await fm.waitFor((f) => isOurs(f) && f.state === 'CLOSED');
  assert.equal(closed.traffic_direction, 'INGRESS');
  assert.deepEqual(closed.IP, { source: a.ip, destination: b.ip, ipVersion: 'IPv4' });
  assert.equal(closed.l4.TCP?.destination_port, PORT);
  assert.equal(closed.tcp_state, 'CLOSE');
  const within = (got: number, want: number): boolean => Math.abs(got - want) <= want * 0.03;
  // counted at the accepting end, said from the source's side (the client's)
  assert.ok(within(closed.traffic.bytes_sent, SEND), `bytes sent ${closed.traffic.bytes_sent}`);
  assert.ok(within(closed.traffic.bytes_received, REPLY), `bytes received ${closed.traffic.bytes_received}`);
  assert.ok(closed.l4.TCP?.flags?.SYN && closed.l4.TCP.flags.FIN, JSON.stringify(closed.l4.TCP?.flags));
  const stats = await waitStats(fm.ta.agent, fm.name, (s) => s.closed >= 1, 3000);
  assert.equal(stats.local_peer, 0, 'no end of it below the cgroup but the accepting one');
  assert.equal(stats.created, 1, JSON.stringify(stats));
});

test('a retransmit forced with netem loss is counted on the flow', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup);
  await startServer(tb, b, 1000);
  // netem where the kernel has it (this one is built without CONFIG_NET_SCH_NETEM); else nftables
  // rules: B's input drops every fourth data segment, the first among them (A retransmits them),
  // and A's output drops some too (the kernel's drops, seen by skb:kfree_skb on A's socket with their
  // reason; A sends those again as new, not as retransmits). Every fourth, not one in four at random:
  // GSO sends 400 kB in a handful of segments, and random drops missed them all about one run in five.
  const netem = await run('ip', [
    'netns',
    'exec',
    a.netns,
    'tc',
    'qdisc',
    'add',
    'dev',
    'eth0',
    'root',
    'netem',
    'loss',
    '25%',
  ]);
  if (netem.code !== 0) {
    const rule = (ns: string, hook: string, mod: number): Promise<{ code: number | null; stderr: string }> =>
      run('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
        input: `table inet loss {\n chain c {\n  type filter hook ${hook} priority 0;\n  tcp dport ${PORT} tcp flags & (syn|fin) == 0 numgen inc mod ${mod} == 0 drop\n }\n}\n`,
      });
    const rb = await rule(b.netns, 'input', 4);
    const ra = await rule(a.netns, 'output', 4);
    assert.ok(rb.code === 0 && ra.code === 0, `netem: ${netem.stderr}; nft: ${rb.stderr} ${ra.stderr}`);
  }
  const r = await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), String(400_000)], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  // the connecting end's flow (EGRESS): the sender whose segments were dropped; should the accepting
  // end also be reported (its local_conns slot taken by another connection), its flow is INGRESS
  const closed = await fm.waitFor(
    (f) => f.l4.TCP?.destination_port === PORT && f.state === 'CLOSED' && f.traffic_direction === 'EGRESS',
    10_000,
  );
  assert.ok(closed.retransmits > 0, `retransmits: ${closed.retransmits} ${JSON.stringify(closed)}`);
  assert.equal(closed.verdict, 'FORWARDED', 'the connection got through');
  assert.ok(Math.abs(closed.traffic.bytes_sent - 400_000) <= 12_000, `bytes ${closed.traffic.bytes_sent}`);
  if (netem.code !== 0) {
    // the rule's drops are the kernel's, seen by skb:kfree_skb with their reason
    assert.ok(closed.drops && closed.drops.count > 0, JSON.stringify(closed.drops));
    assert.equal(closed.drops?.last_reason, 'NETFILTER_DROP');
  }
});

const SVC_FAKE_DIR = fileURLToPath(new URL('../../../test/fixtures/flow-svc-lb/', import.meta.url));

/** An IPv4 address as the u32 a BPF program reads from memory in network order (little-endian host). */
function netU32(ip: string): number {
  const [x, y, z, w] = ip.split('.').map(Number) as [number, number, number, number];
  return ((w << 24) | (z << 16) | (y << 8) | x) >>> 0;
}

test('a connection to a service address shows the VIP and the backend chosen (svc_origin shared with the LB)', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const ta = await testAgent(t);
  const vip = `${tb.subnet}.200`;
  const lbRef = await ta.build(SVC_FAKE_DIR);
  await ta.agent.run({
    image: lbRef,
    name: 'svclb',
    config: { vip: netU32(vip), vip_port: 80, backend: netU32(b.ip), backend_port: PORT, service_id: 7 },
    attach: { cgroup: tb.parentCgroup },
  });
  const fm = await runFlowMonitor(t, tb.parentCgroup, { agent: { ta }, shareMaps: { svc_origin: 'svclb' } });
  fm.collector.opts.serviceName = (id) => (id === 7 ? 'shop/web' : undefined);
  await startServer(tb, b, 10);
  const r = await tb.execInPod(a, 'node', ['-e', CLIENT, vip, '80', '1000']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.trim(), / 10$/);
  const f = await fm.waitFor((x) => x.state === 'CLOSED' && x.l4.TCP?.destination_port === PORT);
  assert.equal(f.IP.destination, b.ip, 'the socket went to the backend');
  assert.deepEqual(f.service, {
    vip,
    vip_port: 80,
    backend: b.ip,
    backend_port: PORT,
    lb_policy: 'round-robin',
    lb_level: 0,
    affinity_hit: false,
    service_id: 7,
    name: 'shop/web',
  });
  assert.deepEqual(f.destination_service, { name: 'web', namespace: 'shop' });
  // a connection straight to the backend has no service fields
  await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), '10']);
  const direct = await fm.waitFor(
    (x) => x.state === 'CLOSED' && x.l4.TCP?.destination_port === PORT && x.flow_id !== f.flow_id,
  );
  assert.equal(direct.service, undefined);
});

test('a connection mesh-accel sends to a sidecar is REDIRECTED: where the app was connecting, the proxy port, the bytes sk_msg moved', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflm');
  const mesh = await runMesh(t, tb);
  // L4 sidecars (HAProxy in tcp mode): the client's bytes and its half-close go through unchanged
  const a = await tb.addPod({ sidecarProtocol: 'tcp', beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ sidecarProtocol: 'tcp', beforeStart: (p) => mesh.declare(p) });
  const fm = await runFlowMonitor(t, tb.parentCgroup, {
    agent: { ta: mesh.ta },
    pods: [identity(a, { app: 'front' }), identity(b, { app: 'cart' })],
    shareMaps: { orig_by_cookie: 'mesh', orig6_by_cookie: 'mesh' },
  });
  const SEND = 50_000;
  const REPLY = 7_000;
  await startServer(tb, b, REPLY);
  const before = mesh.maps.stats();
  const r = await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), String(SEND)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.trim(), new RegExp(` ${REPLY}$`));
  const s = mesh.maps.stats();
  assert.ok(
    s.msg_redirect - s.msg_redirect_peer > before.msg_redirect - before.msg_redirect_peer,
    'app<->sidecar bytes went through the sockhash',
  );
  const closed = async (pred: (f: Flow) => boolean, what: string): Promise<Flow> => {
    try {
      return await fm.waitFor((f) => f.state === 'CLOSED' && pred(f), 10_000);
    } catch (e) {
      const seen = fm.source
        .recent(100)
        .map((f) => `${f.IP.source} -> ${f.IP.destination}:${f.l4.TCP?.destination_port} ${f.verdict} ${f.proxy_port}`);
      throw new Error(`${what}: ${(e as Error).message}; seen: ${seen.join('; ')}`);
    }
  };
  // A's app -> A's sidecar (its outbound listener, on A's own address): shown going to B's app
  const app = await closed((f) => f.proxy_port === 15001, "the app's connection");
  assert.equal(app.verdict, 'REDIRECTED');
  assert.deepEqual(app.IP, { source: a.ip, destination: b.ip, ipVersion: 'IPv4' });
  assert.equal(app.l4.TCP?.destination_port, PORT);
  assert.equal(app.source.labels?.includes('app=front'), true);
  assert.equal(app.destination.labels?.includes('app=cart'), true, 'the pod the app connected to, not its sidecar');
  assert.equal(app.traffic_direction, 'EGRESS');
  // the bytes went socket to socket (no segments), counted per call: exactly what was sent
  assert.equal(app.traffic.bytes_sent, SEND);
  assert.equal(app.traffic.bytes_received, REPLY);
  // A's sidecar -> B: sent to B's inbound listener instead of B's app port
  const hop = await closed((f) => f.proxy_port === 15006, "the sidecars' connection");
  assert.equal(hop.verdict, 'REDIRECTED');
  assert.deepEqual(hop.IP, { source: a.ip, destination: b.ip, ipVersion: 'IPv4' });
  assert.equal(hop.l4.TCP?.destination_port, PORT);
  assert.equal(hop.traffic.bytes_sent, SEND);
  assert.equal(hop.traffic.bytes_received, REPLY);
  // B's sidecar -> B's app: not redirected
  const last = await closed((f) => f.IP.source === '127.0.0.6' && f.l4.TCP?.destination_port === PORT, 'the last hop');
  assert.equal(last.verdict, 'FORWARDED');
  assert.equal(last.proxy_port, undefined);
  assert.equal(last.traffic.bytes_sent, SEND);
});

test('over IPv6, a connection mesh-accel sends to a sidecar (connect6, orig6_by_cookie) is REDIRECTED to the IPv6 address the app asked for', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflm', { ipv6: true });
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  assert.ok(a.ip6 && b.ip6);
  const fm = await runFlowMonitor(t, tb.parentCgroup, {
    agent: { ta: mesh.ta },
    shareMaps: { orig_by_cookie: 'mesh', orig6_by_cookie: 'mesh' },
  });
  const r = await tb.get(a, `http://[${b.ip6}]:${APP_PORT}/`);
  assert.ok(r.ok, `request failed: ${r.code} ${r.err}`);
  const app = await fm.waitFor((f) => f.state === 'CLOSED' && f.proxy_port === 15001, 10_000);
  assert.equal(app.verdict, 'REDIRECTED');
  assert.deepEqual(app.IP, { source: a.ip6, destination: b.ip6, ipVersion: 'IPv6' });
  assert.equal(app.l4.TCP?.destination_port, APP_PORT);
  assert.ok(app.traffic.bytes_sent > 0 && app.traffic.bytes_received > r.body.length, JSON.stringify(app.traffic));
});

// UDP: a connected socket sends a datagram and gets one back; prints the local port
const UDP_PAIR = `
const dgram = require('node:dgram');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = dgram.createSocket('udp4');
s.connect(port, host, () => { s.send(Buffer.alloc(700, 1)); });
const timer = setTimeout(() => process.exit(1), 3000);
s.on('message', (m) => { console.log(s.address().port, m.length); clearTimeout(timer); s.close(); });
`;
const UDP_ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(Buffer.alloc(300, 2), r.port, r.address));
s.bind(Number(process.argv[1]), () => console.log('listening'));
`;

/** A UDP exchange (connected client, wildcard-bound echo server) and a ping, counted both ways. */
async function checkDatagrams(tb: Testbed, fm: FlowMonitor, a: Pod, b: Pod, ingressHook = false): Promise<void> {
  tb.spawnInPod(b, 'node', ['-e', UDP_ECHO, '9053']);
  await waitUdpListening(b, 9053);
  const r = await tb.execInPod(a, 'node', ['-e', UDP_PAIR, b.ip, '9053']);
  assert.equal(r.code, 0, r.stderr);
  const [lport] = r.stdout.trim().split(' ').map(Number);
  const udp = await fm.waitFor(
    (f) => f.l4.UDP?.destination_port === 9053 && f.IP.source === a.ip && f.state === 'CLOSED',
  );
  assert.equal(udp.l4.UDP?.source_port, lport);
  assert.equal(udp.traffic.bytes_sent, 700);
  assert.equal(udp.traffic.bytes_received, 300);
  assert.equal(udp.traffic.packets_sent, 1);
  assert.equal(udp.traffic.packets_received, 1);
  // the echo server (bound to the wildcard address, still open) received first: its flow counts
  // what it received; its own address, which its calls do not say, is its pod's
  const server = (fm.ta.agent.maps(fm.name, 'flows')[0]?.entries ?? [])
    .map(
      ([, v]) =>
        v as { lport: number; rport: number; laddr: number[]; bytes_rx: unknown; packets_rx: unknown; active: number },
    )
    .find((v) => v.lport === 9053 && v.rport === lport);
  assert.ok(server, "the server's flow");
  assert.equal(Number(server.bytes_rx), 700);
  assert.equal(Number(server.packets_rx), 1);
  assert.equal(server.active, 0, 'started by what it received');
  // (the ingress hook sees the packet, which says)
  assert.equal(server.laddr.slice(12).join('.'), ingressHook ? b.ip : '0.0.0.0', 'the address the socket has');
  const shown = fm.collector.flowOf(
    { cookie: 1, duration_ns: 0, closed: 0, flow: server as unknown as FlowState },
    new Date().toISOString(),
  );
  assert.deepEqual(shown.IP, { source: a.ip, destination: b.ip, ipVersion: 'IPv4' });
  assert.equal(shown.destination.pod_name, identity(b, {}).name);
  const p = await tb.execInPod(a, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '1', b.ip]);
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const icmp = await fm.waitFor((f) => f.l4.ICMPv4 !== undefined && f.IP.destination === b.ip);
  assert.equal(icmp.l4.ICMPv4?.type, 8, 'echo request');
  assert.equal(icmp.traffic.packets_sent, 2);
  assert.equal(icmp.traffic.packets_received, 2);
}

test('UDP and ICMP: a datagram flow with its payload bytes each way, closed with its socket; a ping', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  await checkDatagrams(
    tb,
    await runFlowMonitor(t, tb.parentCgroup, { pods: [identity(a, {}), identity(b, {})] }),
    a,
    b,
  );
});

test('UDP and ICMP where the kernel lacks the send and receive tracepoints (made so here): the cgroup_skb hooks count the same', async (t) => {
  const dir = join(tempDir(t, 'kbpf-flows-noreceive-'), 'flow-monitor');
  cpSync(FLOW_APP_DIR, dir, { recursive: true });
  const yaml = join(dir, 'kbpf.yaml');
  const manifest = readFileSync(yaml, 'utf8');
  const forced = manifest
    .replace(
      '  flow_dgram_recv: { group: datagram_rx }',
      '  flow_dgram_recv: { group: datagram_rx, attach: tp_btf:kbpf_no_such_tracepoint }',
    )
    .replace(
      '  flow_sock_send: { group: datagram_tx }',
      '  flow_sock_send: { group: datagram_tx, attach: tp_btf:kbpf_no_such_tracepoint }',
    );
  assert.equal(forced.match(/kbpf_no_such_tracepoint/g)?.length, 2);
  writeFileSync(yaml, forced);
  const ta = await testAgent(t);
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup, {
    agent: { ta, ref: await ta.build(dir) },
    pods: [identity(a, {}), identity(b, {})],
  });
  const states = Object.fromEntries(ta.agent.inspect(fm.name).programs.map((p) => [p.name, p.state]));
  assert.equal(states.flow_ingress, 'running');
  assert.equal(states.flow_dgram_recv, 'disabled');
  assert.equal(states.flow_dgram_copy, 'disabled');
  assert.equal(states.flow_egress, 'running');
  assert.equal(states.flow_sock_send, 'disabled');
  await checkDatagrams(tb, fm, a, b, true);
});

// unconnected UDP over IPv6: the client sends to the server's address and reads the answer
const UDP6_CLIENT = `
const dgram = require('node:dgram');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = dgram.createSocket('udp6');
s.bind(0, () => s.send(Buffer.alloc(700, 1), port, host));
const timer = setTimeout(() => process.exit(1), 3000);
s.on('message', (m) => { console.log(s.address().port, m.length); clearTimeout(timer); s.close(); });
`;
const UDP6_ECHO = `
const dgram = require('node:dgram');
const s = dgram.createSocket({ type: 'udp6', ipv6Only: true });
s.on('message', (m, r) => s.send(Buffer.alloc(300, 2), r.port, r.address));
s.bind(Number(process.argv[1]));
`;

test('UDP over IPv6, unconnected both ends: the sender of each datagram received (recvmsg6) names the flow', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow', { ipv6: true });
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  // a socket bound to the wildcard address sends from its pod's address (the pods' identities)
  const fm = await runFlowMonitor(t, tb.parentCgroup, { pods: [identity(a, {}), identity(b, {})] });
  tb.spawnInPod(b, 'node', ['-e', UDP6_ECHO, '9054']);
  await waitUdpListening(b, 9054);
  const r = await tb.execInPod(a, 'node', ['-e', UDP6_CLIENT, b.ip6!, '9054']);
  assert.equal(r.code, 0, r.stderr);
  const [lport] = r.stdout.trim().split(' ').map(Number);
  const udp = await fm.waitFor((f) => f.l4.UDP?.destination_port === 9054 && f.state === 'CLOSED');
  assert.deepEqual(udp.IP, { source: a.ip6, destination: b.ip6, ipVersion: 'IPv6' });
  assert.equal(udp.l4.UDP?.source_port, lport);
  assert.equal(udp.traffic.bytes_sent, 700);
  assert.equal(udp.traffic.bytes_received, 300);
  assert.equal(udp.traffic.packets_received, 1);
  const server = (fm.ta.agent.maps(fm.name, 'flows')[0]?.entries ?? [])
    .map(([, v]) => v as { lport: number; rport: number; bytes_rx: unknown; family: number })
    .find((v) => v.lport === 9054 && v.rport === lport);
  assert.ok(server, "the server's flow");
  assert.equal(Number(server.bytes_rx), 700);
  assert.equal(server.family, 10, 'AF_INET6');
});

// holds N connections open at once, then closes them all
const MANY = `
const net = require('node:net');
const [host, port, n] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const socks = []; let up = 0;
for (let i = 0; i < n; i++) { const c = net.connect(port, host, () => { if (++up === n) { for (const s of socks) s.end('x'); } }); c.on('error', () => {}); c.on('data', () => {}); socks.push(c); }
let closed = 0; for (const s of socks) s.on('close', () => { if (++closed === n) console.log('done', up); });
`;

test('the LRU of flows evicts and counts under many connections; rm leaves nothing', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const fm = await runFlowMonitor(t, tb.parentCgroup, { mapSizes: { flows: 64 } });
  await startServer(tb, b, 1);
  const r = await tb.execInPod(a, 'node', ['-e', MANY, b.ip, String(PORT), '300'], { timeoutMs: 30_000 });
  assert.match(r.stdout, /done 300/, r.stderr);
  const stats = await waitStats(fm.ta.agent, fm.name, (s) => s.closed + s.evicted >= 300, 3000);
  assert.ok(stats.evicted > 0, `evicted: ${JSON.stringify(stats)}`);
  assert.equal(stats.created, 300, 'every connection started a flow');
  // a flow pushed out between its socket's last packet and its close is neither (a small window)
  assert.ok(stats.closed + stats.evicted >= 285, `reported closed or counted evicted: ${JSON.stringify(stats)}`);

  const made = madeIds();
  const st = fm.ta.agent.inspect(fm.name);
  for (const p of st.programs) {
    if (p.progId !== undefined) made.prog.push(p.progId);
    if (p.linkId !== undefined) made.link.push(p.linkId);
  }
  for (const m of st.maps) if (m.mapId !== undefined) made.map.push(m.mapId);
  assert.ok(made.prog.length >= 6 && made.link.length >= 6, JSON.stringify(made));
  await fm.source.close();
  await fm.ta.agent.remove(fm.name, { force: true });
  assert.deepEqual(await stillListed(made), madeIds());
});

async function waitStats(
  agent: TestAgent['agent'],
  name: string,
  pred: (s: FlowStats) => boolean,
  timeoutMs = 5000,
): Promise<FlowStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = flowStatsOf(agent.maps(name, 'flow_stats'));
    if (pred(s) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kbpfCli(args: string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    env: {},
    ...(signal ? { signal } : {}),
  };
  const code = await runCli(args, io);
  return { code, out, err };
}

async function scrape(url: string): Promise<string> {
  const r = await fetch(url);
  return r.text();
}

test('kbpf flows through the agent API: filters and -o json; -f with metrics that pass promtool and change with traffic', async (t) => {
  const tb = await Testbed.create(t, 'kbpfflow');
  const a = await tb.addPod({ sidecar: false });
  const b = await tb.addPod({ sidecar: false });
  const pods = [identity(a, { app: 'client' }), identity(b, { app: 'server' })];
  const fm = await runFlowMonitor(t, tb.parentCgroup, { pods });
  const dir = tempDir(t, 'kbpf-flows-cli-');
  const socket = join(dir, 'agent.sock');
  const podsFile = join(dir, 'pods.yaml');
  writeFileSync(podsFile, stringify({ pods }));
  const server = await startApiServer(fm.ta.agent, socket);
  t.after(() => server.close());
  await startServer(tb, b, 100);
  for (let i = 0; i < 3; i++) await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), '1000']);
  await tb.execInPod(b, 'node', ['-e', CLIENT, a.ip, '81', '10']); // refused: a flow from b
  await fm.waitFor((f) => f.IP.source === b.ip && f.state === 'CLOSED');

  const k = (...args: string[]) => kbpfCli(['--socket', socket, 'flows', '--pods', podsFile, ...args]);
  const json = await k('--last', '100', '-o', 'json', '--from-pod', `shop/${a.name}`, '--port', String(PORT));
  assert.equal(json.code, 0, json.err);
  const lines = json.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 3, json.out);
  for (const l of lines) {
    assert.equal(l.flow.IP.destination, b.ip);
    assert.equal(l.flow.source.pod_name, `${a.name}-7d4b9c6f5-x2x9k`);
    assert.equal(l.node_name, l.flow.node_name);
  }
  const not = await k('--last', '100', '-o', 'json', '--not', '--from-ip', a.ip);
  const notFlows = not.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).flow);
  assert.ok(notFlows.length >= 1 && notFlows.every((f) => f.IP.source !== a.ip), not.out);
  const rst = await k('--last', '100', '-o', 'json', '--tcp-flags', 'RST', '--to-ip', `${tb.subnet}.0/24`);
  assert.ok(
    rst.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).flow)
      .every((f) => f.l4.TCP.flags.RST),
    rst.out,
  );
  const table = await k('--last', '2', '--to-pod', `shop/${b.name}`);
  assert.match(table.out, /^TIME\s+SOURCE\s+DESTINATION/);
  assert.equal(table.out.trim().split('\n').length, 3, table.out);
  const bad = await k('--from-ip', '10.0.0.0/40');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /not an IP address or CIDR/);

  // followed, with metrics
  const port = 19000 + Math.floor(Math.random() * 1000);
  const stopFollower = new AbortController(); // only if the stream did not end with the instance
  const follower = kbpfCli(
    [
      '--socket',
      socket,
      'flows',
      '--pods',
      podsFile,
      '-f',
      '-o',
      'compact',
      '--metrics-listen',
      `127.0.0.1:${port}`,
      '--to-pod',
      `shop/${b.name}`,
    ],
    stopFollower.signal,
  );
  const url = `http://127.0.0.1:${port}/metrics`;
  let before = '';
  for (let i = 0; i < 100 && before === ''; i++) before = await scrape(url).catch(() => '');
  const sentBefore = bytesSent(before, a, b);
  await tb.execInPod(a, 'node', ['-e', CLIENT, b.ip, String(PORT), '50000']);
  let after = '';
  for (let i = 0; i < 100; i++) {
    after = await scrape(url);
    if (bytesSent(after, a, b) > sentBefore) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(bytesSent(after, a, b) - sentBefore >= 50_000, after);
  const p = spawnSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' });
  assert.equal(p.status, 0, `${p.stdout}${p.stderr}\n${after}`);
  assert.match(after, /^kbpf_flows_instance_total\{instance="flows",counter="created"\} [1-9]/m);
  // the follower ends when the instance goes
  await fm.source.close();
  await fm.ta.agent.remove(fm.name, { force: true });
  const guard = setTimeout(() => stopFollower.abort(), 5000);
  const done = await follower;
  clearTimeout(guard);
  assert.ok(!stopFollower.signal.aborted, 'the followed stream ended with the instance');
  assert.equal(done.code, 0, done.err);
  assert.match(done.out, new RegExp(`-> shop/${b.name}-7d4b9c6f5-x2x9k:${PORT} FORWARDED CLOSED`));
});

function bytesSent(text: string, a: Pod, b: Pod): number {
  const re = new RegExp(
    `^kbpf_flows_bytes_total\\{source="shop/${a.name}",destination="shop/${b.name}",direction="sent"\\} (\\d+)$`,
    'm',
  );
  return Number(re.exec(text)?.[1] ?? 0);
}
