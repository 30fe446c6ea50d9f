// The argument specs a USDT program reads, written into its object's `__bpf_usdt_specs` map
// (an array indexed by spec id; the id reaches the program as the uprobe's BPF cookie). The
// layout is the one the object was compiled with — usdt.bpf.h's struct __bpf_usdt_spec and
// struct __bpf_usdt_arg_spec have changed between libbpf versions — so every field is placed by
// its name from the map's BTF, and the argument kinds are the values of the header's enum.

import { Invalid, Unsupported } from '../../errors.js';
import type { Btf } from '../btf/btf.js';
import type { BtfMember, BtfType } from '../btf/types.js';
import { BpfError } from '../errors.js';
import type { BpfMap } from '../map.js';
import type { UsdtArg, UsdtArgKind } from './args.js';

export const USDT_SPECS_MAP = '__bpf_usdt_specs';
export const USDT_IP_MAP = '__bpf_usdt_ip_to_spec_id';

interface Field {
  /** bit offset from the start of the value */
  bit: number;
  bits: number;
}

export interface UsdtSpecLayout {
  /** bytes of one spec */
  size: number;
  /** most arguments one spec holds */
  maxArgs: number;
  /** the spec's bytes (`where` names the probe in errors) */
  encode(args: UsdtArg[], cookie: bigint, where: string): Uint8Array;
}

const KIND_ENUM: Record<UsdtArgKind, string> = {
  const: 'CONST',
  reg: 'REG',
  deref: 'REG_DEREF',
  sib: 'SIB',
};

function setBits(buf: Uint8Array, f: Field, value: bigint): void {
  const v = BigInt.asUintN(f.bits, value);
  for (let i = 0; i < f.bits; i++) {
    const at = f.bit + i;
    const byte = at >> 3;
    const mask = 1 << (at & 7);
    if ((v >> BigInt(i)) & 1n) buf[byte]! |= mask;
    else buf[byte]! &= ~mask;
  }
}

/** How `map` (the object's __bpf_usdt_specs) lays out a spec; refused when its BTF is not usdt.bpf.h's. */
export function usdtSpecLayout(map: BpfMap): UsdtSpecLayout {
  const what = `map ${USDT_SPECS_MAP}`;
  const fail = (why: string) =>
    new BpfError('read the layout of', what, Invalid, { hint: `${why}: it is not usdt.bpf.h's spec map` });
  const btf = map.btf;
  if (!btf || !map.valueTypeId) throw fail('its value has no BTF type');
  const spec = struct(btf, map.valueTypeId);
  if (!spec) throw fail('its value is not a struct');
  if (!btf.littleEndian) throw new BpfError('write USDT specs into', what, Unsupported, { hint: 'big-endian BTF' });
  const member = (t: BtfType & { members: readonly BtfMember[] }, name: string, base = 0): Field | undefined => {
    const m = t.members.find((x) => x.name === name);
    return m && { bit: base + m.bitOffset, bits: m.bitSize || btf.sizeOf(m.type) * 8 };
  };
  const argsMember = spec.members.find((m) => m.name === 'args');
  const argsType = argsMember && btf.type(btf.resolve(argsMember.type));
  const cookie = member(spec, 'usdt_cookie');
  const count = member(spec, 'arg_cnt');
  if (!argsMember || argsType?.kind !== 'ARRAY' || !cookie || !count)
    throw fail('it lacks args, usdt_cookie or arg_cnt');
  const argSpec = struct(btf, argsType.type);
  if (!argSpec) throw fail('its args are not structs');
  const argSize = btf.sizeOf(argsType.type) * 8;
  const fieldOf = (i: number, name: string) => member(argSpec, name, argsMember.bitOffset + i * argSize);
  for (const name of ['val_off', 'arg_type', 'reg_off', 'arg_signed', 'arg_bitshift'])
    if (!fieldOf(0, name)) throw fail(`its arg spec has no ${name}`);
  const kindValues = enumValues(btf, argSpec.members.find((m) => m.name === 'arg_type')!.type);
  const size = map.valueSize;
  return {
    size,
    maxArgs: argsType.nelems,
    encode(args, usdtCookie, where) {
      if (args.length > argsType.nelems)
        throw new BpfError('attach', where, Invalid, {
          hint: `${args.length} arguments, the program's usdt.bpf.h reads at most ${argsType.nelems}`,
        });
      const out = new Uint8Array(size);
      setBits(out, cookie, usdtCookie);
      setBits(out, count, BigInt(args.length));
      args.forEach((a, i) => {
        const kind = kindValues.get(KIND_ENUM[a.kind]);
        const index = fieldOf(i, 'idx_reg_off');
        const scale = fieldOf(i, 'scale_bitshift');
        if (kind === undefined || (a.kind === 'sib' && (!index || !scale)))
          throw new BpfError('attach', where, Unsupported, {
            hint: `argument ${i} is a ${a.kind === 'sib' ? 'base+index*scale memory operand' : a.kind} one, which the program's usdt.bpf.h cannot read (newer libbpf headers can)`,
          });
        setBits(out, fieldOf(i, 'val_off')!, a.value);
        setBits(out, fieldOf(i, 'arg_type')!, BigInt(kind));
        setBits(out, fieldOf(i, 'reg_off')!, BigInt(a.regOffset));
        setBits(out, fieldOf(i, 'arg_signed')!, a.signed ? 1n : 0n);
        setBits(out, fieldOf(i, 'arg_bitshift')!, BigInt(64 - a.size * 8));
        if (a.kind === 'sib') {
          setBits(out, index!, BigInt(a.indexRegOffset ?? 0));
          setBits(out, scale!, BigInt(a.scaleShift ?? 0));
        }
      });
      return out;
    },
  };
}

function struct(btf: Btf, id: number): (BtfType & { kind: 'STRUCT' }) | undefined {
  const t = btf.type(btf.resolve(id));
  return t.kind === 'STRUCT' ? t : undefined;
}

/** The enum's values by name suffix (BPF_USDT_ARG_REG_DEREF → REG_DEREF). */
function enumValues(btf: Btf, id: number): Map<string, number> {
  const t = btf.type(btf.resolve(id));
  const out = new Map<string, number>();
  if (t.kind === 'ENUM') for (const v of t.values) out.set(v.name.replace(/^_*BPF_USDT_ARG_/, ''), v.value);
  else if (t.kind === 'INT') for (const [i, k] of ['CONST', 'REG', 'REG_DEREF'].entries()) out.set(k, i);
  return out;
}
