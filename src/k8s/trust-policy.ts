// The cluster's trust policy: a ConfigMap `kbpf-trust-policy` in the kbpf namespace whose
// `policy.yaml` is a trust policy file (docs/signing.md) with its keys as PEM text. The
// controller checks a deployment's package against it before any node is asked to run it (and
// says `Untrusted` on the deployment when it fails); each node agent enforces it too, before
// anything of the package is loaded. No ConfigMap: no policy (every package runs). Both keep it
// from a watch (TrustPolicyWatch), not a read per reconcile.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { InvalidError } from '../errors.js';
import { parseTrustPolicy, type TrustPolicy } from '../package/trust/policy.js';
import type { ObjectMeta } from './api.js';
import type { Kube } from './kube.js';
import { apiListWatch, Watcher } from './runtime/watcher.js';

export const TRUST_POLICY_CONFIGMAP = 'kbpf-trust-policy';
export const TRUST_POLICY_KEY = 'policy.yaml';

export interface ClusterTrustPolicy {
  policy: TrustPolicy;
  /** the policy's text, to tell one version from the next */
  text: string;
}

/** Parses the ConfigMap's policy text: keys must be PEM text (a node has no files of the cluster's). */
export async function parseClusterTrustPolicy(text: string, where: string): Promise<TrustPolicy> {
  let v: unknown;
  try {
    v = parseYaml(text, { maxAliasCount: 100 });
  } catch {
    v = undefined; // parseTrustPolicy says what is wrong
  }
  const keys = (v as { keys?: unknown } | undefined)?.keys;
  if (keys && typeof keys === 'object')
    for (const [name, k] of Object.entries(keys))
      if (typeof k === 'string' && !k.includes('-----BEGIN'))
        throw new InvalidError(`${where}: keys.${name} must be PEM text (a path means nothing in the cluster)`);
  return parseTrustPolicy(text, where, '/');
}

type ConfigMap = V1ConfigMap & { metadata: ObjectMeta };

/**
 * The cluster's trust policy as a watch of its ConfigMap keeps it, so that reconcilers read it
 * without a request each time (a change arrives as an event, and `onChange` says so). `read`
 * answers the policy, undefined for none, or the error of one that does not parse.
 */
export class TrustPolicyWatch {
  #current: Promise<ClusterTrustPolicy | undefined> = Promise.resolve(undefined);
  readonly #watcher: Watcher<ConfigMap>;

  constructor(
    readonly kube: Kube,
    readonly namespace: string,
    opts: { log?: (msg: string) => void; onChange?: () => void } = {},
  ) {
    const where = `trust policy ConfigMap ${namespace}/${TRUST_POLICY_CONFIGMAP}`;
    const fieldSelector = `metadata.name=${TRUST_POLICY_CONFIGMAP}`;
    const set = (cm: ConfigMap | undefined): void => {
      const text = cm?.data?.[TRUST_POLICY_KEY];
      this.#current = !cm
        ? Promise.resolve(undefined)
        : text === undefined
          ? Promise.reject(new InvalidError(`${where} has no ${TRUST_POLICY_KEY}`))
          : parseClusterTrustPolicy(text, where).then((policy) => ({ policy, text }));
      this.#current.catch(() => undefined); // read() answers the failure
      opts.onChange?.();
    };
    this.#watcher = new Watcher<ConfigMap>(
      apiListWatch<ConfigMap>(kube, {
        path: `/api/v1/namespaces/${namespace}/configmaps`,
        fieldSelector,
        list: async () => {
          const r = await kube.core.listNamespacedConfigMap({ namespace, fieldSelector });
          return { items: r.items as ConfigMap[], resourceVersion: r.metadata?.resourceVersion ?? '' };
        },
      }),
      (e) => {
        if (e.type === 'restarted') set(e.objects.find((o) => o.metadata.name === TRUST_POLICY_CONFIGMAP));
        else if (e.object.metadata.name === TRUST_POLICY_CONFIGMAP) set(e.type === 'applied' ? e.object : undefined);
      },
      { what: `configmap ${TRUST_POLICY_CONFIGMAP}`, ...(opts.log ? { log: opts.log } : {}) },
    );
  }

  /** Resolves once the ConfigMap has been listed. */
  start(): Promise<void> {
    return this.#watcher.start();
  }

  stop(): void {
    this.#watcher.stop();
  }

  read(): Promise<ClusterTrustPolicy | undefined> {
    return this.#current;
  }
}
