// Reading a deployment's log on one node from that node agent's log endpoint, the way kubectl
// reads a pod's log from its kubelet: the endpoint (and the Secret holding its token) is the one
// the node instance's status advertises.
import type { V1Secret } from '@kubernetes/client-node';
import { nodeInstanceName, PLURAL } from '../api.js';
import { errorText, type KbpfApi, type Kube } from '../kube.js';

export interface NodeLogsQuery {
  follow?: boolean;
  /** only the last N records (of the first read) */
  tail?: string;
  /** a duration back or a time, passed on as given: each node resolves it by its own clock */
  since?: string;
}

/** Bearer tokens of log endpoints, per Secret (NAMESPACE/NAME), read once. */
async function endpointToken(
  kube: Kube,
  secret: string | undefined,
  cache: Map<string, string>,
): Promise<string | undefined> {
  if (!secret) return undefined;
  const hit = cache.get(secret);
  if (hit !== undefined) return hit;
  const [namespace, name] = secret.split('/', 2) as [string, string];
  let s: V1Secret;
  try {
    s = await kube.core.readNamespacedSecret({ name, namespace });
  } catch (e) {
    throw new Error(`reading the log endpoint token (Secret ${secret}): ${errorText(e)}`);
  }
  const token = Buffer.from(s.data?.token ?? '', 'base64')
    .toString('utf8')
    .trim();
  cache.set(secret, token);
  return token;
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
  tokens: Map<string, string>,
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
      const token = await endpointToken(a.kube, ep.tokenSecret, tokens);
      try {
        const res = await fetch(`${ep.url}/v1/logs/${encodeURIComponent(deployment)}?${q}`, {
          headers: token ? { Authorization: `Bearer ${token}` } : {},
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
