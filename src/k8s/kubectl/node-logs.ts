// Reading a deployment's log on one node from that node agent's log endpoint, the way kubectl
// reads a pod's log from its kubelet. The node's BpfNode status advertises the endpoint: its URL
// and its certificate. A node writes that status, so it is not believed blindly:
// - the URL must be https on one of the Node object's addresses (kubelet's word, not the agent's);
// - the TLS connection must present exactly the advertised certificate (pinned), or nothing is sent;
// - the bearer token is a short-lived service account token (TokenRequest for kbpf-logs-reader)
//   whose only audience is that one node: a node that misuses it gets nothing valid on any other
//   node nor on the API server. The user's own credentials never leave for a node.
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import type { V1Node } from '@kubernetes/client-node';
import { DEFAULT_NAMESPACE, LOGS_READER_ACCOUNT, logsAudience, nodeInstanceName, PLURAL } from '../api.js';
import { errorText, type KbpfApi, type Kube } from '../kube.js';

export interface NodeLogsQuery {
  follow?: boolean;
  /** only the last N records (of the first read) */
  tail?: string;
  /** a duration back or a time, passed on as given: each node resolves it by its own clock */
  since?: string;
}

/** How long a requested token is valid (the API server's minimum is 10 minutes). */
const TOKEN_SECONDS = 600;

/** What the client uses to reach the log endpoints: whose tokens it requests, and its caches. */
export interface LogsAccess {
  /** the service account's namespace (where kbpf runs) and name */
  namespace: string;
  account: string;
  /** a token per node, until shortly before it expires */
  tokens: Map<string, { token: string; until: number }>;
  /** addresses of each Node, read once */
  addresses: Map<string, string[]>;
}

export function logsAccess(namespace: string = DEFAULT_NAMESPACE, account: string = LOGS_READER_ACCOUNT): LogsAccess {
  return { namespace, account, tokens: new Map(), addresses: new Map() };
}

/** An error that retrying will not mend (a refused endpoint): it ends a follower too. */
function fatal(message: string): Error {
  return Object.assign(new Error(message), { fatal: true });
}

/** The node's addresses as its Node object has them (status.addresses). */
async function nodeAddresses(kube: Kube, node: string, access: LogsAccess): Promise<string[]> {
  const hit = access.addresses.get(node);
  if (hit) return hit;
  let n: V1Node;
  try {
    n = await kube.core.readNode({ name: node });
  } catch (e) {
    throw new Error(`reading Node ${node} (to check its log endpoint): ${errorText(e)}`);
  }
  const list = (n.status?.addresses ?? []).map((a) => a.address.toLowerCase());
  access.addresses.set(node, list);
  return list;
}

/** A node's log endpoint, checked: where it is and the certificate it must present. */
export interface CheckedEndpoint {
  url: URL;
  certificate: string;
  /** SHA-256 of the certificate, hex */
  fingerprint: string;
}

/**
 * Refuses an advertised log URL that is not https on one of the node's addresses (a node that
 * could name any host would have a token sent there), or a certificate that does not parse.
 */
export async function checkEndpoint(
  kube: Kube,
  node: string,
  ep: { url: string; certificate?: string },
  access: LogsAccess,
): Promise<CheckedEndpoint> {
  let u: URL;
  try {
    u = new URL(ep.url);
  } catch {
    throw fatal(`node ${node} advertises a log endpoint that is not a URL: ${JSON.stringify(ep.url)}`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const addresses = await nodeAddresses(kube, node, access);
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || !addresses.includes(host))
    throw fatal(
      `node ${node} advertises the log endpoint ${u.origin}, which is not on one of its addresses (${addresses.join(', ') || 'none in its Node status'}): not reading it (nor sending it a token)`,
    );
  if (u.protocol !== 'https:')
    throw fatal(
      `node ${node} advertises the log endpoint ${u.origin} without TLS: not reading it (nor sending it a token)`,
    );
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(ep.certificate ?? '').fingerprint256.replace(/:/g, '').toLowerCase();
  } catch {
    throw fatal(
      `node ${node} advertises its log endpoint without a usable certificate (BpfNode status.logs.certificate)`,
    );
  }
  return { url: u, certificate: ep.certificate!, fingerprint };
}

