// flow-monitor's user-space half without a kernel: hubble-observe filter semantics, the collector's
// orientation of a report, the metrics (promtool-clean, deltas of cumulative reports, expiry).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Collector, type FlowReport, type FlowState } from '../../apps/flow-monitor/collector.js';
import { matchFlow } from '../../apps/flow-monitor/filter.js';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import { Identities } from '../../apps/flow-monitor/identities.js';
import { FlowMetrics } from '../../apps/flow-monitor/metrics.js';
import { AgentFlowSource, flowMonitorInput, type LogReader } from '../../apps/flow-monitor/source.js';
import { ApiClient, ApiError } from '../../src/agent/api-client.js';
import type { LogRecord } from '../../src/agent/log-store.js';
import { compactLine, jsonLine, renderFlows } from '../../src/cli/render/flows.js';

/** an IPv4 address as struct flow_report carries it: ::ffff:a.b.c.d, hex in the log line */
const mapped = (ip: string): string =>
  Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...ip.split('.').map(Number)]).toString('hex');

const NO_SVC = '00'.repeat(44);

function report(over: Partial<FlowState> = {}, closed = 1, cookie = 42): FlowReport {
  return {
    cookie,
    duration_ns: 2_500_000,
    closed,
    cgroup_id: 0,
    laddr: mapped('10.1.0.5'),
    raddr: mapped('10.1.0.9'),
    lport: 40000,
    rport: 80,
    family: 2,
    proto: 6,
    active: 1,
    tcp_state: 7,
    flags_tx: 0x1b,
    flags_rx: 0x13,
    icmp_type: 0,
    icmp_code: 0,
    has_svc: 0,
    srtt_us: 120,
    min_rtt_us: 40,
    retransmits: 1,
    drops: 0,
    drop_reason: 0,
    bytes_tx: 1002,
    bytes_rx: 501,
    packets_tx: 5,
    packets_rx: 4,
    ip_bytes_tx: 1300,
    ip_bytes_rx: 700,
    svc: NO_SVC,
    ...over,
  };
}

/** struct svc_origin: vip 10.96.0.10:80 -> backend 10.1.0.9:8080, round-robin, level 1, id 7 */
const SVC_BYTES = Buffer.alloc(44);
Buffer.from([10, 96, 0, 10]).copy(SVC_BYTES, 0);
Buffer.from([10, 1, 0, 9]).copy(SVC_BYTES, 16);
SVC_BYTES.writeUInt16BE(80, 32);
SVC_BYTES.writeUInt16BE(8080, 34);
SVC_BYTES[36] = 2;
SVC_BYTES[37] = 1;
SVC_BYTES[38] = 1;
SVC_BYTES.writeUInt32LE(7, 40);

const ids = new Identities([
  { namespace: 'shop', name: 'web-7d4b9c6f5-x2x9k', labels: { app: 'web' }, ip: '10.1.0.5' },
  { namespace: 'shop', name: 'db-0', labels: { app: 'db' }, ip: '10.1.0.9' },
]);
const collector = new Collector({ node: 'n1', identities: ids });
const T = '2026-12-01T10:00:00.000Z';

test('the collector orients a report (source = the end that connected) and names both ends', () => {
  const out = collector.flowOf(report(), T);
  assert.equal(out.IP.source, '10.1.0.5');
  assert.equal(out.source.workload, 'web');
  assert.equal(out.destination.pod_name, 'db-0');
  assert.equal(out.destination.workload, 'db');
  assert.deepEqual(out.traffic, {
    bytes_sent: 1000,
    bytes_received: 500,
    packets_sent: 5,
    packets_received: 4,
    ip_bytes_sent: 1300,
    ip_bytes_received: 700,
  });
  // the accepting end's report of a connection from outside: source is the peer
  const inbound = collector.flowOf(
    report({ active: 0, lport: 80, rport: 40000, laddr: mapped('10.1.0.9'), raddr: mapped('10.9.9.9') }),
    T,
  );
  assert.equal(inbound.traffic_direction, 'INGRESS');
  assert.equal(inbound.IP.source, '10.9.9.9');
  assert.equal(inbound.l4.TCP?.destination_port, 80);
  assert.equal(inbound.traffic.bytes_sent, 500, 'what the peer sent is what the local socket received');
  assert.deepEqual(inbound.source, {});
});

