/** Makes BTF-decoded values JSON-safe: bigints that fit a double exactly become numbers, others
 * decimal strings; byte buffers become hex strings. */
export function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint')
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k in v) out[k] = jsonValue((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
