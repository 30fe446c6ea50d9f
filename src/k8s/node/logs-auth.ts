// Who may read a node's log endpoint: a bearer token the API server vouches for, through a
// TokenReview (as kubelet's webhook authentication does), for this node's audience only, of one
// of the allowed users (by default the kbpf-logs-reader service account, whose tokens `kubectl
// bpf logs` requests per node). A token made for another node, the admin's own credentials, or
// a token of any other account is refused. Answers are cached briefly (by the token's hash), so
// a follower that reconnects does not cost a review each time.
import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { logsAudience } from '../api.js';
import { errorText, type Kube } from '../kube.js';

export type Verdict = { ok: true; user: string } | { ok: false; status: 401 | 403 | 503; reason: string };

export interface LogsAuthenticatorOptions {
  kube: Kube;
  node: string;
  /** user names allowed (system:serviceaccount:NS:NAME …) */
  users: string[];
  /** how long a review's answer is kept (default 30 s) */
  cacheMs?: number;
  now?: () => number;
}

const CACHE_MAX = 1024;

export class LogsAuthenticator {
  readonly audience: string;
  readonly #api: k8s.AuthenticationV1Api;
  readonly #cache = new Map<string, { verdict: Verdict; until: number }>();

  constructor(readonly opts: LogsAuthenticatorOptions) {
    this.audience = logsAudience(opts.node);
    this.#api = opts.kube.kc.makeApiClient(k8s.AuthenticationV1Api);
  }

  /** The verdict on an Authorization header's value. */
  async check(authorization: string | undefined): Promise<Verdict> {
    const m = /^Bearer ([^\s]+)$/.exec(authorization ?? '');
    if (!m)
      return {
        ok: false,
        status: 401,
        reason: `this endpoint needs a bearer token for audience ${this.audience} (kubectl bpf logs requests one)`,
      };
    const key = createHash('sha256').update(m[1]!).digest('hex');
    const now = (this.opts.now ?? Date.now)();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.verdict;
    const verdict = await this.review(m[1]!);
    if (verdict.ok || verdict.status !== 503) {
      if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, { verdict, until: now + (this.opts.cacheMs ?? 30_000) });
    }
    return verdict;
  }

  private async review(token: string): Promise<Verdict> {
    let r: k8s.V1TokenReview;
    try {
      r = await this.#api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [this.audience] },
        },
      });
    } catch (e) {
      return { ok: false, status: 503, reason: `cannot review the token with the API server: ${errorText(e)}` };
    }
    const st = r.status;
    if (!st?.authenticated || !st.audiences?.includes(this.audience))
      return {
        ok: false,
        status: 401,
        reason: `the API server did not authenticate the token for ${this.audience}${st?.error ? `: ${st.error}` : ''}`,
      };
    const user = st.user?.username ?? '';
    if (!this.opts.users.includes(user))
      return { ok: false, status: 403, reason: `${user || 'that user'} may not read this node's logs` };
    return { ok: true, user };
  }
}
