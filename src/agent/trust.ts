// The agent's side of package trust: which policy it enforces (kbpf agent --trust, --trust-policy,
// or the cluster's policy resource) and the node's own key, which vouches for packages built on
// this node. `trustCheck` is the check step the agent puts first in every plan that opens a
// package's objects (run, upgrade, rollback, start): nothing reaches libbpf before it passed.
//
// A package is *local* when its store reference names no registry (kbpf build, or a pull stored
// under a local name). A local package runs when the policy allows local packages explicitly
// (allowLocal), or when the node key or a key of the rule matching its name signed it; it is
// never let through silently.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KbpfError } from '../errors.js';
import type { LayoutStore } from '../package/layout-store.js';
import { parseReference, referenceName } from '../package/reference.js';
import { loadPublicKey, type PublicKey, writeKeyPair } from '../package/trust/keys.js';
import { checkTrust, type TrustDecision, type TrustPolicy } from '../package/trust/policy.js';
import { storeSignatures } from '../package/trust/signing.js';

export interface AgentTrust {
  policy: TrustPolicy;
  /** the node's own public key: trusted for local packages only */
  nodeKey?: PublicKey;
  /** where the node's private key is (for the hint of a refusal) */
  nodeKeyPath?: string;
}

/** The node key pair of an agent: <stateDir>/node.key (0600) and node.pub. */
export function nodeKeyPaths(stateDir: string): { privatePath: string; publicPath: string } {
  return { privatePath: join(stateDir, 'node.key'), publicPath: join(stateDir, 'node.pub') };
}

/** Loads the node's public key, writing a new pair first when the node has none. */
export async function ensureNodeKey(stateDir: string): Promise<PublicKey> {
  const { privatePath, publicPath } = nodeKeyPaths(stateDir);
  if (!existsSync(privatePath) || !existsSync(publicPath)) await writeKeyPair('node', stateDir, { force: true });
  return { ...(await loadPublicKey(publicPath)), name: 'node' };
}

/** The policy a local package is held to: each rule also trusts the node key, and a last rule trusts it alone. */
function localPolicy(trust: AgentTrust): TrustPolicy {
  const node = trust.nodeKey;
  if (!node) return trust.policy;
  const { policy } = trust;
  return {
    ...policy,
    rules: [
      ...policy.rules.map((r) => ({ ...r, keys: [node, ...r.keys.filter((k) => k.keyId !== node.keyId)] })),
      { match: '**', keys: [node], mode: policy.mode },
    ],
  };
}

export interface TrustOutcome {
  /** who vouched for it ("release (sha256:…)", "allowed local package") */
  trustedBy?: string;
  /** warn mode: why it would have been refused */
  warning?: string;
}

/**
 * Checks that package `reference` (a store reference) with manifest `digest` may run under
 * `trust`. Throws Refused (signature missing, by other keys, no rule) or Corrupted (a trusted
 * key signed another digest) naming the digest and the keys tried; in warn mode returns the
 * warning instead.
 */
export async function trustCheck(
  trust: AgentTrust,
  store: LayoutStore,
  reference: string,
  digest: string,
): Promise<TrustOutcome> {
  const ref = parseReference(reference, { defaultTag: null });
  const name = referenceName(ref);
  const local = !ref.registry;
  const policy = local ? localPolicy(trust) : trust.policy;
  let decision: TrustDecision;
  try {
    decision = await checkTrust(policy, reference, digest, storeSignatures(store, name));
  } catch (e) {
    if (local && e instanceof KbpfError && !trust.policy.allowLocal)
      throw new KbpfError(e.kind, `${e.message} (a package built on this node)`, {
        cause: e,
        hint: `sign it with the node key (kbpf build signs with it; or kbpf sign --key ${trust.nodeKeyPath ?? 'KEY'} ${reference}), or start the agent with --allow-local`,
        ...(e.details !== undefined ? { details: e.details } : {}),
      });
    throw e;
  }
  if (!decision.trusted) return { warning: decision.warning };
  if (decision.signer === undefined) return { trustedBy: 'allowed local package (--allow-local)' };
  return { trustedBy: `${decision.signer.name} (${decision.signer.keyId})` };
}
