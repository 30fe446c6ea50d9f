// The test bed's waypoint proxy, run inside a pod: node waypoint.js PORT
//
// Listens on PORT (IPv4 and IPv6). Each connection's first bytes must be Kmesh's TLV as
// service-lb's sk_msg program writes it: type 0x01, length (4 bytes, big endian), the original
// destination's address (4 or 16 bytes) and port (2 bytes, big endian), then the end marker 0xfe
// with length 0. The proxy prints one JSON line per connection { tlv (the bytes read, hex), dst,
// dstPort } (or { err, tlv }), strips the TLV, connects to the original destination (from its own
// pod: service-lb balances that connection, since the waypoint listens in this namespace) and
// forwards both ways.
import { connect, createServer, type Socket } from 'node:net';

const port = Number(process.argv[2]);

function out(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

type Parsed = { dst: string; dstPort: number; used: number } | { err: string } | null;

/** The TLV block at the start of buf: null while incomplete. */
export function parseTlv(buf: Buffer): Parsed {
  let off = 0;
  let dst: string | undefined;
  let dstPort = 0;
  for (;;) {
    if (buf.length < off + 5) return null;
    const type = buf[off]!;
    const len = buf.readUInt32BE(off + 1);
    if (type === 0xfe) {
      if (len !== 0) return { err: `end marker with length ${len}` };
      if (dst === undefined) return { err: 'no original destination before the end marker' };
      return { dst, dstPort, used: off + 5 };
    }
    if (type !== 0x01) return { err: `unknown TLV type 0x${type.toString(16)}` };
    if (len !== 6 && len !== 18) return { err: `original destination of length ${len}` };
    if (buf.length < off + 5 + len) return null;
    const a = buf.subarray(off + 5, off + 5 + len - 2);
    dst =
      len === 6 ? [...a].join('.') : Array.from({ length: 8 }, (_, i) => a.readUInt16BE(i * 2).toString(16)).join(':');
    dstPort = buf.readUInt16BE(off + 5 + len - 2);
    off += 5 + len;
  }
}

function serve(sock: Socket): void {
  let buf = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    const p = parseTlv(buf);
    if (p === null) return;
    sock.off('data', onData);
    if ('err' in p) {
      out({ err: p.err, tlv: buf.toString('hex') });
      sock.destroy();
      return;
    }
    out({ tlv: buf.subarray(0, p.used).toString('hex'), dst: p.dst, dstPort: p.dstPort });
    const up = connect({ host: p.dst, port: p.dstPort });
    up.write(buf.subarray(p.used));
    sock.pipe(up);
    up.pipe(sock);
    up.on('error', (e) => {
      out({ err: `upstream ${p.dst}:${p.dstPort}: ${e.message}` });
      sock.destroy();
    });
    sock.on('error', () => up.destroy());
  };
  sock.on('data', onData);
  sock.on('error', () => {});
}

for (const host of ['0.0.0.0', '::']) {
  const srv = createServer(serve);
  srv.listen({ host, port, ipv6Only: host === '::' }, () => out({ listening: host }));
}
