// A stand-in for a node agent's log endpoint in tests of the client side: an HTTPS server with
// its own self-signed certificate (as an agent makes one), advertised in the node's BpfNode the
// way the agent publishes it, recording every request it gets.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Kube } from '../../src/k8s/kube.js';
import { publishLogsEndpoint } from '../../src/k8s/node/node-report.js';
import { type ServingCertificate, selfSignedCertificate } from '../../src/k8s/node/serving-cert.js';

export interface FakeEndpoint {
  port: number;
  url: string;
  tls: ServingCertificate;
  seen: { path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

export async function fakeEndpoint(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  host = '127.0.0.1',
  tls: ServingCertificate = selfSignedCertificate('test-node', [host]),
): Promise<FakeEndpoint> {
  const seen: FakeEndpoint['seen'] = [];
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `https://${host}:${port}`,
    tls,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Writes the node's BpfNode status.logs as its agent does. */
export function advertise(kube: Kube, node: string, url: string, certificate: string): Promise<void> {
  return publishLogsEndpoint(kube, node, { url, certificate });
}
