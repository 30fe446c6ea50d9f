// Packets of test cases: hex text, or a small builder of Ethernet / IPv4 / IPv6 / TCP / UDP
// headers and a payload, with lengths and checksums filled in unless given.
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidError } from '../errors.js';

export interface EthSpec {
  src?: string;
  dst?: string;
  /** ethertype: a number, or ipv4 / ipv6 / arp (default: from the next header) */
  type?: number | string;
}
export interface Ipv4Spec {
  src?: string;
  dst?: string;
  ttl?: number;
  tos?: number;
  id?: number;
  /** protocol number (default: from the next header) */
  proto?: number;
  /** the header checksum (default: computed) */
  checksum?: number;
}
export interface Ipv6Spec {
  src?: string;
  dst?: string;
  hopLimit?: number;
  next?: number;
}
export interface TcpSpec {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  /** "SYN", "SYN,ACK", … or the flag bits */
  flags?: string | number;
  window?: number;
}
export interface UdpSpec {
  sport?: number;
  dport?: number;
}
export interface PacketBuilder {
  eth?: EthSpec;
  ipv4?: Ipv4Spec;
  ipv6?: Ipv6Spec;
  tcp?: TcpSpec;
  udp?: UdpSpec;
  /** payload as text (UTF-8) */
  payload?: string;
  /** payload as hex */
  payloadHex?: string;
}
export type PacketSpec = string | PacketBuilder;

const BUILDER_KEYS = ['eth', 'ipv4', 'ipv6', 'tcp', 'udp', 'payload', 'payloadHex'];
const ETHERTYPES: Record<string, number> = { ipv4: 0x0800, ipv6: 0x86dd, arp: 0x0806, vlan: 0x8100 };
const TCP_FLAGS: Record<string, number> = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 };

/** Bytes from hex text: "45 00 …", "0x4500…", with spaces, colons and newlines ignored. */
export function parseHex(text: string, what: string): Uint8Array {
  const clean = text.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new InvalidError(`${what}: not hex bytes: ${JSON.stringify(text)}`);
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function mac(s: string | undefined, what: string, dflt: number[]): number[] {
  if (s === undefined) return dflt;
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p)))
    throw new InvalidError(`${what}: not a MAC address: ${s}`);
  return parts.map((p) => Number.parseInt(p, 16));
}

function ipv4(s: string | undefined, what: string, dflt: string): number[] {
  const a = s ?? dflt;
  if (!isIPv4(a)) throw new InvalidError(`${what}: not an IPv4 address: ${a}`);
  return a.split('.').map(Number);
}

/** The 16 bytes of an IPv6 address. */
export function ipv6Bytes(s: string, what: string): Uint8Array {
  if (!isIPv6(s)) throw new InvalidError(`${what}: not an IPv6 address: ${s}`);
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = Number.parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

function sum16(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) s += b[b.length - 1]! << 8;
  return s;
}

function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return ~x & 0xffff;
}

function u16(n: number | undefined, what: string, dflt = 0): number {
  const v = n ?? dflt;
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new InvalidError(`${what}: ${v} is not a 16-bit number`);
  return v;
}

function tcpFlags(f: string | number | undefined): number {
  if (f === undefined) return TCP_FLAGS.ACK!;
  if (typeof f === 'number') return f & 0xff;
  let n = 0;
  for (const name of f.split(/[,|\s]+/).filter(Boolean)) {
    const bit = TCP_FLAGS[name.toUpperCase()];
    if (bit === undefined)
      throw new InvalidError(`tcp.flags: unknown flag ${name} (${Object.keys(TCP_FLAGS).join(' ')})`);
    n |= bit;
  }
  return n;
}

function transport(p: PacketBuilder, payload: Uint8Array, pseudo: (proto: number, len: number) => number): Uint8Array {
  if (p.tcp && p.udp) throw new InvalidError('a packet has tcp or udp, not both');
  if (p.udp) {
    const b = Buffer.alloc(8 + payload.length);
    b.writeUInt16BE(u16(p.udp.sport, 'udp.sport', 40000), 0);
    b.writeUInt16BE(u16(p.udp.dport, 'udp.dport', 53), 2);
    b.writeUInt16BE(b.length, 4);
    b.set(payload, 8);
    b.writeUInt16BE(fold(sum16(b, pseudo(17, b.length))) || 0xffff, 6);
    return b;
  }
  if (p.tcp) {
    const b = Buffer.alloc(20 + payload.length);
    b.writeUInt16BE(u16(p.tcp.sport, 'tcp.sport', 40000), 0);
    b.writeUInt16BE(u16(p.tcp.dport, 'tcp.dport', 80), 2);
    b.writeUInt32BE((p.tcp.seq ?? 1) >>> 0, 4);
    b.writeUInt32BE((p.tcp.ack ?? 0) >>> 0, 8);
    b[12] = 5 << 4;
    b[13] = tcpFlags(p.tcp.flags);
    b.writeUInt16BE(u16(p.tcp.window, 'tcp.window', 65535), 14);
    b.set(payload, 20);
    b.writeUInt16BE(fold(sum16(b, pseudo(6, b.length))), 16);
    return b;
  }
  return payload;
}

