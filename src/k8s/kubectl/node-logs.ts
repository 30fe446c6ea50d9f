// Reading a deployment's log on one node from that node agent's log endpoint, the way kubectl
// reads a pod's log from its kubelet. The node instance's status advertises the endpoint's URL;
// a node writes that status, so it is not believed blindly: the URL's host must be one of the
// Node object's addresses (kubelet's, not the agent's, word), and the bearer token comes from
// the Secret the client configuration names (--token-secret, $KBPF_LOGS_TOKEN_SECRET), never
// from the status.
import type { V1Node, V1Secret } from '@kubernetes/client-node';
import { nodeInstanceName, PLURAL } from '../api.js';
import { errorText, type KbpfApi, type Kube, statusCode } from '../kube.js';

export interface NodeLogsQuery {
  follow?: boolean;
  /** only the last N records (of the first read) */
  tail?: string;
  /** a duration back or a time, passed on as given: each node resolves it by its own clock */
  since?: string;
}

/** The Secret of the log endpoints' token when the client configuration names none. */
export const DEFAULT_LOGS_TOKEN_SECRET = 'kbpf-system/kbpf-logs-token';

/** Where the client reads the log endpoints' bearer token: its own configuration, and a cache. */
export interface LogsAuth {
  /** NAMESPACE/NAME of the Secret with data.token */
  secret: string;
  /** given by the user (flag or environment): a missing Secret is an error, not "no token" */
  explicit: boolean;
  tokens: Map<string, string>;
  /** addresses of each Node, read once */
  addresses: Map<string, string[]>;
}

/** `namespace`: where kbpf runs (-n), whose kbpf-logs-token is the default Secret. */
export function logsAuth(
  secret: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  namespace?: string,
): LogsAuth {
  const given = secret ?? env.KBPF_LOGS_TOKEN_SECRET;
  const s =
    given ?? (namespace ? `${namespace}/${DEFAULT_LOGS_TOKEN_SECRET.split('/')[1]}` : DEFAULT_LOGS_TOKEN_SECRET);
  if (!/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(s)) throw new Error(`--token-secret ${s}: use NAMESPACE/NAME`);
  return { secret: s, explicit: given !== undefined, tokens: new Map(), addresses: new Map() };
}

/** The bearer token of the log endpoints (undefined: the default Secret does not exist, send none). */
async function endpointToken(kube: Kube, auth: LogsAuth): Promise<string | undefined> {
  const secret = auth.secret;
  const cache = auth.tokens;
  const hit = cache.get(secret);
  if (hit !== undefined) return hit || undefined;
  const [namespace, name] = secret.split('/', 2) as [string, string];
  let s: V1Secret;
  try {
    s = await kube.core.readNamespacedSecret({ name, namespace });
  } catch (e) {
    if (statusCode(e) === 404 && !auth.explicit) {
      cache.set(secret, '');
      return undefined;
    }
    throw new Error(`reading the log endpoint token (Secret ${secret}): ${errorText(e)}`);
  }
  const token = Buffer.from(s.data?.token ?? '', 'base64')
    .toString('utf8')
    .trim();
  cache.set(secret, token);
  return token || undefined;
}

/** The node's addresses as its Node object has them (status.addresses). */
async function nodeAddresses(kube: Kube, node: string, auth: LogsAuth): Promise<string[]> {
  const hit = auth.addresses.get(node);
  if (hit) return hit;
  let n: V1Node;
  try {
    n = await kube.core.readNode({ name: node });
  } catch (e) {
    throw new Error(`reading Node ${node} (to check its log endpoint): ${errorText(e)}`);
  }
  const list = (n.status?.addresses ?? []).map((a) => a.address.toLowerCase());
  auth.addresses.set(node, list);
  return list;
}

/**
 * Refuses an advertised log URL that is not http(s) on one of the node's addresses: a node that
 * could name any host would have the admin's token sent there.
 */
export async function checkEndpoint(kube: Kube, node: string, url: string, auth: LogsAuth): Promise<URL> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw Object.assign(new Error(`node ${node} advertises a log endpoint that is not a URL: ${JSON.stringify(url)}`), {
      fatal: true,
    });
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const addresses = await nodeAddresses(kube, node, auth);
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || !addresses.includes(host))
    throw Object.assign(
      new Error(
        `node ${node} advertises the log endpoint ${u.origin}, which is not on one of its addresses (${addresses.join(', ') || 'none in its Node status'}): not reading it (nor sending it a token)`,
      ),
      { fatal: true },
    );
  return u;
}

/**
 * Reads (or follows) one node's log of a deployment from the node agent's log endpoint, as the
 * instance status advertises it. While following, a dropped stream (agent restart, upgrade of
 * the agent) is resumed after the last record seen, from the endpoint the status names then.
 */
export async function nodeLogs(
  a: KbpfApi,
  deployment: string,
  node: string,
  o: NodeLogsQuery,
  emit: (r: Record<string, unknown>) => void,
  auth: LogsAuth,
  signal: AbortSignal,
): Promise<void> {
  let lastSeq = 0;
  let first = true;
  for (;;) {
    const ni = await a.get(PLURAL.nodeInstances, nodeInstanceName(deployment, node));
    if (!ni) {
      if (first) throw new Error(`${deployment} does not run on node ${node}`);
      return; // removed from the node while following
    }
    const ep = ni.status?.logs;
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
      const base = await checkEndpoint(a.kube, node, ep.url, auth);
      const token = await endpointToken(a.kube, auth);
      try {
        const res = await fetch(`${base.origin}/v1/logs/${encodeURIComponent(deployment)}?${q}`, {
          headers: token ? { Authorization: `Bearer ${token}` } : {},
          redirect: 'error', // a token is never carried elsewhere
          signal,
        });
        if (!res.ok) {
          const text = await res.text();
          let msg = text.trim();
          try {
            msg = (JSON.parse(text) as { error?: string }).error ?? msg;
          } catch {
            /* not JSON */
          }
          if (res.status === 404 && !first) return;
          throw Object.assign(new Error(`node ${node} (${ep.url}): ${res.status} ${msg}`), { fatal: true });
        }
        first = false;
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
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
        if ((e as { fatal?: boolean }).fatal || !o.follow)
          throw first ? new Error(`node ${node}: reading logs from ${ep.url}: ${errorText(e)}`) : e;
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
 * (/v1/inspect/D, /v1/maps/D): the same checks of the advertised URL, the same token.
 */
export async function nodeView(
  a: KbpfApi,
  deployment: string,
  node: string,
  path: 'inspect' | 'maps',
  query: Record<string, string>,
  auth: LogsAuth,
): Promise<unknown> {
  const ni = await a.get(PLURAL.nodeInstances, nodeInstanceName(deployment, node));
  if (!ni) throw new Error(`${deployment} does not run on node ${node}`);
  const ep = ni.status?.logs;
  if (!ep)
    throw new Error(
      `node ${node}: its agent serves no endpoint (it runs without --logs-address, or has not reported yet)`,
    );
  const base = await checkEndpoint(a.kube, node, ep.url, auth);
  const token = await endpointToken(a.kube, auth);
  const res = await fetch(`${base.origin}/v1/${path}/${encodeURIComponent(deployment)}?${new URLSearchParams(query)}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    redirect: 'error',
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) {
    let msg = text.trim();
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? msg;
    } catch {
      /* not JSON */
    }
    throw new Error(`node ${node} (${ep.url}): ${res.status} ${msg}`);
  }
  return JSON.parse(text) as unknown;
}
