// mesh-accel's pod settings: what declarePod writes into the maps (no kernel needed).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ipNet, ipString, MODES, podSettings } from '../../apps/mesh-accel/mesh.js';

test('addresses and CIDRs are encoded in network order as the BPF side compares them', () => {
  assert.equal(ipNet('10.1.2.3'), 0x0302010a);
  assert.equal(ipString(ipNet('192.168.7.250')), '192.168.7.250');
  const s = podSettings({ ip: '10.1.2.3', cgroup: '/x', excludeOutboundCidrs: ['10.1.0.0/16', '192.168.1.7'] });
  assert.deepEqual(s.exclude_out_cidrs, [
    { addr: ipNet('10.1.0.0'), mask: ipNet('255.255.0.0') },
    { addr: ipNet('192.168.1.7'), mask: ipNet('255.255.255.255') },
  ]);
  // host bits are cleared so (ip & mask) == addr holds
  assert.deepEqual(
    podSettings({ ip: '10.1.2.3', cgroup: '/x', includeOutboundCidrs: ['10.1.2.3/24'] }).include_out_cidrs,
    [{ addr: ipNet('10.1.2.0'), mask: ipNet('255.255.255.0') }],
  );
});

test('modes give each mesh its ports and sidecar uid; DNS and bind rewrite follow the mode', () => {
  const istio = podSettings({ ip: '10.0.0.1', cgroup: '/x' });
  assert.deepEqual(
    [istio.outbound_port, istio.inbound_port, istio.sidecar_uid, istio.dns_port, istio.flags],
    [15001, 15006, 1337, 15053, 0],
  );
  const linkerd = podSettings({ ip: '10.0.0.1', cgroup: '/x', mode: 'linkerd' });
  assert.deepEqual(
    [linkerd.outbound_port, linkerd.inbound_port, linkerd.sidecar_uid, linkerd.dns_port, linkerd.flags],
    [4140, 4143, 2102, 0, 1],
  );
  assert.deepEqual([MODES.kuma.sidecarUid, MODES.osm.inboundPort, MODES.osm.sidecarUid], [5678, 15003, 1500]);
  assert.equal(podSettings({ ip: '10.0.0.1', cgroup: '/x', captureDns: false }).dns_port, 0);
  assert.equal(podSettings({ ip: '10.0.0.1', cgroup: '/x', settings: { outboundPort: 16001 } }).outbound_port, 16001);
});

test('bad pod settings are refused before anything reaches the kernel', () => {
  assert.throws(() => podSettings({ ip: '10.0.0.300', cgroup: '/x' }), /not an IPv4 address/);
  assert.throws(() => podSettings({ ip: '10.0.0.1', cgroup: '/x', excludeOutboundPorts: [0] }), /bad port 0/);
  assert.throws(
    () => podSettings({ ip: '10.0.0.1', cgroup: '/x', excludeOutboundPorts: [1, 2, 3, 4, 5, 6, 7, 8, 9] }),
    /at most 8/,
  );
  assert.throws(() => podSettings({ ip: '10.0.0.1', cgroup: '/x', excludeOutboundCidrs: ['10.0.0.0/33'] }), /bad CIDR/);
});

test('IPv6 addresses and ranges are encoded as the BPF side compares them (u32 words in network byte order)', async () => {
  const { ip6Words, ip6String } = await import('../../apps/mesh-accel/mesh.js');
  assert.deepEqual(ip6Words('::1'), [0, 0, 0, 0x01000000]);
  assert.deepEqual(ip6Words('fd00:6b62::a'), [0x626b00fd, 0, 0, 0x0a000000]);
  assert.deepEqual(ip6Words('::ffff:10.1.2.3'), [0, 0, 0xffff0000, ipNet('10.1.2.3')]);
  assert.equal(ip6String(ip6Words('fd00:6b62:7066:12::a')), 'fd00:6b62:7066:12::a');
  const s = podSettings({
    ip: '10.1.2.3',
    ip6: 'fd00::5',
    cgroup: '/x',
    excludeOutboundCidrs: ['10.0.0.0/8', 'fd00:6b62::/33'],
  });
  assert.deepEqual(s.ip6, ip6Words('fd00::5'));
  assert.deepEqual(s.exclude_out_cidrs, [{ addr: ipNet('10.0.0.0'), mask: ipNet('255.0.0.0') }]);
  assert.deepEqual(s.exclude_out_cidrs6, [{ addr: ip6Words('fd00:6b62::'), mask: ip6Words('ffff:ffff:8000::') }]);
  assert.throws(() => podSettings({ ip: '10.0.0.1', ip6: '10.0.0.2', cgroup: '/x' }), /not an IPv6 address/);
  assert.throws(() => podSettings({ ip: '10.0.0.1', cgroup: '/x', excludeOutboundCidrs: ['fd00::/129'] }), /bad CIDR/);
});
