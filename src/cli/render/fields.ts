// Event fields as a human reads them, from the formats `kbpf build` put in the package spec:
// 127.0.0.1 rather than [127,0,0,1] or 16777343, ::1, ports in host byte order, pointers in hex,
// bit flags as NAME|NAME, stacks as their frames. Only the human output uses this; JSON and YAML
// keep the data as decoded.
import type { EventFormat, FieldFormat } from '../../package/package-spec.js';

/** The bytes of a decoded value as the kernel had them in memory (little-endian numbers). */
function bytesOf(v: unknown, size: number): number[] | undefined {
  if (Array.isArray(v) && v.every((b) => typeof b === 'number')) {
    const per = size / v.length;
    if (!Number.isInteger(per) || per < 1 || per > 4) return undefined;
    return v.flatMap((x: number) => Array.from({ length: per }, (_, i) => (x >>> (8 * i)) & 0xff));
  }
  let n: bigint;
  if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === 'bigint') n = v;
  else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v);
  else return undefined;
  n = BigInt.asUintN(size * 8, n);
  return Array.from({ length: size }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
}

export function ipv4(bytes: readonly number[]): string {
  return bytes.join('.');
}

/** RFC 5952: lower case, the longest run of two or more zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
export function ipv6(bytes: readonly number[]): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(bytes.slice(12))}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function flags(v: unknown, names: [string, number][]): string | undefined {
  if (typeof v === 'string') return v; // the codec named an exact value already
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) return undefined;
  if (v === 0) return names.find(([, x]) => x === 0)?.[0] ?? '0';
  const out: string[] = [];
  let rest = v;
  for (const [name, bit] of names) {
    if (bit > 0 && (rest & bit) === bit) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out.join('|');
}

/** A 16-byte address as its family says: AF_INET (2, or an IP version 4) reads its first 4 bytes. */
function inetAddress(v: unknown, family: unknown): unknown {
  const b = bytesOf(v, 16);
  if (!b) return v;
  return family === 2 || family === 4 || family === 'AF_INET' ? ipv4(b.slice(0, 4)) : ipv6(b);
}

/** Stack frames on one line, innermost first. */
export const FRAME_SEPARATOR = ';';

/** The entries of a stack array bpf_get_stack filled: the first `size` bytes' worth when its size field says. */
export function stackEntries(v: readonly unknown[], size: unknown): readonly unknown[] {
  return typeof size === 'number' && Number.isInteger(size) && size >= 0 ? v.slice(0, Math.floor(size / 8)) : v;
}

/** A stack as one line: its frames (symbolized by the agent: strings) or its addresses in hex. */
function stackLine(v: unknown, f: FieldFormat & { kind: 'stack' }, event?: Record<string, unknown>): unknown {
  if (!Array.isArray(v)) return v;
  const frames = stackEntries(v, f.size ? event?.[f.size] : undefined).map((x) =>
    typeof x === 'string' && !/^\d+$/.test(x) ? x : formatField(x, { kind: 'hex' }),
  );
  while (frames.length && frames.at(-1) === '0x0') frames.pop();
  return frames.filter((x) => x !== '0x0').join(FRAME_SEPARATOR);
}

/** One field's value as text, or the value unchanged when the format does not fit it. */
export function formatField(v: unknown, f: FieldFormat, event?: Record<string, unknown>): unknown {
  switch (f.kind) {
    case 'inet':
      return inetAddress(v, event?.[f.family]);
    case 'ipv4': {
      const b = bytesOf(v, 4);
      return b ? ipv4(b) : v;
    }
    case 'ipv6': {
      const b = bytesOf(v, 16);
      return b ? ipv6(b) : v;
    }
    case 'net-port': {
      const b = bytesOf(v, 2);
      return b ? (b[0]! << 8) | b[1]! : v;
    }
    case 'port':
      return v;
    case 'hex': {
      // an array of addresses (a stack): each in hex, the unused zero entries at its end dropped
      if (Array.isArray(v)) {
        const out = v.map((x) => formatField(x, f));
        while (out.length && out.at(-1) === '0x0') out.pop();
        return out;
      }
      const b = typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' ? bytesOf(v, 8) : undefined;
      if (!b) return v;
      const n = b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
      return `0x${n.toString(16)}`;
    }
    case 'enum':
      return typeof v === 'number' ? (f.names.find(([, x]) => x === v)?.[0] ?? v) : v;
    case 'flags':
      return flags(v, f.names) ?? v;
    case 'stack':
      return stackLine(v, f, event);
    case 'stack-id':
      // the agent replaced the id by its frames (kbpf logs asks it), else the id as it is
      return Array.isArray(v) ? v.join(FRAME_SEPARATOR) : v;
    case 'text':
      return byteText(v, f.size ? event?.[f.size] : undefined);
  }
}

const TEXT_SHOWN = 4096;
const HEX_SHOWN = 64;

/**
 * A byte buffer as text: its bytes up to the length field (else up to its last non-zero byte),
 * as UTF-8 when that is what they are (tabs and line ends allowed), else in hex; long ones cut.
 */
function byteText(v: unknown, length: unknown): unknown {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) return v;
  let n = typeof length === 'number' && length >= 0 ? Math.min(length, v.length) : v.length;
  while (n > 0 && v[n - 1] === 0) n--;
  const bytes = Buffer.from(v.slice(0, n) as number[]);
  const text = bytes.toString('utf8');
  // control bytes other than tab, line feed and carriage return (9, 10, 13) make it binary
  const printable =
    !text.includes('\uFFFD') && !bytes.some((b) => (b < 32 && b !== 9 && b !== 10 && b !== 13) || b === 127);
  if (printable) return text.length > TEXT_SHOWN ? `${text.slice(0, TEXT_SHOWN)}…` : text;
  const hex = bytes.subarray(0, HEX_SHOWN).toString('hex');
  return n > HEX_SHOWN ? `0x${hex}… (${n} bytes)` : `0x${hex}`;
}

/** A decoded event with its fields formatted (fields without a format, or not fitting it, unchanged). */
export function formatEvent(event: unknown, format: EventFormat | undefined): unknown {
  if (!format || !event || typeof event !== 'object' || Array.isArray(event)) return event;
  const out: Record<string, unknown> = {};
  const fields = event as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields))
    out[k] = Object.hasOwn(format, k) ? formatField(v, format[k]!, fields) : v;
  return out;
}
