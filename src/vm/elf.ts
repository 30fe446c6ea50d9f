// Loading a package's BPF object (the same ELF the kernel gets) into a VM: BTF-defined maps from
// `.maps`, `.rodata`/`.data`/`.bss` as one-entry array maps, programs from their SEC() sections
// with `.text` subprograms linked in, map/global/call/callback relocations applied, and prog arrays
// initialised from `.maps` relocations (`__array(values, …)`). Uses the runtime's ELF and BTF
// readers.

import {
  type Btf,
  type ElfSection,
  MAP_TYPES,
  type MapType,
  readElfSectionHeaders,
  readElfSymbols,
  readObjectBtf,
} from 'kbpf/bpf';
import { CorruptedError } from '../errors.js';
import { VmLoadError } from './errors.js';
import {
  CALL,
  decodeProgram,
  type Insn,
  JMP,
  LDDW,
  PSEUDO_CALL,
  PSEUDO_FUNC,
  PSEUDO_MAP_FD,
  PSEUDO_MAP_VALUE,
} from './insn.js';
import type { MapSpec } from './maps.js';
import { MAP_TYPES_SUPPORTED, VmProgArray } from './maps.js';
import type { Vm } from './vm.js';

const SHT_REL = 9;
const SHF_EXECINSTR = 4n;

export interface ObjectProgram {
  name: string;
  section: string;
  /** program type from the section name (xdp, sched_cls, socket_filter, …) */
  type: string;
  /** the struct its ctx argument points to, from BTF (xdp_md, __sk_buff, bpf_sock_addr, …) */
  ctxType?: string;
  insns: Insn[];
  /** why the engine cannot load it (a relocation it does not support); insns is then empty */
  unsupported?: VmLoadError;
}

export interface VmObjectSpec {
  maps: MapSpec[];
  programs: ObjectProgram[];
  /** prog array initial contents: map name → (slot → program name) */
  progArrays: Map<string, Map<number, string>>;
  /** the object's BTF (map key/value types are `MapSpec.btfKey`/`btfValue` in it) */
  btf?: Btf;
}

export interface LoadObjectOptions {
  /**
   * Load what the engine can: a map of a type it lacks becomes a stub (a helper on it faults) and
   * a program it cannot load is left out, its error in `unloadable`, instead of failing the load.
   */
  lenient?: boolean;
}

export interface LoadedVmObject extends VmObjectSpec {
  /** programs not loaded (lenient loads), with why */
  unloadable: Map<string, Error>;
}

interface Rel {
  offset: number;
  sym: number;
}

export function programTypeOf(section: string): string {
  const s = section.split('/')[0]!;
  if (s === 'xdp' || s.startsWith('xdp.')) return 'xdp';
  if (s === 'tc' || s === 'classifier' || s === 'tcx' || s.startsWith('tcx') || s.startsWith('tc.')) return 'sched_cls';
  if (s === 'socket') return 'socket_filter';
  return s;
}

function readRels(buf: Uint8Array, s: ElfSection): Rel[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Rel[] = [];
  const ent = s.entsize || 16;
  for (let at = s.offset; at + 16 <= s.offset + s.size; at += ent) {
    out.push({ offset: Number(dv.getBigUint64(at, true)), sym: Number(dv.getBigUint64(at + 8, true) >> 32n) });
  }
  return out;
}

/** The size a `__uint(name, N)` member encodes (int (*name)[N]) or the size of `__type(name, T)`. */
function mapDef(btf: Btf, name: string, typeId: number): MapSpec & { valuesOffset?: number } {
  const t = btf.type(btf.resolve(typeId));
  if (t.kind !== 'STRUCT') throw new CorruptedError(`map ${name}: BTF definition is not a struct`);
  const spec: MapSpec & { valuesOffset?: number } = {
    name,
    type: 'unspec' as MapType,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
  };
  for (const m of t.members) {
    const mt = btf.type(btf.resolve(m.type));
    const pointee = mt.kind === 'PTR' ? btf.type(btf.resolve(mt.type)) : undefined;
    const uint = () => {
      if (pointee?.kind !== 'ARRAY') throw new CorruptedError(`map ${name}: member ${m.name} is not __uint`);
      return pointee.nelems;
    };
    const size = () => {
      if (mt.kind !== 'PTR') throw new CorruptedError(`map ${name}: member ${m.name} is not __type`);
      return btf.sizeOf(mt.type);
    };
    switch (m.name) {
      case 'key':
      case 'value':
        if (mt.kind === 'PTR') spec[m.name === 'key' ? 'btfKey' : 'btfValue'] = mt.type;
        break;
    }
    switch (m.name) {
      case 'type': {
        const n = uint();
        spec.type = (MAP_TYPES[n] ?? `type ${n}`) as MapType;
        break;
      }
      case 'max_entries':
        spec.maxEntries = uint();
        break;
      case 'map_flags':
        spec.flags = uint();
        break;
      case 'key_size':
        spec.keySize = uint();
        break;
      case 'value_size':
        spec.valueSize = uint();
        break;
      case 'key':
        spec.keySize = size();
        break;
      case 'value':
        spec.valueSize = size();
        break;
      case 'values':
        spec.valuesOffset = m.bitOffset / 8;
        break;
    }
  }
  if (spec.type === 'ringbuf' || spec.type === 'perf_event_array' || spec.type === 'prog_array') {
    spec.keySize ||= 4;
    spec.valueSize ||= 4;
  }
  return spec;
}

