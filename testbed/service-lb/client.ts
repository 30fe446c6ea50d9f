// The service-lb test bed's client and UDP server, run inside a pod (node client.js MODE ...):
//
//   tcp HOST PORT COUNT        COUNT connections one after another, one HTTP request each; per
//                              connection a JSON line { app, peer, peerPort, err } (peer: what
//                              getpeername says, the VIP when translated)
//   hold HOST PORT COUNT       COUNT keep-alive connections, one request each, kept open until killed;
//                              a JSON line per connection, then "held"
//   udp HOST PORT COUNT        one unconnected UDP socket, COUNT datagrams (sendto), a JSON line per
//                              reply { app, from, fromPort } (from: recvmsg's source address)
//   udp-connected HOST PORT COUNT   the same on a connected UDP socket (+ peer from getpeername)
//   udp-follow HOST PORT       a connected UDP socket asking every 50 ms until killed, a JSON line
//                              per reply { app }; when the socket fails (ECONNABORTED: its backend
//                              was removed and the socket ended) { err }, then it connects again,
//                              as an application does, and goes on
//   serve-udp PORT NAME        answers each datagram with "app=NAME" (IPv4 and IPv6)
import { createSocket, type Socket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';

const [mode, a1, a2, a3] = process.argv.slice(2);

function out(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function request(
  host: string,
  port: number,
  keep: boolean,
): Promise<{ sock: import('node:net').Socket; line: unknown }> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    let done = false;
    const finish = (line: unknown) => {
      if (done) return;
      done = true;
      resolve({ sock, line });
    };
    sock.setTimeout(3000, () => {
      finish({ err: 'ETIMEDOUT' });
      sock.destroy();
    });
    sock.on('connect', () => {
      sock.write(keep ? 'GET / HTTP/1.1\r\nHost: svc\r\n\r\n' : 'GET / HTTP/1.0\r\n\r\n');
    });
    sock.on('data', (d) => {
      buf += d;
      const m = /app=(\S+)/.exec(buf);
      if (m && keep) finish({ app: m[1], peer: sock.remoteAddress, peerPort: sock.remotePort });
    });
    sock.on('end', () => {
      const m = /app=(\S+)/.exec(buf);
      finish(m ? { app: m[1], peer: sock.remoteAddress, peerPort: sock.remotePort } : { err: 'EOF' });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish({ err: e.code ?? e.message }));
  });
}

async function main(): Promise<void> {
  if (mode === 'serve-udp') {
    for (const type of ['udp4', 'udp6'] as const) {
      const s = createSocket({ type, ipv6Only: type === 'udp6' });
      s.on('message', (_m, r) => s.send(`app=${a2}`, r.port, r.address));
      s.on('error', () => {});
      s.bind(Number(a1));
    }
    return;
  }
  const host = a1!;
  const port = Number(a2);
  const count = Number(a3 ?? 1);
  if (mode === 'tcp' || mode === 'hold') {
    const held: unknown[] = [];
    for (let i = 0; i < count; i++) {
      const { sock, line } = await request(host, port, mode === 'hold');
      out(line);
      if (mode === 'hold') held.push(sock);
      else sock.destroy();
    }
    if (mode === 'hold') {
      out('held');
      setInterval(() => {}, 1 << 30);
    }
    return;
  }
  if (mode === 'udp-follow') {
    let s: Socket | null = null;
    let connected = false;
    const open = () => {
      const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      s = sock;
      connected = false;
      sock.on('message', (m) => out({ app: /app=(\S+)/.exec(String(m))?.[1] }));
      sock.on('error', (e: NodeJS.ErrnoException) => fail(sock, e));
      sock.connect(port, host, () => {
        connected = true;
        out({ connected: sock.remoteAddress().address });
      });
    };
    const fail = (sock: Socket, e: NodeJS.ErrnoException) => {
      if (s !== sock) return; // already replaced
      out({ err: e.code ?? e.message });
      s = null;
      try {
        sock.close();
      } catch {
        /* closed already */
      }
      open();
    };
    open();
    setInterval(() => {
      const sock = s;
      if (sock && connected) sock.send('q', (e) => e && fail(sock, e as NodeJS.ErrnoException));
    }, 50);
    return;
  }
  if (mode === 'udp' || mode === 'udp-connected') {
    const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const replies: ((l: unknown) => void)[] = [];
    s.on('message', (m, r) =>
      replies.shift()?.({ app: /app=(\S+)/.exec(String(m))?.[1], from: r.address, fromPort: r.port }),
    );
    if (mode === 'udp-connected')
      await new Promise<void>((res, rej) => s.connect(port, host, (e?: Error) => (e ? rej(e) : res())));
    for (let i = 0; i < count; i++) {
      const got = new Promise<unknown>((res) => {
        replies.push(res);
        setTimeout(() => res({ err: 'ETIMEDOUT' }), 2000);
      });
      if (mode === 'udp-connected') s.send('q');
      else s.send('q', port, host);
      const line = (await got) as Record<string, unknown>;
      if (mode === 'udp-connected') {
        const p = s.remoteAddress();
        line.peer = p.address;
        line.peerPort = p.port;
      }
      out(line);
    }
    s.close();
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e) => {
  out({ err: String(e?.code ?? e?.message ?? e) });
  process.exit(1);
});
