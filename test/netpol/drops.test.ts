// netpol's drops as a flow input, without a kernel: log records as the agent writes them, through
// the inputs `kbpf flows` makes (flowInputsOf) and the any-input converter of `kubectl bpf flows`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Collector, type FlowReport } from '../../apps/flow-monitor/collector.js';
import { Identities } from '../../apps/flow-monitor/identities.js';
import { anyInputFlows, flowInputsOf } from '../../apps/flow-monitor/inputs.js';
import type { DropEvent } from '../../apps/netpol/drops.js';
import type { LogRecord } from '../../src/agent/log-store.js';

const mapped = (ip: string) => `00000000000000000000ffff${Buffer.from(ip.split('.').map(Number)).toString('hex')}`;

function dropRecord(ts: string, over: Partial<DropEvent> = {}): LogRecord {
  const event: DropEvent = {
    cgroup_id: 77,
    saddr: mapped('10.0.0.2'),
    daddr: mapped('10.0.0.1'),
    sport: 40000,
    dport: 80,
    policy_id: 1,
    count: 2,
    proto: 6,
    direction: 0,
    tcp_flags: 0x02,
    family: 2,
    policy: 'shop/web-ingress',
    ...over,
  };
  return { ts, source: 'drops', event } as unknown as LogRecord;
}

/** flow-monitor's report of the client's side of 10.0.0.2:40000 -> 10.0.0.1:80, never answered. */
function reportRecord(ts: string, durationMs: number): LogRecord {
  const report = {
    cookie: 5,
    duration_ns: durationMs * 1e6,
    closed: 1,
    flow: {
      cgroup_id: 78,
      laddr: mapped('10.0.0.2'),
      raddr: mapped('10.0.0.1'),
      lport: 40000,
      rport: 80,
      family: 2,
      proto: 6,
      active: 1,
      tcp_state: 7,
      flags_tx: 0x02,
      flags_rx: 0,
      ...Object.fromEntries(
        ['icmp_type', 'icmp_code', 'has_svc', 'srtt_us', 'min_rtt_us', 'retransmits', 'drops', 'drop_reason'].map(
          (k) => [k, 0],
        ),
      ),
      ...Object.fromEntries(
        ['bytes_tx', 'bytes_rx', 'packets_tx', 'packets_rx', 'ip_bytes_tx', 'ip_bytes_rx'].map((k) => [k, 0]),
      ),
    },
  } as unknown as FlowReport;
  return { ts, source: 'flow_events', event: report } as unknown as LogRecord;
}

const identities = new Identities([
  { namespace: 'shop', name: 'web', labels: { app: 'web' }, ip: '10.0.0.1' },
  { namespace: 'shop', name: 'client', labels: { app: 'client' }, ip: '10.0.0.2' },
]);

test("kbpf flows' inputs: netpol's drop is a DROPPED flow with its policy, and flow-monitor's record of that connection takes the verdict", () => {
  const collector = new Collector({ node: 'n1', identities });
  const instances = [
    { name: 'flows', package: { name: 'flow-monitor' } },
    { name: 'np', package: { name: 'netpol' } },
    { name: 'snoop', package: { name: 'opensnoop' } },
  ];
  const inputs = flowInputsOf(instances, undefined, collector);
  assert.deepEqual(
    inputs.map((i) => i.instance),
    ['np', 'flows'],
    'netpol first: its histories are read before the flows they annotate',
  );
  const [np, fm] = inputs as [(typeof inputs)[0], (typeof inputs)[0]];
  const drop = np.convert(dropRecord('2026-12-02T01:00:00.100Z'))!;
  assert.equal(drop.verdict, 'DROPPED');
  assert.equal(drop.drop_reason_desc, 'POLICY_DENIED');
  assert.equal(drop.policy_name, 'shop/web-ingress');
  assert.equal(drop.IP.source, '10.0.0.2');
  assert.equal(drop.traffic.packets_sent, 2);
  assert.deepEqual([drop.source.pod_name, drop.destination.pod_name], ['client', 'web']);
  assert.equal(np.convert(reportRecord('2026-12-02T01:00:00.800Z', 700)), null, 'netpol reads only its drops');

  const f = fm.convert(reportRecord('2026-12-02T01:00:00.800Z', 700))!;
  assert.equal(f.verdict, 'DROPPED');
  assert.equal(f.drop_reason_desc, 'POLICY_DENIED');
  assert.equal(f.policy_name, 'shop/web-ingress');
  const later = fm.convert(reportRecord('2026-12-02T01:10:00.000Z', 50))!;
  assert.equal(later.verdict, 'FORWARDED', 'the same tuple ten minutes on is another connection');
  assert.equal(later.policy_name, undefined);

  assert.throws(() => flowInputsOf(instances, ['snoop'], collector), /whose events are no flows/);
});

test('an IPv6 drop; the any-input converter of kubectl bpf flows reads both packages', () => {
  const convert = anyInputFlows(new Collector({ node: 'n2', identities }));
  const v6 = convert(
    dropRecord('2026-12-02T01:00:00Z', {
      family: 10,
      saddr: 'fd000000000000000000000000000002',
      daddr: 'fd000000000000000000000000000001',
      direction: 1,
      proto: 17,
      policy: '',
    }),
  )!;
  assert.equal(v6.IP.ipVersion, 'IPv6');
  assert.deepEqual([v6.IP.source, v6.IP.destination], ['fd00::2', 'fd00::1']);
  assert.equal(v6.traffic_direction, 'EGRESS');
  assert.ok(v6.l4.UDP);
  assert.equal(v6.policy_name, undefined, 'no name, no policy_name');
  assert.equal(v6.node_name, 'n2');
  assert.equal(convert(reportRecord('2026-12-02T01:00:00.500Z', 400))?.IP.source, '10.0.0.2');
  assert.equal(convert({ ts: 'x', source: 'kbpf_printk', event: { line: 'hi' } } as unknown as LogRecord), null);
});