test('the collector reads the service translation from its bytes, and reports in the older nested form', () => {
  const svc = SVC_BYTES;
  const f = collector.flowOf(report({ has_svc: 1, svc: svc.toString('hex') }), T);
  assert.deepEqual(f.service, {
    vip: '10.96.0.10',
    vip_port: 80,
    backend: '10.1.0.9',
    backend_port: 8080,
    lb_policy: 'round-robin',
    lb_level: 1,
    affinity_hit: false,
    service_id: 7,
  });
  const { cookie, duration_ns, closed, ...state } = report();
  const nested = collector.flowOf({ cookie, duration_ns, closed, flow: state as FlowState }, T);
  assert.deepEqual(nested, collector.flowOf(report(), T));
});

test('a report mesh-accel redirected: REDIRECTED to where the app was connecting (svc.orig, or the backend service-lb chose), the proxy port', () => {
  // the app connected to 10.1.0.9:80; mesh-accel sent it to its own pod's sidecar, 10.1.0.5:15001
  const orig = Buffer.alloc(44);
  Buffer.from(mapped('10.1.0.9'), 'hex').copy(orig, 0);
  orig.writeUInt16LE(80, 16);
  const r = report({ raddr: mapped('10.1.0.5'), rport: 15001, redirected: 1, svc: orig.toString('hex') });
  const f = collector.flowOf(r, T);
  assert.equal(f.verdict, 'REDIRECTED');
  assert.equal(f.proxy_port, 15001);
  assert.deepEqual(f.IP, { source: '10.1.0.5', destination: '10.1.0.9', ipVersion: 'IPv4' });
  assert.equal(f.l4.TCP?.destination_port, 80);
  assert.equal(f.destination.pod_name, 'db-0', 'the pod it was going to, not the sidecar');
  assert.equal(f.service, undefined);
  assert.equal(f.traffic.bytes_sent, 1000);
  assert.match(compactLine(f), /REDIRECTED \(proxy :15001\)/);
  assert.ok(matchFlow({ verdict: ['REDIRECTED'] }, f) && !matchFlow({ verdict: ['FORWARDED'] }, f));
  // service-lb translated it first (VIP 10.96.0.10:80 -> backend 10.1.0.9:8080), then mesh-accel
  // redirected it: where it was going is the backend
  const both = collector.flowOf({ ...r, has_svc: 1, svc: SVC_BYTES.toString('hex') }, T);
  assert.equal(both.verdict, 'REDIRECTED');
  assert.equal(both.IP.destination, '10.1.0.9');
  assert.equal(both.l4.TCP?.destination_port, 8080);
  assert.equal(both.service?.vip, '10.96.0.10');
  // a redirected connection that never opened, with drops, is DROPPED; reports before 0.2.1 have no such field
  assert.equal(collector.flowOf({ ...r, tcp_state: 7, flags_rx: 0, drops: 2 }, T).verdict, 'DROPPED');
  const old = collector.flowOf(report(), T);
  assert.equal(old.verdict, 'FORWARDED');
  assert.equal(old.proxy_port, undefined);
});

test('filters: AND across fields, OR within one, --not, CIDRs, pods with namespace, flags, protocol', () => {
  const f = collector.flowOf(report(), T);
  const udp = collector.flowOf(report({ proto: 17, rport: 53 }), T);
  const m = (q: Parameters<typeof matchFlow>[0], x: Flow = f): boolean => matchFlow(q, x);
  assert.ok(m({ from_ip: ['10.1.0.0/24'], to_ip: ['10.1.0.9'] }));
  assert.ok(!m({ from_ip: ['10.2.0.0/16'] }));
  assert.ok(m({ pod: ['shop/db'] }) && m({ from_pod: ['shop/web'] }) && !m({ from_pod: ['shop/db'] }));
  assert.ok(!m({ pod: ['db'] }), 'no namespace means default');
  assert.ok(m({ namespace: ['shop'] }) && !m({ namespace: ['kube-system'] }));
  assert.ok(m({ port: [80, 443] }) && !m({ port: [443] }));
  assert.ok(m({ verdict: ['FORWARDED'] }) && !m({ verdict: ['DROPPED'] }));
  assert.ok(m({ protocol: ['tcp'] }) && !m({ protocol: ['udp'] }) && m({ protocol: ['udp'] }, udp));
  assert.ok(m({ tcp_flags: ['SYN'] }) && m({ tcp_flags: ['RST', 'FIN'] }) && !m({ tcp_flags: ['RST'] }));
  assert.ok(!m({ port: [80], protocol: ['udp'] }), 'AND across fields');
  assert.ok(m({ not: true, verdict: ['DROPPED'] }) && !m({ not: true, port: [80] }));
  assert.throws(() => m({ from_ip: ['10.1.0.0/99'] }), /not an IP address or CIDR/);
});

