// An application that uses an eBPF program as a sandboxed plugin: packetfilter's XDP program
// classifies the application's own packets in the user-space engine (no kernel, no root), with
// its blocklist map written and its counters and events read by the host.
//
//   kbpf build examples/packetfilter
//   node dist/examples/plugin/main.js [--store DIR] [IMAGE]     (IMAGE default packetfilter:1.0.0)
import { loadUserspaceProgram } from '../../src/embed/index.js';
import { buildPacket } from '../../src/pkgtest/packet.js';

const VERDICTS = ['aborted', 'drop', 'pass', 'tx', 'redirect'];

export async function main(argv: string[]): Promise<string[]> {
  const at = argv.indexOf('--store');
  const store = at >= 0 ? argv.splice(at, 2)[1] : undefined;
  const image = argv[0] ?? 'packetfilter:1.0.0';
  const filter = await loadUserspaceProgram(image, 'xdp_filter', {
    config: { blocked_port: 5353 },
    ...(store ? { store } : {}),
  });
  filter.map('blocked_src').set(0x0901a8c0, 0); // 192.168.1.9, network order
  const packets = [
    buildPacket({ eth: {}, ipv4: { src: '10.0.0.1' }, udp: { dport: 5353 } }),
    buildPacket({ eth: {}, ipv4: { src: '10.0.0.1' }, udp: { dport: 53 } }),
    buildPacket({ eth: {}, ipv4: { src: '192.168.1.9' }, tcp: { dport: 443 } }),
    buildPacket({ eth: {}, ipv4: { src: '10.0.0.1' }, udp: { dport: 7 }, payload: 'ping' }),
  ];
  const out = packets.map((p, i) => `packet ${i}: ${VERDICTS[filter.run(p).r0]}`);
  out.push(
    `verdicts: ${JSON.stringify(
      filter
        .map('verdicts')
        .entries()
        .map(([, n]) => Number(n)),
    )}`,
  );
  out.push(`blocked 192.168.1.9: ${filter.map('blocked_src').get(0x0901a8c0)} hit(s)`);
  out.push(`events: ${filter.events('events').length}`);
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!))
  for (const line of await main(process.argv.slice(2))) console.log(line);
