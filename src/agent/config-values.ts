// Config variables arrive as strings from the command line (--set pid=42) or as JSON values;
// this turns them into what the BTF codec of the variable expects, and says clearly when a
// value cannot be one.

import { InvalidError } from '../errors.js';
import type { ConfigVarSpec } from '../package/package-spec.js';

const INT_RE = /^[-+]?(0x[0-9a-f]+|0o[0-7]+|0b[01]+|\d+)$/i;

function isCharArray(type: string): boolean {
  return /\bchar\s*\[\d+\]$/.test(type);
}

function isBool(type: string): boolean {
  return /\b(_Bool|bool)$/.test(type);
}

export function coerceConfigValue(v: ConfigVarSpec, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (isCharArray(v.type)) return value;
  if (isBool(v.type)) {
    if (/^(true|1|yes|on)$/i.test(value)) return true;
    if (/^(false|0|no|off)$/i.test(value)) return false;
    throw new InvalidError(`config variable ${v.name} (${v.type}): "${value}" is not a boolean (true/false)`);
  }
  if (INT_RE.test(value)) {
    const neg = value.startsWith('-');
    const digits = value.replace(/^[-+]/, '');
    const big = BigInt(digits);
    const n = neg ? -big : big;
    return v.size > 4 ? n : Number(n);
  }
  if (/\b(float|double)$/.test(v.type) && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  if (/\[\d+\]$/.test(v.type) || /^(struct|union)\b/.test(v.type.replace(/^(const |volatile )+/, ''))) {
    try {
      return JSON.parse(value);
    } catch {
      throw new InvalidError(
        `config variable ${v.name} (${v.type}): expected JSON for a structured value, got "${value}"`,
      );
    }
  }
  // enums: the enumerator name
  return value;
}

/** Checks names and coerces values; returns the full set (defaults + given). */
export function resolveConfig(vars: ConfigVarSpec[], given: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(given)) {
    const v = vars.find((x) => x.name === k);
    if (!v) {
      throw new InvalidError(
        `unknown config variable "${k}"; this package has: ${vars.map((x) => `${x.name} (${x.type})`).join(', ') || 'none'}`,
      );
    }
    out[k] = coerceConfigValue(v, val);
  }
  return out;
}