/** The node's endpoint from its BpfNode (undefined: it serves none, or has not said yet). */
async function endpointOf(a: KbpfApi, node: string, access: LogsAccess): Promise<CheckedEndpoint | undefined> {
  let bn: Awaited<ReturnType<KbpfApi['get']>>;
  try {
    bn = await a.get(PLURAL.nodes, node);
  } catch (e) {
    throw new Error(`reading BpfNode ${node} (its log endpoint): ${errorText(e)}`);
  }
  const ep = (bn as { status?: { logs?: { url: string; certificate?: string } } } | undefined)?.status?.logs;
  return ep ? checkEndpoint(a.kube, node, ep, access) : undefined;
}

/** A short-lived token of the reader account whose one audience is `node`'s log endpoint. */
export async function tokenFor(kube: Kube, node: string, access: LogsAccess, now = Date.now()): Promise<string> {
  const hit = access.tokens.get(node);
  if (hit && hit.until > now) return hit.token;
  const audience = logsAudience(node);
  let status: { token?: string; expirationTimestamp?: Date | string } | undefined;
  try {
    const r = await kube.core.createNamespacedServiceAccountToken({
      name: access.account,
      namespace: access.namespace,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: [audience], expirationSeconds: TOKEN_SECONDS },
      },
    });
    status = r.status;
  } catch (e) {
    throw fatal(
      `requesting a token of service account ${access.namespace}/${access.account} for node ${node}'s log endpoint: ${errorText(e)} (reading logs needs create on serviceaccounts/token of that account: Role kbpf-logs-reader)`,
    );
  }
  if (!status?.token) throw fatal(`the API server answered a TokenRequest for node ${node} without a token`);
  const expires = status.expirationTimestamp
    ? new Date(status.expirationTimestamp).getTime()
    : now + TOKEN_SECONDS * 1000;
  access.tokens.set(node, { token: status.token, until: Math.max(now, expires - 60_000) });
  return status.token;
}

/** OpenSSL's words for "not the certificate that was expected" */
const CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_KBPF_CERT_PIN',
]);

/**
 * GET `path` from the node's endpoint over TLS, trusting only its pinned certificate; the token
 * goes out only once the handshake has shown that certificate. Redirects are not followed.
 */
export function pinnedGet(
  node: string,
  ep: CheckedEndpoint,
  path: string,
  token: string,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: ep.url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: ep.url.port || 443,
        path,
        method: 'GET',
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json, application/x-ndjson' },
        ca: ep.certificate,
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          cert.fingerprint256?.replace(/:/g, '').toLowerCase() === ep.fingerprint
            ? undefined
            : Object.assign(new Error('certificate differs from the pinned one'), { code: 'ERR_KBPF_CERT_PIN' }),
        agent: false,
        signal,
      },
      resolve,
    );
    req.on('error', (e: Error & { code?: string }) => {
      if (e.code && CERT_ERRORS.has(e.code))
        reject(
          Object.assign(
            fatal(
              `node ${node}'s log endpoint ${ep.url.origin} presented a certificate that is not the one its BpfNode publishes (sha256 ${ep.fingerprint.slice(0, 16)}…): not sending it a token`,
            ),
            { pin: true },
          ),
        );
      else reject(e);
    });
    req.end();
  });
}

async function bodyText(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) text += chunk;
  return text;
}

/** An endpoint's refusal as an error naming the node. */
async function refusal(node: string, ep: CheckedEndpoint, res: IncomingMessage): Promise<Error & { status?: number }> {
  const text = await bodyText(res);
  let msg = text.trim();
  try {
    msg = (JSON.parse(text) as { error?: string }).error ?? msg;
  } catch {
    /* not JSON */
  }
  return Object.assign(fatal(`node ${node} (${ep.url.origin}): ${res.statusCode} ${msg}`), { status: res.statusCode });
}

/**
 * Reads (or follows) one node's log of a deployment from the node agent's log endpoint. While
 * following, a dropped stream (agent restart, upgrade of the agent) is resumed after the last
 * record seen, from the endpoint (and certificate) the BpfNode names then.
 */
