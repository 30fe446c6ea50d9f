// What one engine saw of a case (r0, the packet and ctx after, every value map, the records of
// ring buffers and perf event arrays), checked against the case's expectations and against
// another engine's observation. Everything is raw bytes until a difference is shown, so two
// engines agree only when they agree byte for byte; values are decoded with the object's BTF to
// match expectations and to show differences.
import type { Codec } from 'kbpf/bpf';
import type { TestCase } from './cases.js';
import { toHex } from './packet.js';
import { mapCodecs, type PreparedCase, structCodec } from './prepare.js';
import { mismatches, resolveNotations, show, showReturn, showRetval } from './values.js';

export interface Observation {
  r0: number;
  /** a cgroup program's return value to the syscall (what bpf_set_retval set, or -EPERM / 0 by r0) */
  retval?: number;
  packet?: Uint8Array;
  ctx?: Uint8Array;
  /** value maps (not .rodata): every entry present */
  maps: Map<string, { key: Uint8Array; value: Uint8Array }[]>;
  /** records of ring buffers and perf event arrays, by map */
  events: Map<string, Uint8Array[]>;
  /** event maps this engine cannot read back (perf event arrays in the kernel) */
  unobserved?: string[];
  trace?: string[];
}

const MAX_SHOWN = 5;

function decodeOr(codec: Codec | undefined, b: Uint8Array): unknown {
  if (!codec) return toHex(b);
  try {
    return codec.decode(b, 0);
  } catch {
    return toHex(b);
  }
}

/** The struct of a map's records: from the package's events, else the map's value type. */
function eventCodec(p: PreparedCase, map: string, eventTypes: ReadonlyMap<string, string>): Codec | undefined {
  const type = eventTypes.get(map);
  if (type) return structCodec(p.object.spec.btf, type);
  const spec = p.object.spec.maps.find((m) => m.name === map);
  return spec?.btfValue ? mapCodecs(spec, p.object.spec.btf).value : undefined;
}

function packetDiff(expected: Uint8Array, got: Uint8Array): string {
  let i = 0;
  while (i < expected.length && i < got.length && expected[i] === got[i]) i++;
  const at = i === expected.length && i === got.length ? '' : ` (first difference at byte ${i})`;
  return `expected ${expected.length} bytes ${toHex(expected)}\n  got      ${got.length} bytes ${toHex(got)}${at}`;
}

/** Where an observation differs from what the case expects. */
export function checkExpectations(p: PreparedCase, o: Observation, eventTypes: ReadonlyMap<string, string>): string[] {
  const c: TestCase = p.case;
  const out: string[] = [];
  const type = p.program.type;
  if (p.expectReturn !== undefined && p.expectReturn !== o.r0)
    out.push(`return: expected ${showReturn(p.expectReturn, type)}, got ${showReturn(o.r0, type)}`);
  if (p.expectRetval !== undefined && p.expectRetval !== o.retval)
    out.push(
      o.retval === undefined
        ? 'retval: this engine gives no retval (cgroup programs only)'
        : `retval: expected ${showRetval(p.expectRetval)}, got ${showRetval(o.retval)}`,
    );
  if (p.expectPacket && !(o.packet && Buffer.from(o.packet).equals(Buffer.from(p.expectPacket))))
    out.push(`packet: ${packetDiff(p.expectPacket, o.packet ?? new Uint8Array(0))}`);
  if (c.expect.ctx) {
    const codec = p.program.ctxType ? structCodec(p.object.spec.btf, p.program.ctxType) : undefined;
    if (!codec || !o.ctx) out.push('ctx: this engine gives no ctx back');
    else for (const m of mismatches(resolveNotations(c.expect.ctx), decodeOr(codec, o.ctx), 'ctx')) out.push(m);
  }
  for (const [name, entries] of Object.entries(c.expect.maps ?? {})) {
    const spec = p.object.spec.maps.find((m) => m.name === name);
    const got = o.maps.get(name);
    if (!spec || !got) {
      out.push(`maps.${name}: no such map here`);
      continue;
    }
    const codecs = mapCodecs(spec, p.object.spec.btf);
    entries.forEach((e) => {
      const key = codecs.key.encode(resolveNotations(e.key));
      const found = got.find((x) => Buffer.from(x.key).equals(Buffer.from(key)));
      const label = `maps.${name}[${show(e.key)}]`;
      if (e.value === null) {
        if (found) out.push(`${label}: expected no entry, got ${show(decodeOr(codecs.value, found.value))}`);
        return;
      }
      if (!found) {
        out.push(`${label}: expected ${show(e.value)}, got no entry`);
        return;
      }
      for (const m of mismatches(resolveNotations(e.value), decodeOr(codecs.value, found.value), label)) out.push(m);
    });
  }
  for (const [name, records] of Object.entries(c.expect.events ?? {})) {
    if (o.unobserved?.includes(name)) continue;
    const got = o.events.get(name);
    if (!got) {
      out.push(`events.${name}: no ring buffer or perf event array of that name`);
      continue;
    }
    const codec = eventCodec(p, name, eventTypes);
    if (got.length !== records.length)
      out.push(
        `events.${name}: expected ${records.length} record(s), got ${got.length}${
          got.length
            ? `: ${got
                .slice(0, MAX_SHOWN)
                .map((r) => show(decodeOr(codec, r)))
                .join(', ')}`
            : ''
        }`,
      );
    records.forEach((r, i) => {
      if (i < got.length)
        out.push(...mismatches(resolveNotations(r), decodeOr(codec, got[i]!), `events.${name}[${i}]`));
    });
  }
  return out;
}