/** Reads what a VM needs from a BPF object file. */
export function readVmObject(buf: Uint8Array): VmObjectSpec {
  const sections = readElfSectionHeaders(buf);
  const symbols = readElfSymbols(buf);
  const symAt = (i: number) => symbols[i - 1];
  const btf = readObjectBtf(buf);
  const maps: MapSpec[] = [];
  const mapBySym = new Map<string, number>();
  const mapByDataSection = new Map<number, number>();
  const progArrays = new Map<string, Map<number, string>>();
  const valuesOffsets = new Map<string, { start: number; offset: number }>();

  const mapsSec = sections.find((s) => s.name === '.maps');
  if (mapsSec) {
    if (!btf) throw new CorruptedError('object has .maps but no .BTF');
    const ds = btf.datasec('.maps');
    for (const sym of symbols.filter((s) => s.sectionIndex === mapsSec.index && s.type === 'OBJECT')) {
      const v = ds?.vars.find((x) => x.name === sym.name);
      if (!v) throw new CorruptedError(`map ${sym.name}: no BTF`);
      const { valuesOffset, ...spec } = mapDef(btf, sym.name, v.typeId);
      if (valuesOffset !== undefined) valuesOffsets.set(sym.name, { start: sym.value, offset: valuesOffset });
      mapBySym.set(sym.name, maps.length);
      maps.push(spec);
    }
  }
  for (const s of sections) {
    if (!/^\.(rodata|data|bss)(\..*)?$/.test(s.name) || s.size === 0) continue;
    mapByDataSection.set(s.index, maps.length);
    maps.push({
      name: s.name,
      type: 'array',
      keySize: 4,
      valueSize: s.size,
      maxEntries: 1,
      readOnly: s.name.startsWith('.rodata'),
      initial: s.type === 8 ? undefined : buf.slice(s.offset, s.offset + s.size),
    });
  }

  const relsOf = new Map<number, Rel[]>();
  for (const s of sections) if (s.type === SHT_REL) relsOf.set(s.info, readRels(buf, s));

  // prog array slots from relocations in .maps
  if (mapsSec) {
    for (const r of relsOf.get(mapsSec.index) ?? []) {
      for (const [name, v] of valuesOffsets) {
        if (r.offset < v.start + v.offset) continue;
        const slot = (r.offset - v.start - v.offset) / 8;
        const target = symAt(r.sym);
        if (!Number.isInteger(slot) || !target) continue;
        const m = progArrays.get(name) ?? new Map<number, string>();
        m.set(slot, target.name);
        progArrays.set(name, m);
      }
    }
  }

  const text = sections.find((s) => s.name === '.text');
  const textInsns = text?.size ? decodeProgram(buf.slice(text.offset, text.offset + text.size)) : [];

  /** Applies a section's relocations to its instructions (copied), with `base` = its place in the program. */
  const relocate = (
    sec: ElfSection,
    insns: Insn[],
    from: number,
    to: number,
    base: number,
    textBase: number,
  ): boolean => {
    let usesText = false;
    for (const r of relsOf.get(sec.index) ?? []) {
      const idx = r.offset / 8;
      if (idx < from || idx >= to) continue;
      const i = insns[base + idx - from]!;
      const sym = symAt(r.sym);
      if (!sym) throw new CorruptedError(`${sec.name}: relocation against symbol ${r.sym}`);
      if (i.code === LDDW) {
        const next = insns[base + idx - from + 1]!;
        const m = mapBySym.get(sym.name);
        if (m !== undefined && sym.section === '.maps') {
          i.src = PSEUDO_MAP_FD;
          i.imm = m;
          continue;
        }
        const d = mapByDataSection.get(sym.sectionIndex);
        if (d !== undefined) {
          next.imm = sym.value + i.imm;
          i.src = PSEUDO_MAP_VALUE;
          i.imm = d;
          continue;
        }
        if (text && sym.sectionIndex === text.index) {
          // a subprogram's address (a bpf_loop callback): imm is its byte offset from the symbol
          const target = textBase + (sym.value + i.imm) / 8;
          if (!Number.isInteger(target)) throw new CorruptedError(`${sec.name}+${idx}: callback offset ${i.imm}`);
          i.src = PSEUDO_FUNC;
          i.imm = target - (base + idx - from) - 1;
          next.imm = 0;
          usesText = true;
          continue;
        }
        throw new VmLoadError(`${sec.name}+${idx}: relocation against ${sym.name || sym.section} is not supported`, {
          unsupported: true,
        });
      }
      if (i.code === (JMP | CALL) && i.src === PSEUDO_CALL) {
        if (sym.section !== '.text')
          throw new VmLoadError(`${sec.name}+${idx}: call into ${sym.section || 'an extern'} is not supported`, {
            unsupported: true,
          });
        const target = textBase + sym.value / 8 + i.imm + 1;
        i.imm = target - (base + idx - from) - 1;
        usesText = true;
        continue;
      }
      throw new VmLoadError(`${sec.name}+${idx}: relocation of ${i.code.toString(16)} is not supported`, {
        unsupported: true,
      });
    }
    return usesText;
  };

  const programs: ObjectProgram[] = [];
  for (const sec of sections) {
    if (!(sec.flags & SHF_EXECINSTR) || sec.name === '.text' || sec.size === 0) continue;
    const all = decodeProgram(buf.slice(sec.offset, sec.offset + sec.size));
    const funcs = symbols.filter((s) => s.sectionIndex === sec.index && s.type === 'FUNC' && s.bind !== 'LOCAL');
    for (const f of funcs) {
      const from = f.value / 8;
      const to = f.size ? from + f.size / 8 : all.length;
      const insns = all.slice(from, to).map((i) => ({ ...i }));
      const textBase = insns.length;
      const text2 = textInsns.map((i) => ({ ...i }));
      const linked = [...insns, ...text2];
      const ctxType = btf && ctxTypeOf(btf, f.name);
      const prog = { name: f.name, section: sec.name, type: programTypeOf(sec.name), ...(ctxType ? { ctxType } : {}) };
      try {
        const usesText = relocate(sec, linked, from, to, 0, textBase);
        if (usesText && text) relocate(text, linked, 0, textInsns.length, textBase, textBase);
        programs.push({ ...prog, insns: usesText ? linked : insns });
      } catch (e) {
        // one program the engine cannot link (a relocation it lacks): the others still load
        if (!(e instanceof VmLoadError)) throw e;
        programs.push({ ...prog, insns: [], unsupported: e });
      }
    }
  }
  return { maps, programs, progArrays, ...(btf ? { btf } : {}) };
}

