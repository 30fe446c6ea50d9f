// How the human output should show an event's fields, decided at build time from the record
// struct's BTF (field names and types) and kbpf.yaml's `events.MAP.format` hints: addresses as
// IPv4/IPv6, ports, pointers in hex, enums of bit flags as FLAG|FLAG, stacks (arrays of
// addresses, ids in a stack trace map) as symbols. Written into the package
// spec's event entry; `kbpf logs` formats with it, the stored records stay as decoded.
import type { Btf, BtfType } from 'kbpf/bpf';
import type { EventFormat, FieldFormat, StackSpace } from '../package/package-spec.js';
import { ADDRESS_LIST, PID_FIELDS, STACK_ID, stackSpace } from '../symbols/fields.js';
import { BuildError } from './errors.js';
import { openFlags } from './open-flags.js';

const IPV4_OR_6 = /(^|_)(s|d|src|dst|saddr|daddr|local|remote|peer|l|r)?_?(addr|ip|ipaddr)(_?v?[46])?$|^(s|d)addr/;
const PORT = /(^|_)(s|d|src|dst|local|remote|peer|l|r)?_?port$/;
/** a byte array (`__u8 buf[N]`) by a name that says it holds text or data */
const TEXT = /(buf|buffer|data|payload|msg|message|line|text|str|content|comm|name|path|args?)$/;
/** the siblings that may say how many of its bytes are used, for a field F: F_len, F_size, …, len */
const TEXT_LENGTH = (field: string) => [`${field}_len`, `${field}_size`, `${field}_sz`, 'len', 'size', 'data_len'];
/** a stack array's sibling holding its size in bytes (bpf_get_stack's return value) */
const STACK_SIZE_SUFFIXES = ['_sz', '_size', '_len'];
/** a field saying which family the struct's addresses are (AF_INET / AF_INET6, or 4 / 6) */
const FAMILY = /^(family|af|sa_family|addr_family|ip_?ver(sion)?|(s|sk|sock|inet)_?family)$/;
/** a file name field: with it, an int `flags` field holds open(2) flags (opensnoop-style records) */
const PATH_FIELD = /^(path|pathname|fname|filename|file|name)$/;
/** flag sets kbpf knows by name (`flags:open`), for values that are #defines rather than an enum */
const KNOWN_FLAGS: Record<string, () => [string, number][]> = { open: () => openFlags() };
/** what a family field's values mean, for a human */
export const ADDRESS_FAMILIES: [string, number][] = [
  ['AF_UNIX', 1],
  ['AF_INET', 2],
  ['AF_INET6', 10],
];

/** [name, value] pairs of an enum, values that fit a JSON number only. */
function enumNames(t: BtfType): [string, number][] {
  if (t.kind === 'ENUM') return t.values.map((v) => [v.name, v.value]);
  if (t.kind === 'ENUM64')
    return t.values.filter((v) => v.value <= BigInt(Number.MAX_SAFE_INTEGER)).map((v) => [v.name, Number(v.value)]);
  return [];
}

function isFlagSet(values: [string, number][]): boolean {
  const nonzero = values.filter(([, v]) => v !== 0);
  return nonzero.length >= 2 && nonzero.every(([, v]) => v > 0 && (v & (v - 1)) === 0);
}

/** The members of a struct with anonymous struct/union members flattened, as the codec decodes them. */
function fields(btf: Btf, id: number, depth = 0): { name: string; type: number }[] {
  const t = btf.type(btf.resolve(id));
  if ((t.kind !== 'STRUCT' && t.kind !== 'UNION') || depth > 8) return [];
  return t.members.flatMap((m) => (m.name ? [{ name: m.name, type: m.type }] : fields(btf, m.type, depth + 1)));
}

