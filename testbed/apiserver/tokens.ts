// Service account tokens, as the real API server issues and checks them — what the node log
// endpoints' authentication rests on:
//   POST /api/v1/namespaces/NS/serviceaccounts/NAME/token     TokenRequest (audiences, expirationSeconds ≥ 600)
//   POST /apis/authentication.k8s.io/v1/tokenreviews          TokenReview (spec.token, spec.audiences)
// A token is bound to its service account (deleting the account, or one of the same name made
// again, invalidates it) and to its audiences: a review that names audiences authenticates it only
// when they intersect the token's, and answers the intersection. The server's own static tokens
// (the kubeconfig's) are valid only for the API server's audience, as audience-agnostic
// authenticators are on a real server — so a user's token never passes a review for a node.
import { randomBytes } from 'node:crypto';

/** the API server's own audience (what tokens without audiences are implicitly for) */
export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const MIN_EXPIRATION_S = 600;
const MAX_EXPIRATION_S = 48 * 3600;

interface Issued {
  username: string;
  /** uid of the service account it was made for */
  uid: string;
  namespace: string;
  account: string;
  audiences: string[];
  expires: number;
}

export class TokenRequestError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown> & { spec?: Record<string, unknown> };

export class ServiceAccountTokens {
  readonly #issued = new Map<string, Issued>();
  /** tokens reviewed so far (the node endpoints' TokenReviews), for tests to count */
  readonly reviews: { audiences: string[]; authenticated: boolean; username?: string }[] = [];

  constructor(
    /** the uid of a ServiceAccount if it exists */
    readonly accountUid: (namespace: string, name: string) => string | undefined,
    /** the server's static tokens: token → user name (valid for API_AUDIENCE only) */
    readonly staticTokens: Record<string, string> = { 'test-token': 'test-admin' },
    readonly now: () => number = Date.now,
  ) {}

  /** The handler of a token path (POST), or undefined when `parts` is not one. */
  route(method: string, parts: string[]): ((body: Body) => unknown) | undefined {
    if (method !== 'POST') return undefined;
    const p = parts.join('/');
    const m = /^api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token$/.exec(p);
    if (m) return (body) => this.request(m[1]!, m[2]!, body);
    if (p === 'apis/authentication.k8s.io/v1/tokenreviews') return (body) => this.review(body);
    return undefined;
  }

  request(namespace: string, account: string, body: Body): unknown {
    const uid = this.accountUid(namespace, account);
    if (!uid) throw new TokenRequestError(404, 'NotFound', `serviceaccounts "${account}" not found`);
    const spec = body.spec ?? {};
    const audiences =
      Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences.map(String) : [API_AUDIENCE];
    const seconds = Number(spec.expirationSeconds ?? 3600);
    if (!Number.isInteger(seconds) || seconds < MIN_EXPIRATION_S)
      throw new TokenRequestError(
        422,
        'Invalid',
        `TokenRequest.authentication.k8s.io "${account}" is invalid: spec.expirationSeconds: Invalid value: ${spec.expirationSeconds}: may not specify a duration less than 10 minutes`,
      );
    const expires = this.now() + Math.min(seconds, MAX_EXPIRATION_S) * 1000;
    const token = `kbpf-test-sa.${randomBytes(24).toString('base64url')}`;
    this.#issued.set(token, {
      username: `system:serviceaccount:${namespace}:${account}`,
      uid,
      namespace,
      account,
      audiences,
      expires,
    });
    return {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      metadata: { name: account, namespace, creationTimestamp: new Date(this.now()).toISOString() },
      spec: { audiences, expirationSeconds: Math.min(seconds, MAX_EXPIRATION_S) },
      status: { token, expirationTimestamp: new Date(expires).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  review(body: Body): unknown {
    const spec = body.spec ?? {};
    const token = String(spec.token ?? '');
    const wanted = Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences.map(String) : [API_AUDIENCE];
    const answer = (status: Record<string, unknown>) => {
      this.reviews.push({
        audiences: wanted,
        authenticated: status.authenticated === true,
        ...(status.user ? { username: (status.user as { username: string }).username } : {}),
      });
      return {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        metadata: { creationTimestamp: null },
        spec,
        status,
      };
    };
    const refuse = (error: string) => answer({ authenticated: false, user: {}, error });
    const issued = this.#issued.get(token);
    const fixed = this.staticTokens[token];
    if (!issued && fixed === undefined) return refuse('invalid bearer token');
    if (issued && issued.expires <= this.now()) return refuse('invalid bearer token, token has expired');
    if (issued && this.accountUid(issued.namespace, issued.account) !== issued.uid)
      return refuse(`service account ${issued.namespace}/${issued.account} has been deleted`);
    const has = issued ? issued.audiences : [API_AUDIENCE];
    const audiences = wanted.filter((a) => has.includes(a));
    if (!audiences.length) return refuse('invalid bearer token, token audiences is invalid');
    const user = issued
      ? {
          username: issued.username,
          uid: issued.uid,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${issued.namespace}`, 'system:authenticated'],
        }
      : { username: fixed, groups: ['system:masters', 'system:authenticated'] };
    return answer({ authenticated: true, user, audiences });
  }
}
