// Observe-only runs: packetfilter's packet programs see a copy of loopback's packets through an
// AF_PACKET socket in the user-space engine; their verdicts, maps and events are reported, and
// nothing is loaded into the kernel.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildPackage } from '../../src/compile/builder.js';
import { observeInterface } from '../../src/embed/observe.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { plain } from '../../src/pkgtest/values.js';
import { EXAMPLES, VMLINUX_CACHE } from '../../testbed/agent.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';

test('observe-only: loopback packets reach the package programs in the VM; verdicts, map and events reported', async (t) => {
  const before = kernelIds();
  const dir = tempDir(t, 'kbpf-observe-');
  const store = join(dir, 'store');
  await buildPackage(join(EXAMPLES, 'packetfilter'), { store: new LayoutStore(store), cacheDir: VMLINUX_CACHE });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const events: { dport: number }[] = [];
  const obs = await observeInterface(
    'packetfilter:1.0.0',
    'lo',
    { store, config: { blocked_port: port } },
    (map, r) => {
      if (map === 'events') events.push(r as { dport: number });
    },
  );
  const sock = createSocket('udp4');
  try {
    for (let i = 0; i < 3; i++) {
      sock.send('observe me', port, '127.0.0.1');
      await sleep(20);
    }
    const deadline = Date.now() + 3000;
    while (events.filter((e) => e.dport === port).length < 3 && Date.now() < deadline) await sleep(50);
    const r = obs.report();
    assert.equal(events.filter((e) => e.dport === port).length, 3, JSON.stringify(plain(r)));
    const xdp = r.programs.find((p) => p.name === 'xdp_filter')!;
    assert.ok((xdp.verdicts['1 (XDP_DROP)'] ?? 0) >= 3, JSON.stringify(xdp));
    assert.equal(xdp.faults, 0);
    assert.deepEqual(
      r.programs.map((p) => p.name),
      ['xdp_filter', 'tc_mark', 'sock_udp'],
    );
    const verdicts = r.maps.find((m) => m.name === 'verdicts')!;
    assert.ok(Number(verdicts.entries[1]![1]) >= 3);
  } finally {
    sock.close();
    obs.close();
  }
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