export async function nodeLogs(
  a: KbpfApi,
  deployment: string,
  node: string,
  o: NodeLogsQuery,
  emit: (r: Record<string, unknown>) => void,
  access: LogsAccess,
  signal: AbortSignal,
): Promise<void> {
  let lastSeq = 0;
  let first = true;
  let mismatches = 0;
  for (;;) {
    const ni = await a.get(PLURAL.nodeInstances, nodeInstanceName(deployment, node));
    if (!ni) {
      if (first) throw new Error(`${deployment} does not run on node ${node}`);
      return; // removed from the node while following
    }
    const ep = await endpointOf(a, node, access);
    if (!ep) {
      if (first && !o.follow)
        throw new Error(
          `node ${node}: its agent serves no logs (it runs without --logs-address, or has not reported yet)`,
        );
    } else {
      const q = new URLSearchParams();
      if (o.follow) q.set('follow', '1');
      if (first && o.tail !== undefined) q.set('tail', o.tail);
      if (first && o.since !== undefined) q.set('since', o.since);
      if (lastSeq) q.set('afterSeq', String(lastSeq));
      try {
        const token = await tokenFor(a.kube, node, access);
        const res = await pinnedGet(node, ep, `/v1/logs/${encodeURIComponent(deployment)}?${q}`, token, signal);
        mismatches = 0;
        if (res.statusCode !== 200) {
          const err = await refusal(node, ep, res);
          // following, "no such instance" is the agent not having loaded it yet (a node that
          // just joined) or any more: the instance check at the top of the loop decides
          if (err.status !== 404 || !o.follow) throw err;
          await new Promise((r) => setTimeout(r, 1000));
          if (signal.aborted) return;
          continue;
        }
        first = false;
        let buf = '';
        res.setEncoding('utf8');
        for await (const chunk of res as AsyncIterable<string>) {
          buf += chunk;
          for (;;) {
            const i = buf.indexOf('\n');
            if (i < 0) break;
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!line.trim()) continue;
            const r = JSON.parse(line) as Record<string, unknown>;
            if (typeof r.error === 'string' && r.seq === undefined) throw new Error(`node ${node}: ${r.error}`);
            if (typeof r.seq === 'number') lastSeq = Math.max(lastSeq, r.seq);
            emit(r);
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        // a certificate other than the published one: the agent may have restarted with a new
        // key a moment ago; read its BpfNode again once before giving up
        if ((e as { pin?: boolean }).pin && ++mismatches < 2) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        if ((e as { fatal?: boolean }).fatal || !o.follow)
          throw first && !(e as { fatal?: boolean }).fatal
            ? new Error(`node ${node}: reading logs from ${ep.url.origin}: ${errorText(e)}`)
            : e;
      }
    }
    if (!o.follow || signal.aborted) return;
    first = false;
    await new Promise((r) => setTimeout(r, 1000));
    if (signal.aborted) return;
  }
}

/**
 * GET a JSON view of a deployment's instance on one node from that node agent's endpoint
 * (/v1/inspect/D, /v1/maps/D): the same checks, the same kind of token.
 */
export async function nodeView(
  a: KbpfApi,
  deployment: string,
  node: string,
  path: 'inspect' | 'maps',
  query: Record<string, string>,
  access: LogsAccess,
): Promise<unknown> {
  const ni = await a.get(PLURAL.nodeInstances, nodeInstanceName(deployment, node));
  if (!ni) throw new Error(`${deployment} does not run on node ${node}`);
  const ep = await endpointOf(a, node, access);
  if (!ep)
    throw new Error(
      `node ${node}: its agent serves no endpoint (it runs without --logs-address, or has not reported yet)`,
    );
  const token = await tokenFor(a.kube, node, access);
  const res = await pinnedGet(
    node,
    ep,
    `/v1/${path}/${encodeURIComponent(deployment)}?${new URLSearchParams(query)}`,
    token,
    AbortSignal.timeout(30_000),
  );
  if (res.statusCode !== 200) throw await refusal(node, ep, res);
  return JSON.parse(await bodyText(res)) as unknown;
}
