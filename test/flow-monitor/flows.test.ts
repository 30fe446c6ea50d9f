// flow-monitor on a real kernel: pods in network namespaces and cgroups (the mesh test bed,
// without sidecars), flows read through the collector from the agent's log of the instance.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import type { PodIdentity } from '../../apps/shared/pods.js';
import { runFlowMonitor } from '../../testbed/flows.js';
import { type Pod, Testbed } from '../../testbed/mesh/testbed.js';

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
  return { namespace: 'shop', name: `${p.name}-7d4b9c6f5-x2x9k`, labels, ip: p.ip, cgroup: p.cgroup };
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