/** Where two engines' observations differ: r0, the packet, every value map entry, every record. */
export function compareObservations(
  p: PreparedCase,
  a: Observation,
  b: Observation,
  names: [string, string],
  eventTypes: ReadonlyMap<string, string>,
): string[] {
  const [na, nb] = names;
  const out: string[] = [];
  const type = p.program.type;
  if (a.r0 !== b.r0) out.push(`return: ${na} ${showReturn(a.r0, type)}, ${nb} ${showReturn(b.r0, type)}`);
  if (a.retval !== undefined && b.retval !== undefined && a.retval !== b.retval)
    out.push(`retval: ${na} ${showRetval(a.retval)}, ${nb} ${showRetval(b.retval)}`);
  if (a.packet && b.packet && !Buffer.from(a.packet).equals(Buffer.from(b.packet)))
    out.push(`packet: ${na} ${toHex(a.packet)}\n  ${nb} ${toHex(b.packet)}`);
  for (const [name, ea] of a.maps) {
    const eb = b.maps.get(name);
    if (!eb) continue;
    const spec = p.object.spec.maps.find((m) => m.name === name);
    const codecs = spec ? mapCodecs(spec, p.object.spec.btf) : undefined;
    const index = (l: typeof ea) => new Map(l.map((e) => [toHex(e.key), e.value]));
    const ia = index(ea);
    const ib = index(eb);
    const diffs: string[] = [];
    for (const k of new Set([...ia.keys(), ...ib.keys()])) {
      const va = ia.get(k);
      const vb = ib.get(k);
      if (va && vb && Buffer.from(va).equals(Buffer.from(vb))) continue;
      const key = decodeOr(codecs?.key, Buffer.from(k, 'hex'));
      const sa = va ? show(decodeOr(codecs?.value, va)) : 'no entry';
      const sb = vb ? show(decodeOr(codecs?.value, vb)) : 'no entry';
      diffs.push(`maps.${name}[${show(key)}]: ${na} ${sa}, ${nb} ${sb}`);
    }
    out.push(...diffs.slice(0, MAX_SHOWN));
    if (diffs.length > MAX_SHOWN) out.push(`maps.${name}: … and ${diffs.length - MAX_SHOWN} more entries differ`);
  }
  for (const [name, ra] of a.events) {
    const rb = b.events.get(name);
    if (!rb || a.unobserved?.includes(name) || b.unobserved?.includes(name)) continue;
    const codec = eventCodec(p, name, eventTypes);
    if (ra.length !== rb.length) {
      out.push(`events.${name}: ${na} ${ra.length} record(s), ${nb} ${rb.length}`);
      continue;
    }
    ra.forEach((r, i) => {
      if (!Buffer.from(r).equals(Buffer.from(rb[i]!)))
        out.push(`events.${name}[${i}]: ${na} ${show(decodeOr(codec, r))}, ${nb} ${show(decodeOr(codec, rb[i]!))}`);
    });
  }
  return out;
}