/** The struct a program's first argument points to (its ctx), from the function's BTF. */
function ctxTypeOf(btf: Btf, func: string): string | undefined {
  const f = btf.findByName(func, 'func');
  if (f?.type.kind !== 'FUNC') return undefined;
  const proto = btf.type(f.type.type);
  const p0 = proto.kind === 'FUNC_PROTO' ? proto.params[0] : undefined;
  if (!p0) return undefined;
  const ptr = btf.type(btf.resolve(p0.type));
  if (ptr.kind !== 'PTR') return undefined;
  const t = btf.type(btf.resolve(ptr.type));
  return t.kind === 'STRUCT' && t.name ? t.name : undefined;
}

/** Creates an object's maps and programs in a VM; returns the program specs. */
export function loadVmObject(vm: Vm, buf: Uint8Array, opts: LoadObjectOptions = {}): LoadedVmObject {
  const spec = readVmObject(buf);
  const base = vm.maps.length;
  if (base) throw new VmLoadError('load an object into a fresh VM');
  for (const m of spec.maps) {
    if (opts.lenient && !MAP_TYPES_SUPPORTED.includes(m.type)) vm.addStubMap(m);
    else vm.addMap(m);
  }
  const unloadable = new Map<string, Error>();
  for (const p of spec.programs) {
    try {
      if (p.unsupported) throw p.unsupported;
      vm.load(p.name, p.insns);
    } catch (e) {
      if (!opts.lenient || !(e instanceof VmLoadError)) throw e;
      unloadable.set(p.name, e);
    }
  }
  for (const [name, slots] of spec.progArrays) {
    const m = vm.map(name);
    if (m instanceof VmProgArray) for (const [i, p] of slots) m.setProgram(i, p);
  }
  return { ...spec, unloadable };
}