/** The format a field's name and type imply, or undefined. */
export function inferFieldFormat(btf: Btf, name: string, typeId: number): FieldFormat | undefined {
  const t = btf.type(btf.resolve(typeId));
  const size = btf.sizeOf(typeId);
  const lower = name.toLowerCase();
  if (t.kind === 'PTR') return { kind: 'hex' };
  if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
    const names = enumNames(t);
    return isFlagSet(names) ? { kind: 'flags', names } : undefined;
  }
  const integral = t.kind === 'INT' || t.kind === 'ARRAY';
  if (integral && IPV4_OR_6.test(lower)) {
    if (size === 4) return { kind: 'ipv4' };
    if (size === 16) return { kind: 'ipv6' };
    if (size === 8 && t.kind === 'INT') return { kind: 'hex' };
  }
  if (t.kind === 'INT' && size === 2 && PORT.test(lower)) return { kind: 'port' };
  if (t.kind === 'ARRAY' && btf.sizeOf(t.type) === 8 && ADDRESS_LIST.test(lower)) return { kind: 'stack' };
  return undefined;
}

/** A stack format with what the struct tells: whose addresses, the process's field, the size field. */
function stackFormat(
  members: { name: string; type: number }[],
  btf: Btf,
  field: string,
  base: FieldFormat & { kind: 'stack' | 'stack-id' },
  space: StackSpace | undefined,
): FieldFormat {
  const out: FieldFormat = { ...base };
  if (space) out.space = space;
  const pid = PID_FIELDS.find((p) => members.some((m) => m.name === p && isInt(btf, m.type)));
  if (pid && space !== 'kernel') out.pid = pid;
  if (out.kind === 'stack') {
    const size = STACK_SIZE_SUFFIXES.map((x) => field + x).find((n) => members.some((m) => m.name === n));
    if (size) out.size = size;
  }
  return out;
}

/** An array of unsigned bytes named as text or data (sslsniff's `__u8 buf[8192]`); char arrays decode as strings already. */
function isByteText(btf: Btf, name: string, id: number): boolean {
  const t = btf.type(btf.resolve(id));
  if (t.kind !== 'ARRAY' || t.nelems < 8) return false;
  const e = btf.type(btf.resolve(t.type));
  return e.kind === 'INT' && e.size === 1 && !e.signed && e.name !== 'char' && TEXT.test(name.toLowerCase());
}

function isInt(btf: Btf, id: number): boolean {
  return btf.type(btf.resolve(id)).kind === 'INT' && btf.sizeOf(id) <= 4;
}

function isStackArray(btf: Btf, id: number): boolean {
  const t = btf.type(btf.resolve(id));
  return t.kind === 'ARRAY' && btf.sizeOf(t.type) === 8;
}

/** The stack trace map a stack id field's ids are in: the one given, else the package's only one. */
function stackMapOf(stackMaps: readonly string[], given: string | undefined, where: string): string {
  if (given) {
    if (!stackMaps.includes(given))
      throw new BuildError(
        `${where}: no stack trace map "${given}" (stack trace maps: ${stackMaps.join(', ') || 'none'})`,
      );
    return given;
  }
  if (stackMaps.length !== 1)
    throw new BuildError(
      `${where}: which stack trace map holds its stacks? Name it: kstack:MAP or ustack:MAP (stack trace maps: ${stackMaps.join(', ') || 'none'})`,
    );
  return stackMaps[0]!;
}

/** An enum by name from the object's BTF, else the kernel's. */
function findEnum(btf: Btf, kernel: (() => Btf | undefined) | undefined, name: string): [string, number][] | undefined {
  for (const b of [btf, kernel?.()]) {
    if (!b) continue;
    const t = b.findByName(name, 'ENUM') ?? b.findByName(name, 'ENUM64');
    if (t) return enumNames(t.type);
  }
  return undefined;
}

/**
 * The formats of the fields of struct `type`: inferred, then kbpf.yaml's hints (which win).
 * Refuses a hint for a field the struct does not have, or an enum that no BTF has.
 */