test('renderers: table, compact, JSON lines in hubble GetFlowsResponse shape', () => {
  const f = collector.flowOf(report(), T);
  const j = JSON.parse(jsonLine(f));
  assert.equal(j.node_name, 'n1');
  assert.equal(j.flow.IP.source, '10.1.0.5');
  assert.equal(j.flow.l4.TCP.flags.SYN, true);
  assert.match(
    compactLine(f),
    /shop\/web-7d4b9c6f5-x2x9k:40000 -> shop\/db-0:80 FORWARDED CLOSED \(TCP Flags: SYN,ACK,PSH,FIN\)/,
  );
  const table = renderFlows('table', [f]);
  assert.match(table, /^TIME\s+SOURCE\s+DESTINATION/);
  assert.match(table, /1000B\/5\s+500B\/4\s+120µs/);
});

function promtool(text: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('metrics: promtool-clean, counters add the change between reports, RTT histogram at close, deleted pods expire', () => {
  let now = 1000;
  const mx = new FlowMetrics({ context: 'workload', ttlMs: 60_000, now: () => now });
  const open = collector.flowOf(
    report({ bytes_tx: 401, bytes_rx: 0, tcp_state: 1, flags_tx: 0x12, flags_rx: 0x12 }, 0),
    T,
  );
  mx.observe(open);
  mx.observe(collector.flowOf(report(), T));
  const text = mx.render();
  const p = promtool(text);
  assert.equal(p.code, 0, `${p.out}\n${text}`);
  const val = (re: RegExp): number => Number(re.exec(text)?.[1]);
  assert.equal(
    val(/^kbpf_flows_bytes_total\{source="shop\/web",destination="shop\/db",direction="sent"\} (\d+)$/m),
    1000,
  );
  assert.equal(val(/^hubble_flows_processed_total\{type="L3_L4",verdict="FORWARDED"\} (\d+)$/m), 2);
  assert.equal(val(/^hubble_port_distribution_total\{protocol="TCP",port="80"\} (\d+)$/m), 1, 'a flow counted once');
  assert.equal(val(/^hubble_tcp_flags_total\{flag="SYN",family="IPv4"\} (\d+)$/m), 1);
  assert.equal(val(/^hubble_tcp_flags_total\{flag="FIN",family="IPv4"\} (\d+)$/m), 1);
  assert.equal(val(/^kbpf_flows_retransmits_total\{source="shop\/web",destination="shop\/db"\} (\d+)$/m), 1);
  assert.equal(val(/^kbpf_flows_rtt_seconds_count\{source="shop\/web",destination="shop\/db"\} (\d+)$/m), 1);
  assert.equal(
    val(/^kbpf_flows_rtt_seconds_bucket\{source="shop\/web",destination="shop\/db",le="0.00025"\} (\d+)$/m),
    1,
  );
  // a dropped flow
  mx.observe(collector.flowOf(report({ drops: 2, drop_reason: 2, tcp_state: 7, flags_rx: 0 }, 1, 43), T));
  assert.match(mx.render(), /^hubble_drop_total\{reason="[A-Z_]+",protocol="TCP"\} \d+$/m);
  // the pod goes: its series go with it
  const un = ids.onRemove((pod) => mx.forgetPod({ ...pod, workload: 'db' }));
  ids.remove('shop', 'db-0');
  un();
  assert.doesNotMatch(mx.render(), /destination="shop\/db"/);
  // and series nobody updates expire
  mx.observe(collector.flowOf(report({ raddr: mapped('10.1.0.77') }, 1, 44), T));
  assert.match(mx.render(), /kbpf_flows_bytes_total\{source="shop\/web",destination=""/);
  now += 120_000;
  assert.doesNotMatch(mx.render(), /kbpf_flows_bytes_total\{/);
  assert.equal(promtool(mx.render()).code, 0);
});

test('a followed log stream: lines split across chunks, a blank line, then the error line that ends it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-flows-api-'));
  const socket = join(dir, 'api.sock');
  const line = (seq: number): string => `${JSON.stringify({ ts: T, seq, source: 'flow_events', event: { n: seq } })}\n`;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    const all = `${line(1)}${line(2)}\n${line(3)}${line(4)}`;
    res.write(all.slice(0, 70)); // a record cut in two
    setTimeout(() => {
      res.write(all.slice(70));
      setTimeout(() => res.end(`${line(5)}{"error":"the instance was removed"}\n`), 20);
    }, 20);
  });
  await new Promise<void>((r) => server.listen(socket, r));
  const api = new ApiClient(socket);
  t.after(() => {
    api.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const seqs: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const batch of api.logBatches('flows', { follow: true })) for (const r of batch) seqs.push(r.seq);
    })(),
    (e: unknown) => e instanceof ApiError && /the instance was removed/.test(e.message),
  );
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
});

