// The cluster's trust policy: a ConfigMap `kbpf-trust-policy` in the kbpf namespace whose
// `policy.yaml` is a trust policy file (docs/signing.md) with its keys as PEM text. The
// controller checks a deployment's package against it before any node is asked to run it (and
// says `Untrusted` on the deployment when it fails); each node agent enforces it too, before
// anything of the package is loaded. No ConfigMap: no policy (every package runs).
import { parse as parseYaml } from 'yaml';
import { InvalidError } from '../errors.js';
import { parseTrustPolicy, type TrustPolicy } from '../package/trust/policy.js';
import { errorText, type Kube, statusCode } from './kube.js';

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

/** The policy in the ConfigMap, or undefined when there is none. */
export async function readClusterTrustPolicy(kube: Kube, namespace: string): Promise<ClusterTrustPolicy | undefined> {
  const where = `trust policy ConfigMap ${namespace}/${TRUST_POLICY_CONFIGMAP}`;
  let data: Record<string, string> | undefined;
  try {
    data = (await kube.core.readNamespacedConfigMap({ name: TRUST_POLICY_CONFIGMAP, namespace })).data;
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw new Error(`${where}: ${errorText(e)}`, { cause: e });
  }
  const text = data?.[TRUST_POLICY_KEY];
  if (text === undefined) throw new InvalidError(`${where} has no ${TRUST_POLICY_KEY}`);
  return { policy: await parseClusterTrustPolicy(text, where), text };
}