export function eventFormat(
  btf: Btf,
  type: string,
  hints: Record<string, string> = {},
  where = 'events',
  kernel?: () => Btf | undefined,
  stackMaps: readonly string[] = [],
): EventFormat | undefined {
  const found = btf.findStruct(type);
  if (!found) return undefined;
  const out: EventFormat = {};
  const members = fields(btf, found.id);
  for (const f of members) {
    if (isByteText(btf, f.name, f.type)) {
      const size = TEXT_LENGTH(f.name).find((n) => members.some((m) => m.name === n && isInt(btf, m.type)));
      out[f.name] = size ? { kind: 'text', size } : { kind: 'text' };
      continue;
    }
    const fmt = inferFieldFormat(btf, f.name, f.type);
    if (fmt?.kind === 'stack') out[f.name] = stackFormat(members, btf, f.name, fmt, stackSpace(f.name));
    else if (fmt) out[f.name] = fmt;
    else if (stackMaps.length === 1 && STACK_ID.test(f.name.toLowerCase()) && isInt(btf, f.type))
      out[f.name] = stackFormat(members, btf, f.name, { kind: 'stack-id', map: stackMaps[0]! }, stackSpace(f.name));
  }
  // tools keep an IPv4 address in the first 4 bytes of a 16-byte field and say which in a family field
  const family = members.find((m) => FAMILY.test(m.name.toLowerCase()) && isInt(btf, m.type));
  if (family) {
    for (const [name, fmt] of Object.entries(out))
      if (fmt.kind === 'ipv6') out[name] = { kind: 'inet', family: family.name };
    if (!out[family.name] && /family/.test(family.name)) out[family.name] = { kind: 'enum', names: ADDRESS_FAMILIES };
  }
  const flagsField = members.find((m) => m.name === 'flags' && isInt(btf, m.type));
  if (flagsField && !out.flags && members.some((m) => PATH_FIELD.test(m.name)))
    out.flags = { kind: 'flags', names: openFlags() };
  for (const [field, hint] of Object.entries(hints)) {
    if (!members.some((m) => m.name === field))
      throw new BuildError(
        `${where}.format.${field}: struct ${type} has no field "${field}" (fields: ${members.map((m) => m.name).join(', ')})`,
      );
    const m = /^(flags|enum):(\w+)$/.exec(hint);
    const stack = /^(k|u)?stack(?::(\w+))?$/.exec(hint);
    if (stack) {
      const member = members.find((x) => x.name === field)!;
      const space = stack[1] === 'k' ? 'kernel' : stack[1] === 'u' ? 'user' : undefined;
      const at = `${where}.format.${field}`;
      if (isStackArray(btf, member.type)) {
        if (stack[2]) throw new BuildError(`${at}: ${hint}: the field is an array of addresses, not a stack id`);
        out[field] = stackFormat(members, btf, field, { kind: 'stack' }, space);
      } else if (isInt(btf, member.type)) {
        const map = stackMapOf(stackMaps, stack[2], at);
        out[field] = stackFormat(members, btf, field, { kind: 'stack-id', map }, space);
      } else throw new BuildError(`${at}: ${hint}: neither an array of 64-bit addresses nor a stack id`);
    } else if (m) {
      const known = m[1] === 'flags' ? KNOWN_FLAGS[m[2]!] : undefined;
      const names = known ? known() : findEnum(btf, kernel, m[2]!);
      if (!names)
        throw new BuildError(
          `${where}.format.${field}: no enum ${m[2]} in the object's or the kernel's BTF (known flag sets: ${Object.keys(KNOWN_FLAGS).join(', ')})`,
        );
      out[field] = { kind: m[1] as 'flags' | 'enum', names };
    } else if (hint === 'text') {
      const size = TEXT_LENGTH(field).find((n) => members.some((x) => x.name === n && isInt(btf, x.type)));
      out[field] = size ? { kind: 'text', size } : { kind: 'text' };
    } else out[field] = { kind: hint as 'ipv4' | 'ipv6' | 'port' | 'net-port' | 'hex' };
  }
  return Object.keys(out).length ? out : undefined;
}