test('AgentFlowSource: followBatches gets the flows in order, a follower too far behind counts what it lost', async () => {
  const recs: LogRecord[] = [];
  for (let i = 1; i <= 35; i++) recs.push({ ts: T, seq: i, source: 'flow_events', event: report({}, 1, i) });
  const gate = (): { wait: Promise<void>; open: () => void } => {
    let open!: () => void;
    const wait = new Promise<void>((r) => (open = r));
    return { wait, open };
  };
  const first = gate();
  const second = gate();
  const reader: LogReader = {
    logs: () => {
      throw new Error('batches expected');
    },
    async *logBatches() {
      await first.wait;
      yield recs.slice(0, 30); // 10 more than the follower may hold
      await second.wait;
      yield recs.slice(30);
    },
  };
  const collector = new Collector({ node: 'n1', identities: new Identities([]) });
  const source = new AgentFlowSource(reader, [flowMonitorInput('flows', collector)], { history: 0, followLimit: 20 });
  const ac = new AbortController();
  const batches: string[][] = [];
  const following = (async () => {
    for await (const flows of source.followBatches(ac.signal)) {
      batches.push(flows.map((f) => f.flow_id.slice(3)));
      if (batches.length === 1) second.open();
      else break;
    }
  })();
  source.start();
  first.open();
  await following;
  await source.ended();
  const ids = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
  assert.deepEqual(batches, [ids(1, 20), ids(31, 35)]);
  assert.equal(source.received, 35);
  assert.equal(source.lost, 10, 'what did not fit is counted lost');
  await source.close();
});

test("a wildcard-bound datagram socket's address: its pod's identity, else the one its cgroup's other flows had", () => {
  const c = new Collector({ node: 'n1', identities: new Identities([]) });
  const udp = (cgroup: number) =>
    report({ cgroup_id: cgroup, proto: 17, laddr: mapped('0.0.0.0'), lport: 5353, rport: 53 }, 1, 7);
  // nothing known of cgroup 77 yet: the socket's own (unspecified) address
  assert.equal(c.flowOf(udp(77), T).IP.source, '0.0.0.0');
  // a TCP flow of cgroup 77 says where it lives; the next wildcard flow of the cgroup is shown there
  assert.equal(c.flowOf(report({ cgroup_id: 77, laddr: mapped('10.1.0.7') }), T).IP.source, '10.1.0.7');
  assert.equal(c.flowOf(udp(77), T).IP.source, '10.1.0.7');
  assert.equal(c.flowOf(udp(78), T).IP.source, '0.0.0.0', 'another cgroup: nothing learnt');
  // a declared pod (by its cgroup) is named, and its address wins
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-cg-'));
  try {
    const named = new Identities([{ namespace: 'shop', name: 'dns-0', labels: {}, ip: '10.1.0.53', cgroup: dir }]);
    const byPod = new Collector({ node: 'n1', identities: named });
    const ino = Number(statSync(dir).ino);
    const f = byPod.flowOf(udp(ino), T);
    assert.equal(f.IP.source, '10.1.0.53');
    assert.equal(f.source.pod_name, 'dns-0');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
