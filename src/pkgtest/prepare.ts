// A test case made concrete against its object: the program found, the packet built, and the
// config values, ctx fields and map entries encoded with the object's BTF — once, so that every
// engine runs the case on the same bytes.
import { type Codec, codecFor } from 'kbpf/bpf';
import { InvalidError, NotFoundError } from '../errors.js';
import { globalVariable, mapCodecs, structCodec } from '../vm/codecs.js';
import { type ObjectProgram, readVmObject, type VmObjectSpec } from '../vm/elf.js';
import type { VmTask } from '../vm/task-helpers.js';
import type { TaskSpec, TestCase } from './cases.js';
import { buildPacket } from './packet.js';
import { expectedReturn, expectedRetval, resolveNotations } from './values.js';

export interface PackageObject {
  /** its file name in the package (e.g. xdp.bpf.o) */
  file: string;
  bytes: Uint8Array;
  spec: VmObjectSpec;
}

export interface EncodedEntry {
  map: string;
  key: Uint8Array;
  value: Uint8Array;
}

export interface EncodedGlobal {
  name: string;
  section: string;
  offset: number;
  bytes: Uint8Array;
  /** the value as the kernel runtime's setGlobal takes it */
  value: unknown;
}

export interface PreparedCase {
  case: TestCase;
  object: PackageObject;
  program: ObjectProgram;
  packet?: Uint8Array;
  /** the ctx struct with the case's fields (the program type's struct from the object's BTF) */
  ctx?: Uint8Array;
  globals: EncodedGlobal[];
  entries: EncodedEntry[];
  task: VmTask;
  expectReturn?: number;
  expectRetval?: number;
  expectPacket?: Uint8Array;
}

export { type MapCodecs, mapCodecs, structCodec } from '../vm/codecs.js';

export function readPackageObject(file: string, bytes: Uint8Array): PackageObject {
  return { file, bytes, spec: readVmObject(bytes) };
}

function encode(codec: Codec, v: unknown, where: string): Uint8Array {
  try {
    return codec.encode(resolveNotations(v));
  } catch (e) {
    throw new InvalidError(`${where}: ${(e as Error).message}`);
  }
}

function bigOf(v: number | string | undefined): bigint | undefined {
  return v === undefined ? undefined : BigInt(v);
}

function task(t: TaskSpec | undefined): VmTask {
  if (!t) return {};
  const out: VmTask = {};
  for (const k of ['pid', 'tgid', 'uid', 'gid'] as const) if (t[k] !== undefined) out[k] = t[k];
  if (t.comm !== undefined) out.comm = t.comm;
  for (const k of ['cgroupId', 'socketCookie', 'netnsCookie'] as const) {
    const v = bigOf(t[k]);
    if (v !== undefined) out[k] = v;
  }
  if (t.ancestorCgroupIds)
    out.ancestorCgroupIds = new Map(Object.entries(t.ancestorCgroupIds).map(([l, id]) => [Number(l), BigInt(id)]));
  return out;
}

/** Finds the case's program in the package's objects and encodes what it gives. */
export function prepareCase(
  c: TestCase,
  objects: readonly PackageObject[],
  defaults: Record<string, unknown> = {},
): PreparedCase {
  const where = `${c.file}: ${c.name}`;
  const object = objects.find((o) => o.spec.programs.some((p) => p.name === c.program));
  if (!object)
    throw new NotFoundError(`${where}: no program ${c.program}`, {
      hint: `programs: ${objects.flatMap((o) => o.spec.programs.map((p) => p.name)).join(', ')}`,
    });
  const program = object.spec.programs.find((p) => p.name === c.program)!;
  const btf = object.spec.btf;
  const globals: EncodedGlobal[] = [];
  const config = { ...defaults, ...c.config };
  for (const [name, raw] of Object.entries(config)) {
    const g = globalVariable(btf, name);
    if (!g || !btf) {
      if (name in (c.config ?? {})) throw new NotFoundError(`${where}: config.${name}: no such global variable`);
      continue;
    }
    const value = resolveNotations(raw);
    globals.push({
      name,
      section: g.section,
      offset: g.offset,
      bytes: encode(codecFor(btf, g.typeId), raw, `${where}: config.${name}`),
      value,
    });
  }
  const entries: EncodedEntry[] = [];
  for (const [name, list] of Object.entries(c.maps ?? {})) {
    const spec = object.spec.maps.find((m) => m.name === name);
    if (!spec)
      throw new NotFoundError(`${where}: maps.${name}: no such map`, {
        hint: `maps: ${object.spec.maps.map((m) => m.name).join(', ')}`,
      });
    const codecs = mapCodecs(spec, btf);
    list.forEach((e, i) => {
      if (e.key === undefined) throw new InvalidError(`${where}: maps.${name}[${i}]: no key`);
      entries.push({
        map: name,
        key: encode(codecs.key, e.key, `${where}: maps.${name}[${i}].key`),
        value: encode(codecs.value, e.value, `${where}: maps.${name}[${i}].value`),
      });
    });
  }
  const out: PreparedCase = { case: c, object, program, globals, entries, task: task(c.task) };
  if (c.packet !== undefined) out.packet = buildPacket(c.packet, `${where}: packet`);
  if (c.ctx !== undefined) {
    const codec = program.ctxType ? structCodec(btf, program.ctxType) : undefined;
    if (!codec) throw new InvalidError(`${where}: ctx: the object's BTF has no ctx struct for ${c.program}`);
    out.ctx = encode(codec, c.ctx, `${where}: ctx`);
  }
  if (c.expect.return !== undefined) out.expectReturn = expectedReturn(c.expect.return, `${where}: expect.return`);
  if (c.expect.retval !== undefined) out.expectRetval = expectedRetval(c.expect.retval, `${where}: expect.retval`);
  if (c.expect.packet !== undefined) out.expectPacket = buildPacket(c.expect.packet, `${where}: expect.packet`);
  return out;
}
