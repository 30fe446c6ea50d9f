// Values in test cases: the notations a case may write (IPv4/IPv6 addresses and htons()/htonl()
// for the network-order fields of BPF structs, verdict names), and matching a decoded value
// against what a case expects (the fields and elements given must match; the rest is free).
import { isIPv4, isIPv6 } from 'node:net';
import { constants as osConstants } from 'node:os';
import { InvalidError } from '../errors.js';
import { ipv6Bytes } from './packet.js';

export const RETURN_NAMES: Record<string, number> = {
  XDP_ABORTED: 0,
  XDP_DROP: 1,
  XDP_PASS: 2,
  XDP_TX: 3,
  XDP_REDIRECT: 4,
  TC_ACT_UNSPEC: 0xffffffff,
  TC_ACT_OK: 0,
  TC_ACT_RECLASSIFY: 1,
  TC_ACT_SHOT: 2,
  TC_ACT_PIPE: 3,
  TC_ACT_STOLEN: 4,
  TC_ACT_QUEUED: 5,
  TC_ACT_REPEAT: 6,
  TC_ACT_REDIRECT: 7,
  SK_DROP: 0,
  SK_PASS: 1,
};

const PREFIX_OF_TYPE: Record<string, string> = {
  xdp: 'XDP_',
  sched_cls: 'TC_ACT_',
  sched_act: 'TC_ACT_',
  sk_msg: 'SK_',
  sk_skb: 'SK_',
};

/** The r0 a case expects, as an unsigned 32-bit number. */
export function expectedReturn(v: number | string, where: string): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 32)
      throw new InvalidError(`${where}: ${v} is not a 32-bit r0`);
    return v >>> 0;
  }
  const n = RETURN_NAMES[v];
  if (n !== undefined) return n;
  if (/^-?(0x[0-9a-f]+|\d+)$/i.test(v)) return expectedReturn(Number(v), where);
  throw new InvalidError(
    `${where}: unknown return value ${v} (a number or one of ${Object.keys(RETURN_NAMES).join(' ')})`,
  );
}

/** An expected cgroup retval: a number or a negative errno name (-ECONNREFUSED, -EPERM). */
export function expectedRetval(v: number | string, where: string): number {
  if (typeof v === 'number' || /^-?(0x[0-9a-f]+|\d+)$/i.test(v)) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31)
      throw new InvalidError(`${where}: ${v} is not a 32-bit int`);
    return n;
  }
  const m = /^-(E[A-Z0-9]+)$/.exec(v);
  const errno = m ? (osConstants.errno as Record<string, number>)[m[1]!] : undefined;
  if (errno === undefined)
    throw new InvalidError(`${where}: ${v} is neither a number nor a negative errno name (-ECONNREFUSED)`);
  return -errno;
}

/** A cgroup retval for people: "-111 (-ECONNREFUSED)". */
export function showRetval(n: number): string {
  const name = n < 0 && Object.entries(osConstants.errno).find(([, e]) => e === -n)?.[0];
  return name ? `${n} (-${name})` : `${n}`;
}

/** r0 for people: "2 (XDP_PASS)" when the program type names it. */
export function showReturn(r0: number, type: string): string {
  const prefix = PREFIX_OF_TYPE[type];
  const name = prefix && Object.entries(RETURN_NAMES).find(([k, n]) => k.startsWith(prefix) && n === r0)?.[0];
  const shown = r0 >= 0x80000000 ? `${r0 - 2 ** 32}` : `${r0}`;
  return name ? `${shown} (${name})` : shown;
}

const swap16 = (n: number) => ((n & 0xff) << 8) | ((n >> 8) & 0xff);
const swap32 = (n: number) => new DataView(Uint32Array.of(n).buffer).getUint32(0, false);

/**
 * A case's value with its notations resolved: "10.0.0.1" → the u32 an IPv4 address is in memory
 * (network order), "fd00::1" → its four u32 words, "htons(8080)" / "htonl(N)" → the number in
 * network order. Everything else is left for the BTF codec.
 */
export function resolveNotations(v: unknown): unknown {
  if (typeof v === 'string') {
    if (isIPv4(v)) return new DataView(Uint8Array.from(v.split('.').map(Number)).buffer).getUint32(0, true);
    if (isIPv6(v) && v.includes(':')) {
      const b = ipv6Bytes(v, v);
      return [0, 1, 2, 3].map((i) => new DataView(b.buffer).getUint32(4 * i, true));
    }
    const m = /^hton([sl])\((0x[0-9a-f]+|\d+)\)$/i.exec(v);
    if (m) {
      const n = Number(m[2]);
      return m[1] === 's' ? swap16(n) : swap32(n);
    }
    return v;
  }
  if (Array.isArray(v)) return v.map(resolveNotations);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveNotations(x)]));
  return v;
}

function asBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (typeof v === 'string' && /^-?(0x[0-9a-f]+|\d+)$/i.test(v))
    return v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v);
  return undefined;
}

/**
 * Where `actual` (a decoded value) differs from `expected` (notations resolved): a list of
 * "path: expected X, got Y". Objects: the keys given; arrays: the elements given (a prefix).
 */
export function mismatches(expected: unknown, actual: unknown, path = ''): string[] {
  const at = path || 'value';
  if (expected === null || expected === undefined)
    return actual === undefined ? [] : [`${at}: expected none, got ${show(actual)}`];
  if (Array.isArray(expected)) {
    const a = actual instanceof Uint8Array ? [...actual] : actual;
    if (!Array.isArray(a)) return [`${at}: expected ${show(expected)}, got ${show(actual)}`];
    if (a.length < expected.length) return [`${at}: expected ${expected.length} elements, got ${a.length}`];
    return expected.flatMap((e, i) => mismatches(e, a[i], `${path}[${i}]`));
  }
  if (typeof expected === 'object') {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual))
      return [`${at}: expected ${show(expected)}, got ${show(actual)}`];
    return Object.entries(expected).flatMap(([k, e]) => {
      if (!(k in actual)) return [`${path ? `${path}.` : ''}${k}: no such field`];
      return mismatches(e, (actual as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    });
  }
  const eb = asBigInt(expected);
  const ab = asBigInt(actual);
  if (eb !== undefined && ab !== undefined) {
    // a negative number written for an unsigned field matches its two's complement
    const same = eb === ab || (eb < 0n && (ab === BigInt.asUintN(64, eb) || ab === BigInt.asUintN(32, eb)));
    return same ? [] : [`${at}: expected ${show(expected)}, got ${show(actual)}`];
  }
  return expected === actual ? [] : [`${at}: expected ${show(expected)}, got ${show(actual)}`];
}

/** A decoded value as compact JSON (bigints as numbers, byte arrays as hex). */
export function show(v: unknown): string {
  if (v === undefined) return 'none';
  return JSON.stringify(plain(v));
}

/** JSON-safe data of a decoded value (bigint as a number when exact, else as a string). */
export function plain(v: unknown): unknown {
  if (typeof v === 'bigint')
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}