/** The bytes of a packet spec (hex text or a builder). */
export function buildPacket(spec: PacketSpec, what = 'packet'): Uint8Array {
  if (typeof spec === 'string') return parseHex(spec, what);
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw new InvalidError(`${what}: hex text or an object with ${BUILDER_KEYS.join(', ')}`);
  const unknown = Object.keys(spec).find((k) => !BUILDER_KEYS.includes(k));
  if (unknown) throw new InvalidError(`${what}: unknown header "${unknown}" (known: ${BUILDER_KEYS.join(', ')})`);
  if (spec.ipv4 && spec.ipv6) throw new InvalidError(`${what}: ipv4 or ipv6, not both`);
  const payload = spec.payloadHex
    ? parseHex(spec.payloadHex, `${what}.payloadHex`)
    : new TextEncoder().encode(spec.payload ?? '');
  const proto = spec.tcp ? 6 : spec.udp ? 17 : 0;
  let l3: Uint8Array = payload;
  let ethType: number | undefined;
  if (spec.ipv4) {
    const s = ipv4(spec.ipv4.src, `${what}.ipv4.src`, '10.0.0.1');
    const d = ipv4(spec.ipv4.dst, `${what}.ipv4.dst`, '10.0.0.2');
    const l4 = transport(spec, payload, (p, len) => sum16(Uint8Array.from([...s, ...d, 0, p, len >> 8, len & 0xff])));
    const b = Buffer.alloc(20 + l4.length);
    b[0] = 0x45;
    b[1] = spec.ipv4.tos ?? 0;
    b.writeUInt16BE(b.length, 2);
    b.writeUInt16BE(u16(spec.ipv4.id, `${what}.ipv4.id`), 4);
    b[8] = spec.ipv4.ttl ?? 64;
    b[9] = spec.ipv4.proto ?? proto;
    b.set(s, 12);
    b.set(d, 16);
    b.writeUInt16BE(spec.ipv4.checksum ?? fold(sum16(b.subarray(0, 20))), 10);
    b.set(l4, 20);
    l3 = b;
    ethType = 0x0800;
  } else if (spec.ipv6) {
    const s = ipv6Bytes(spec.ipv6.src ?? 'fd00::1', `${what}.ipv6.src`);
    const d = ipv6Bytes(spec.ipv6.dst ?? 'fd00::2', `${what}.ipv6.dst`);
    const l4 = transport(spec, payload, (p, len) =>
      sum16(Uint8Array.from([...s, ...d, 0, 0, len >> 8, len & 0xff, 0, 0, 0, p])),
    );
    const b = Buffer.alloc(40 + l4.length);
    b[0] = 0x60;
    b.writeUInt16BE(l4.length, 4);
    b[6] = spec.ipv6.next ?? proto;
    b[7] = spec.ipv6.hopLimit ?? 64;
    b.set(s, 8);
    b.set(d, 24);
    b.set(l4, 40);
    l3 = b;
    ethType = 0x86dd;
  } else if (spec.tcp || spec.udp) {
    throw new InvalidError(`${what}: tcp and udp need an ipv4 or ipv6 header`);
  }
  if (!spec.eth) return l3;
  const t = spec.eth.type;
  const type = typeof t === 'string' ? ETHERTYPES[t] : (t ?? ethType ?? 0);
  if (type === undefined)
    throw new InvalidError(`${what}.eth.type: unknown ${t} (${Object.keys(ETHERTYPES).join(', ')})`);
  const b = Buffer.alloc(14 + l3.length);
  b.set(mac(spec.eth.dst, `${what}.eth.dst`, [2, 0, 0, 0, 0, 2]), 0);
  b.set(mac(spec.eth.src, `${what}.eth.src`, [2, 0, 0, 0, 0, 1]), 6);
  b.writeUInt16BE(u16(type, `${what}.eth.type`), 12);
  b.set(l3, 14);
  return b;
}
