// A node's trust policy: which keys must have signed a package before it may run, per registry
// or name pattern, and whether an unsigned package is refused (enforce) or only reported (warn).
// `checkTrust` is what `run` and `upgrade` call before the ELF reaches libbpf.
//
// Policy file (YAML or JSON):
//
//   mode: enforce              # or warn; the default of every rule
//   allowLocal: false          # packages built on this node (no registry in the name) pass unsigned
//   keys:                      # named public keys: a path (relative to the file) or PEM text
//     release: keys/release.pub
//   rules:                     # the first rule whose pattern matches the package name wins
//     - match: registry.example.com/ebpf/*
//       keys: [release]
//     - match: "*"
//       keys: [release]
//       mode: warn
//
// A pattern is matched against host/repository (the name without tag or digest): `*` matches
// within one path component, `**` across components. No matching rule: refused in enforce mode.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Invalid, KbpfError, NotFound, Refused } from '../../errors.js';
import { parseReference, referenceName } from '../reference.js';
import { loadPublicKey, type PublicKey, parsePublicKey } from './keys.js';
import { requireSigned, type SignatureSource, type Signer, type VerifyResult } from './signing.js';

export type TrustMode = 'enforce' | 'warn';

export interface TrustRule {
  /** glob on host/repository */
  match: string;
  keys: PublicKey[];
  mode: TrustMode;
}

export interface TrustPolicy {
  mode: TrustMode;
  /** a reference without a registry (built on this node) passes unsigned */
  allowLocal: boolean;
  rules: TrustRule[];
}

export type TrustDecision =
  | { trusted: true; signer: Signer; verified: VerifyResult }
  | { trusted: true; signer: undefined; reason: 'local' }
  | { trusted: false; mode: 'warn'; warning: string; error: KbpfError };

/** The policy of `kbpf agent --trust PUB…`: every package must be signed by one of these keys. */
export function policyFromKeys(keys: PublicKey[], opts: { mode?: TrustMode; allowLocal?: boolean } = {}): TrustPolicy {
  const mode = opts.mode ?? 'enforce';
  return { mode, allowLocal: opts.allowLocal ?? false, rules: [{ match: '**', keys, mode }] };
}

function globRe(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The rule for a package name (host/repository), or undefined. */
export function ruleFor(policy: TrustPolicy, name: string): TrustRule | undefined {
  return policy.rules.find((r) => globRe(r.match).test(name));
}

function invalid(where: string, why: string): never {
  throw new KbpfError(Invalid, `${where}: ${why}`);
}

/** Parses a policy file's text; key paths are relative to `baseDir`. */
export async function parseTrustPolicy(text: string, where: string, baseDir: string): Promise<TrustPolicy> {
  let v: unknown;
  try {
    v = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    invalid(where, `not YAML or JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) invalid(where, 'is not a mapping');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['mode', 'allowLocal', 'keys', 'rules'].includes(k)) invalid(where, `unknown key ${JSON.stringify(k)}`);
  const modeOf = (m: unknown, at: string, dflt: TrustMode): TrustMode => {
    if (m === undefined) return dflt;
    if (m !== 'enforce' && m !== 'warn') invalid(where, `${at} must be enforce or warn`);
    return m;
  };
  const mode = modeOf(o.mode, 'mode', 'enforce');
  if (o.allowLocal !== undefined && typeof o.allowLocal !== 'boolean')
    invalid(where, 'allowLocal must be true or false');
  const keys = new Map<string, PublicKey>();
  const keyEntries = o.keys ?? {};
  if (typeof keyEntries !== 'object' || Array.isArray(keyEntries))
    invalid(where, 'keys must be a mapping of name to key');
  for (const [name, k] of Object.entries(keyEntries as Record<string, unknown>)) {
    if (typeof k !== 'string') invalid(where, `keys.${name} must be a path or PEM text`);
    const key = k.includes('-----BEGIN')
      ? parsePublicKey(k, name, `${where}: keys.${name}`)
      : { ...(await loadPublicKey(isAbsolute(k) ? k : resolve(baseDir, k))), name };
    keys.set(name, key);
  }
  if (!Array.isArray(o.rules) || o.rules.length === 0) invalid(where, 'rules must be a non-empty list');
  const rules = o.rules.map((r, i): TrustRule => {
    const at = `rules[${i}]`;
    if (r === null || typeof r !== 'object') invalid(where, `${at} is not a mapping`);
    const rr = r as Record<string, unknown>;
    if (typeof rr.match !== 'string' || !rr.match) invalid(where, `${at}.match must be a name pattern`);
    if (!Array.isArray(rr.keys) || rr.keys.length === 0) invalid(where, `${at}.keys must list key names`);
    const ruleKeys = rr.keys.map((n) => {
      const key = typeof n === 'string' ? keys.get(n) : undefined;
      if (!key)
        invalid(
          where,
          `${at}.keys: no key named ${JSON.stringify(n)} (known: ${[...keys.keys()].join(', ') || 'none'})`,
        );
      return key;
    });
    return { match: rr.match, keys: ruleKeys, mode: modeOf(rr.mode, `${at}.mode`, mode) };
  });
  return { mode, allowLocal: o.allowLocal === true, rules };
}

export async function loadTrustPolicy(path: string): Promise<TrustPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new KbpfError(
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? NotFound : Invalid,
      `trust policy ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return parseTrustPolicy(text, `trust policy ${path}`, dirname(path));
}

/**
 * Decides whether the package `reference` (manifest `digest`) may run. Trusted: the first key
 * of the matching rule that signed it. Not trusted: in enforce mode throws (Refused: signature
 * missing or by other keys, or no rule matches; Corrupted: a trusted key signed another digest),
 * naming the digest and the keys tried; in warn mode returns the same error as a warning.
 */
export async function checkTrust(
  policy: TrustPolicy,
  reference: string,
  digest: string,
  source: SignatureSource,
): Promise<TrustDecision> {
  const ref = parseReference(reference, { defaultTag: null });
  const name = referenceName(ref);
  if (!ref.registry && policy.allowLocal) return { trusted: true, signer: undefined, reason: 'local' };
  const rule = ruleFor(policy, name);
  let error: KbpfError;
  let mode = policy.mode;
  if (!rule) {
    error = new KbpfError(Refused, `${reference}: no trust rule matches ${name} (digest ${digest}); keys tried: none`, {
      hint: 'add a rule for it to the trust policy',
    });
  } else {
    mode = rule.mode;
    try {
      const verified = await requireSigned(source, digest, rule.keys, reference);
      return { trusted: true, signer: verified.signers[0]!, verified };
    } catch (err) {
      if (!(err instanceof KbpfError)) throw err;
      error = err;
    }
  }
  if (mode === 'warn') return { trusted: false, mode: 'warn', warning: error.message, error };
  throw error;
}
