// Pull secrets: which Secrets kbpf reads for registry credentials, and which deployments may use
// each. A Secret is a pull secret only when it carries the label `kbpf.io/pull-secret: "true"`:
// node agents and the controller read Secrets only through a list or watch selected by that
// label, so an unlabelled Secret in the same namespace is never read by kbpf. (RBAC cannot select
// by label: an account that may list Secrets may list them all, so the chart gives pull secrets a
// namespace of their own — docs/kubernetes.md.) And a pull secret names the deployments allowed
// to use it in its annotation `kbpf.io/allowed-deployments` (names or `*` patterns, comma
// separated; none: no deployment): the controller refuses to roll out a deployment whose Secret
// does not allow it (condition PullSecretRefused), and each node refuses it too.
import type { V1Secret } from '@kubernetes/client-node';
import { InvalidError, KbpfError, NotFoundError, Refused, UnavailableError } from '../errors.js';
import { type Credentials, credentialsFromDockerConfig } from '../package/auth.js';
import type { ObjectMeta } from './api.js';
import { errorText, type Kube } from './kube.js';
import { Store } from './runtime/store.js';
import { apiListWatch, Watcher } from './runtime/watcher.js';

export const LABEL_PULL_SECRET = 'kbpf.io/pull-secret';
export const PULL_SECRET_SELECTOR = `${LABEL_PULL_SECRET}=true`;
export const ANNOTATION_ALLOWED_DEPLOYMENTS = 'kbpf.io/allowed-deployments';

export type PullSecret = V1Secret & { metadata: ObjectMeta };

/** The annotation's entries: deployment names, or patterns where `*` stands for any characters. */
export function allowedDeployments(secret: V1Secret): string[] {
  return (secret.metadata?.annotations?.[ANNOTATION_ALLOWED_DEPLOYMENTS] ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Does the pull secret allow `deployment` to use it? */
export function allowsDeployment(secret: V1Secret, deployment: string): boolean {
  return allowedDeployments(secret).some((p) => {
    if (!p.includes('*')) return p === deployment;
    const re = new RegExp(`^${p.split('*').map(escapeRegExp).join('.*')}$`);
    return re.test(deployment);
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Why `deployment` may not use the pull secret `namespace/name` (`secret` as a label-selected
 * read found it, undefined when it found none), or undefined when it may.
 */
export function pullSecretRefusal(
  secret: V1Secret | undefined,
  where: { namespace: string; name: string },
  deployment: string,
): KbpfError | undefined {
  const what = `pull secret ${where.namespace}/${where.name}`;
  if (secret?.metadata?.labels?.[LABEL_PULL_SECRET] !== 'true')
    return new NotFoundError(
      `${what}: no Secret of that name labelled ${PULL_SECRET_SELECTOR} (kbpf reads only labelled Secrets: kubectl label secret -n ${where.namespace} ${where.name} ${PULL_SECRET_SELECTOR})`,
    );
  if (!allowsDeployment(secret, deployment)) {
    const allowed = allowedDeployments(secret);
    return new KbpfError(
      Refused,
      `${what} does not allow deployment ${deployment} (its ${ANNOTATION_ALLOWED_DEPLOYMENTS}: ${allowed.length ? JSON.stringify(allowed.join(',')) : 'none'}; add ${deployment} or a pattern matching it)`,
    );
  }
  return undefined;
}

/** The registry credentials of a pull secret for `deployment`; throws the refusal when it may not use it. */
export function pullCredentials(
  secret: V1Secret | undefined,
  where: { namespace: string; name: string },
  deployment: string,
): Record<string, Credentials> {
  const refused = pullSecretRefusal(secret, where, deployment);
  if (refused) throw refused;
  const what = `pull secret ${where.namespace}/${where.name}`;
  const raw = secret!.data?.['.dockerconfigjson'];
  if (!raw) throw new InvalidError(`${what} has no .dockerconfigjson`);
  return credentialsFromDockerConfig(Buffer.from(raw, 'base64').toString('utf8'), what);
}

/**
 * One pull secret by name, through a list selected by the pull-secret label and the name (what
 * a node agent does before a pull): undefined when there is no labelled Secret of that name.
 */
export async function readPullSecret(kube: Kube, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    const r = await kube.core.listNamespacedSecret({
      namespace,
      labelSelector: PULL_SECRET_SELECTOR,
      fieldSelector: `metadata.name=${name}`,
    });
    return r.items.find((s) => s.metadata?.name === name);
  } catch (e) {
    throw new UnavailableError(`pull secret ${namespace}/${name}: ${errorText(e)}`, { cause: e });
  }
}

/** The labelled Secrets of a namespace as a watch keeps them (the controller's view; no request per read). */
export class PullSecretWatch {
  readonly store = new Store<PullSecret>();
  readonly #watcher: Watcher<PullSecret>;

  constructor(
    readonly kube: Kube,
    readonly namespace: string,
    opts: { log?: (msg: string) => void; onChange?: (name: string) => void } = {},
  ) {
    this.#watcher = new Watcher<PullSecret>(
      apiListWatch<PullSecret>(kube, {
        path: `/api/v1/namespaces/${namespace}/secrets`,
        labelSelector: PULL_SECRET_SELECTOR,
        list: async () => {
          const r = await kube.core.listNamespacedSecret({ namespace, labelSelector: PULL_SECRET_SELECTOR });
          return { items: r.items as PullSecret[], resourceVersion: r.metadata?.resourceVersion ?? '' };
        },
      }),
      (e) => {
        for (const c of this.store.apply(e)) opts.onChange?.((c.after ?? c.before)!.metadata.name);
      },
      { what: `pull secrets in ${namespace}`, ...(opts.log ? { log: opts.log } : {}) },
    );
  }

  start(): Promise<void> {
    return this.#watcher.start();
  }

  stop(): void {
    this.#watcher.stop();
  }

  get(name: string): PullSecret | undefined {
    return this.store.get(`${this.namespace}/${name}`);
  }
}
