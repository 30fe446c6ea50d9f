// Embedding: a package's program loaded with loadUserspaceProgram runs on the host's data, its
// maps read and written from the host; the example application does the same as a process.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildPackage } from '../../src/compile/builder.js';
import { loadUserspaceProgram } from '../../src/embed/index.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { buildPacket } from '../../src/pkgtest/packet.js';
import { EXAMPLES, VMLINUX_CACHE } from '../../testbed/agent.js';
import { tempDir } from '../../testbed/kernel.js';

test('loadUserspaceProgram: run on bytes, maps from the host, events, config, both engines', async (t) => {
  const dir = tempDir(t, 'kbpf-embed-');
  const store = join(dir, 'store');
  await buildPackage(join(EXAMPLES, 'packetfilter'), { store: new LayoutStore(store), cacheDir: VMLINUX_CACHE });
  for (const engine of ['wasm', 'interpreter'] as const) {
    const f = await loadUserspaceProgram('packetfilter:1.0.0', 'xdp_filter', {
      store,
      engine,
      config: { blocked_port: 99 },
    });
    assert.equal(f.type, 'xdp');
    const dns = buildPacket({ eth: {}, ipv4: {}, udp: { dport: 53 } });
    assert.equal(f.run(dns).r0, 2, 'port 53 passes: blocked_port is 99');
    assert.equal(f.run(buildPacket({ eth: {}, ipv4: {}, udp: { dport: 99 } })).r0, 1);
    f.map('blocked_src').set(
      '10.1.1.1'.split('.').reduce((a, b, i) => a + Number(b) * 256 ** i, 0),
      5,
    );
    assert.equal(f.run(buildPacket({ eth: {}, ipv4: { src: '10.1.1.1' }, tcp: {} })).r0, 1);
    assert.equal(f.map('blocked_src').get(0x0101010a), 6n);
    assert.deepEqual(
      f
        .map('verdicts')
        .entries()
        .map(([k, v]) => [k, Number(v)]),
      [
        [0, 0],
        [1, 2],
        [2, 1],
        [3, 0],
        [4, 0],
      ],
    );
    const events = f.events('events') as { dport: number }[];
    assert.deepEqual(
      events.map((e) => e.dport),
      [99, 0],
    );
    assert.deepEqual(f.events('events'), [], 'drained');
    const echo = f.run(
      buildPacket({ eth: {}, ipv4: { src: '10.0.0.1', dst: '10.0.0.2' }, udp: { sport: 1, dport: 7 } }),
    );
    assert.equal(echo.r0, 3);
    assert.deepEqual([...echo.data!.subarray(26, 34)], [10, 0, 0, 2, 10, 0, 0, 1], 'addresses swapped');
  }
  const sock = await loadUserspaceProgram('packetfilter:1.0.0', 'sock_udp', { store });
  assert.equal(sock.run(buildPacket({ eth: {}, ipv4: {}, udp: {}, payload: 'abcd' })).r0, 32);

  const example = fileURLToPath(new URL('../../examples/plugin/main.js', import.meta.url));
  const out = execFileSync(process.execPath, [example, '--store', store], { encoding: 'utf8' });
  assert.equal(
    out,
    [
      'packet 0: drop',
      'packet 1: pass',
      'packet 2: drop',
      'packet 3: tx',
      'verdicts: [0,2,1,1,0]',
      'blocked 192.168.1.9: 1 hit(s)',
      'events: 2',
      '',
    ].join('\n'),
  );
});
