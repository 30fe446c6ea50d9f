// The test bed's IPv6 sidecar: a tiny HTTP/1 proxy that finds each connection's original
// destination the way Envoy does for IPv6, getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST = 80).
//
// Why not HAProxy: Debian's HAProxy (2.6) asks the kernel for the original destination only on
// AF_INET sockets (getsockopt(SOL_IP, SO_ORIGINAL_DST)); for an IPv6 connection `option
// transparent` takes getsockname(), i.e. the sidecar's own listener, and loops to itself
// (strace shows no SOL_IPV6 getsockopt). Node has no getsockopt, so it is called through koffi.
//
//   node sidecar6.js OUTBOUND_PORT INBOUND_PORT [OUTBOUND_HOST]
// listens on [OUTBOUND_HOST]:OUTBOUND (default [::]; linkerd's proxy binds [::1]) and [::]:INBOUND (IPv6 only: the IPv4 listeners are HAProxy's), adds
// `x-mesh-outbound: [addr]:port` / `x-mesh-inbound: [addr]:port` (the original destination it
// got) to the first request of each connection, and pipes the connection to that destination.
// A connection whose original destination the kernel cannot tell is closed.

import { createRequire } from 'node:module';
import net from 'node:net';

const SOL_IPV6 = 41;
const IP6T_SO_ORIGINAL_DST = 80;
const AF_INET6 = 10;

// koffi is CommonJS: required, as the runtime does (the test bed calls libc itself, not the runtime)
// biome-ignore lint/suspicious/noExplicitAny: koffi's FFI surface is built at run time
const koffi: any = createRequire(import.meta.url)('koffi');
const libc = koffi.load('libc.so.6');
const getsockopt = libc.func(
  'int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)',
) as (fd: number, level: number, name: number, val: Uint8Array, len: number[]) => number;

/** The connection's original destination (sockaddr_in6), or null. */
export function originalDst6(sock: net.Socket): { address: string; port: number } | null {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return null;
  const buf = new Uint8Array(28);
  const len = [buf.length];
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, buf, len) !== 0) return null;
  const dv = new DataView(buf.buffer);
  if (dv.getUint16(0, true) !== AF_INET6) return null;
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(dv.getUint16(8 + 2 * i, false).toString(16));
  // canonical text (RFC 5952): the longest run of two or more zero groups becomes ::
  let best = -1,
    bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  const address = best < 0 ? g.join(':') : `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
  return { address, port: dv.getUint16(2, false) };
}

function serve(host: string, port: number, kind: 'outbound' | 'inbound'): Promise<void> {
  const srv = net.createServer((c) => {
    c.on('error', () => c.destroy());
    const dst = originalDst6(c);
    if (!dst) {
      process.stderr.write(`sidecar6 ${kind}: no original destination for ${c.remoteAddress}:${c.remotePort}\n`);
      c.destroy();
      return;
    }
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const eol = head.indexOf('\r\n');
      if (eol < 0) return;
      c.off('data', onData);
      c.pause();
      const out = Buffer.concat([
        head.subarray(0, eol + 2),
        Buffer.from(`x-mesh-${kind}: [${dst.address}]:${dst.port}\r\n`),
        head.subarray(eol + 2),
      ]);
      const up = net.connect({ host: dst.address, port: dst.port, family: 6 }, () => {
        up.write(out);
        c.pipe(up);
        up.pipe(c);
        c.resume();
      });
      up.on('error', () => c.destroy());
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
    };
    c.on('data', onData);
  });
  return new Promise((res, rej) => {
    srv.once('error', rej);
    srv.listen({ host, port, ipv6Only: true }, () => res());
  });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const [outbound, inbound] = process.argv.slice(2, 4).map(Number);
  await Promise.all([serve(process.argv[4] ?? '::', outbound!, 'outbound'), serve('::', inbound!, 'inbound')]);
  process.stdout.write('ready\n');
}
