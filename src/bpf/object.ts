// A BPF ELF object: open (file or bytes), set global variables, load (with the verifier's log
// captured per program), then hand out its programs and maps. close() releases every fd.

import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename } from 'node:path';
import { Conflict, Invalid, NotFound } from '../errors.js';
import { Btf, codecFor } from './btf/index.js';
import { rawDataOf } from './btf-kernel.js';
import { BpfError, check, VerifierError } from './errors.js';
import { koffi, lastErrno, type Pointer } from './ffi/koffi.js';
import { libbpf, OBJECT_OPEN_OPTS_SIZE } from './ffi/libbpf.js';
import { captureLibbpfLog } from './ffi/print.js';
import { BpfMap } from './map.js';
import { Program } from './program.js';
import {
  BPF_F_LINK,
  kernelHasStructOpsLinks,
  libbpfKnowsStructOpsLink,
  RENAMED_SLEEPABLE,
  withPlainSleepableStructOps,
  withPlainStructOps,
} from './struct-ops-sections.js';

const VERIFIER_LOG_SIZE = 1 << 20;

/**
 * Sections newer than Debian's libbpf 1.1 knows, with the program type (and expected attach
 * type) libbpf would give them; applied to programs libbpf left untyped.
 */
const NEWER_SECTIONS: [RegExp, string, string?][] = [
  [/^tc\/(ingress|egress)$/, 'sched_cls'],
  [/^tcx\/ingress$/, 'sched_cls', 'tcx_ingress'],
  [/^tcx\/egress$/, 'sched_cls', 'tcx_egress'],
  [/^netkit\/primary$/, 'sched_cls', 'netkit_primary'],
  [/^netkit\/peer$/, 'sched_cls', 'netkit_peer'],
  [/^cgroup\/connect_unix$/, 'cgroup_sock_addr', 'cgroup_unix_connect'],
  [/^cgroup\/sendmsg_unix$/, 'cgroup_sock_addr', 'cgroup_unix_sendmsg'],
  [/^cgroup\/recvmsg_unix$/, 'cgroup_sock_addr', 'cgroup_unix_recvmsg'],
  [/^cgroup\/getpeername_unix$/, 'cgroup_sock_addr', 'cgroup_unix_getpeername'],
  [/^cgroup\/getsockname_unix$/, 'cgroup_sock_addr', 'cgroup_unix_getsockname'],
  [/^netfilter$/, 'netfilter', 'netfilter'],
  [/^u(ret)?probe\.multi(\.s)?(\/|$)/, 'kprobe', 'trace_uprobe_multi'],
  [/^uprobe\.session(\.s)?(\/|$)/, 'kprobe', 'trace_uprobe_session'],
  [/^kprobe\.session\//, 'kprobe', 'trace_kprobe_session'],
];
/** Sleepable variants of the sections above (libbpf sets BPF_F_SLEEPABLE for them). */
const SLEEPABLE_SECTION = /^u(ret)?probe\.(multi|session)\.s(\/|$)/;
const BPF_F_SLEEPABLE = 1 << 4;
const GLOBAL_SECTIONS = /^\.(rodata|data|bss)(\..*)?$/;

/** Whether an internal map's section holds global variables (.rodata, .data, .bss, custom .data.* / .rodata.*). */
export function isGlobalSection(section: string): boolean {
  return GLOBAL_SECTIONS.test(section);
}

export interface OpenOptions {
  /** Object name used in errors and in names of internal maps (default: file name). */
  name?: string;
}

export interface GlobalVariable {
  name: string;
  /** ELF section: .rodata (const volatile), .data, .bss, or a custom .data.* / .rodata.* */
  section: string;
  typeId: number;
  typeName: string;
  offset: number;
  size: number;
}

export class BpfObject {
  #ptr: Pointer | null;
  #loaded = false;
  readonly name: string;
  readonly btf: Btf | null;
  readonly programs: ReadonlyMap<string, Program>;
  /** The object's maps by their C name; internal maps (.rodata, .data, .bss, .kconfig) by section. */
  readonly maps: ReadonlyMap<string, BpfMap>;
  readonly #internal = new Map<string, Pointer>();

  private constructor(ptr: Pointer, name: string, renamedSleepable = false) {
    this.#ptr = ptr;
    this.name = name;
    const btfPtr = libbpf.objectBtf(ptr);
    this.btf = btfPtr ? Btf.parse(rawDataOf(btfPtr)) : null;
    const programs = new Map<string, Program>();
    for (let p = libbpf.objectNextProgram(ptr, null); p; p = libbpf.objectNextProgram(ptr, p)) {
      const prog = Program.ofObject(name, p, renamedSleepable);
      if (renamedSleepable && RENAMED_SLEEPABLE.test(libbpf.programSectionName(p)))
        libbpf.programSetFlags(p, libbpf.programFlags(p) | BPF_F_SLEEPABLE);
      if (prog.type === 'unspec') {
        const known = NEWER_SECTIONS.find(([re]) => re.test(prog.section));
        if (known) {
          prog.setType(known[1]);
          if (known[2]) prog.setExpectedAttachType(known[2]);
          if (SLEEPABLE_SECTION.test(prog.section)) libbpf.programSetFlags(p, libbpf.programFlags(p) | BPF_F_SLEEPABLE);
        }
      }
      programs.set(prog.name, prog);
    }
    const maps = new Map<string, BpfMap>();
    for (let m = libbpf.objectNextMap(ptr, null); m; m = libbpf.objectNextMap(ptr, m)) {
      let mapName = libbpf.mapName(m);
      if (libbpf.mapIsInternal(m)) {
        const section = this.sectionOfInternalMap(m) ?? mapName;
        this.#internal.set(section, m);
        mapName = section;
      }
      const map = BpfMap.ofObject(name, m, this.btf, mapName);
      // struct_ops maps are registered through links, which can be pinned (link/struct-ops.ts)
      if (map.type === 'struct_ops' && kernelHasStructOpsLinks())
        libbpf.mapSetMapFlags(m, libbpf.mapFlags(m) | BPF_F_LINK);
      maps.set(mapName, map);
    }
    this.programs = programs;
    this.maps = maps;
  }

  /** Opens an object from a file path or from the ELF bytes. Nothing is in the kernel yet. */
  static open(source: string | Uint8Array, opts: OpenOptions = {}): BpfObject {
    const name = opts.name ?? (typeof source === 'string' ? basename(source).replace(/\.o$/, '') : 'object');
    const raw = typeof source === 'string' ? readSource(source) : source;
    const old = !libbpfKnowsStructOpsLink(libbpf.majorVersion(), libbpf.minorVersion());
    const plain = old ? withPlainSleepableStructOps(withPlainStructOps(raw, name)) : { bytes: raw, renamed: false };
    const bytes = plain.bytes;
    const openOpts = { sz: OBJECT_OPEN_OPTS_SIZE, object_name: name };
    const { result: ptr, log } = captureLibbpfLog(() => libbpf.objectOpenMem(bytes, bytes.length, openOpts));
    if (!ptr) {
      const errno = lastErrno() || constants.errno.EINVAL;
      throw new BpfError('open object', `"${name}"`, errno, {
        libbpfLog: log,
        hint:
          errno === constants.errno.EINVAL || errno === constants.errno.ENOEXEC
            ? 'not a valid BPF ELF object'
            : undefined,
      });
    }
    return new BpfObject(ptr, name, plain.renamed);
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  private get ptr(): Pointer {
    if (!this.#ptr) throw new BpfError('use', `object "${this.name}"`, Invalid, { hint: 'the object is closed' });
    return this.#ptr;
  }

  program(name: string): Program {
    const p = this.programs.get(name);
    if (!p)
      throw new BpfError('find program', `"${name}" in object "${this.name}"`, NotFound, {
        hint: `programs: ${[...this.programs.keys()].join(', ') || 'none'}`,
      });
    return p;
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m)
      throw new BpfError('find map', `"${name}" in object "${this.name}"`, NotFound, {
        hint: `maps: ${[...this.maps.keys()].join(', ') || 'none'}`,
      });
    return m;
  }

  private sectionOfInternalMap(m: Pointer): string | undefined {
    const id = libbpf.mapBtfValueTypeId(m);
    if (!this.btf || !id) return undefined;
    const t = this.btf.type(id);
    return t.name || undefined;
  }

  /** Global variables of .rodata / .data / .bss, typed from BTF. */
  globals(): GlobalVariable[] {
    if (!this.btf) return [];
    const out: GlobalVariable[] = [];
    for (const section of this.#internal.keys()) {
      if (!isGlobalSection(section)) continue;
      const sec = this.btf.datasec(section);
      for (const v of sec?.vars ?? []) {
        out.push({
          name: v.name,
          section,
          typeId: v.typeId,
          typeName: this.btf.typeName(v.typeId),
          offset: v.offset,
          size: v.size,
        });
      }
    }
    return out;
  }

  private globalVariable(name: string): GlobalVariable {
    const v = this.globals().find((g) => g.name === name);
    if (!v) {
      const known = this.globals().map((g) => g.name);
      throw new BpfError('set global variable', `"${name}" of object "${this.name}"`, NotFound, {
        hint: `known variables: ${known.join(', ') || 'none'}`,
      });
    }
    return v;
  }

  /** Current value of a global variable (before load: its initial value). */
  getGlobal(name: string): unknown {
    const v = this.globalVariable(name);
    const data = this.sectionData(v.section);
    return codecFor(this.btf!, v.typeId).decode(data, v.offset);
  }

  /** Sets a global variable by name before load; the value is checked against its BTF type. */
  setGlobal(name: string, value: unknown): void {
    const v = this.globalVariable(name);
    if (this.#loaded)
      throw new BpfError('set global variable', `"${name}" of object "${this.name}"`, Conflict, {
        hint: 'globals can only be set before load',
      });
    const data = this.sectionData(v.section);
    try {
      codecFor(this.btf!, v.typeId).encode(value, data, v.offset);
    } catch (e) {
      throw new BpfError('set global variable', `"${name}" (${v.typeName}) of object "${this.name}"`, Invalid, {
        hint: (e as Error).message,
        cause: e,
      });
    }
    const m = this.#internal.get(v.section)!;
    check(libbpf.mapSetInitialValue(m, data, data.length), 'set global variable', `"${name}" of object "${this.name}"`);
  }

  setGlobals(values: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(values)) this.setGlobal(k, v);
  }

  private sectionData(section: string): Uint8Array {
    const m = this.#internal.get(section)!;
    const size = [0];
    const p = libbpf.mapInitialValue(m, size);
    if (!p) throw new BpfError('read section', `${section} of object "${this.name}"`, lastErrno());
    return new Uint8Array(koffi.view(p, size[0]).slice(0));
  }

  /** Sets a map's max_entries before load (for maps the object leaves at 0 for its loader to size). */
  resizeMap(name: string, maxEntries: number): void {
    const m = this.map(name);
    if (this.#loaded)
      throw new BpfError('resize map', `"${name}" of object "${this.name}"`, Conflict, {
        hint: 'max_entries can only be set before load',
      });
    check(libbpf.mapSetMaxEntries(m.handle, maxEntries), 'resize map', `"${name}" of object "${this.name}"`);
  }

  /** Sets a map's value size before load (a stack trace map's, which its loader sets to the stack depth). */
  setMapValueSize(name: string, size: number): void {
    const m = this.map(name);
    if (this.#loaded)
      throw new BpfError('set value size', `"${name}" of object "${this.name}"`, Conflict, {
        hint: 'the value size can only be set before load',
      });
    check(libbpf.mapSetValueSize(m.handle, size), 'set value size', `"${name}" of object "${this.name}"`);
  }

  /** A map's value size as it will be created. */
  mapValueSize(name: string): number {
    return libbpf.mapValueSize(this.map(name).handle);
  }

  /** A map's key size as it will be created. */
  mapKeySize(name: string): number {
    return libbpf.mapKeySize(this.map(name).handle);
  }

  /** Sets a map's key size before load. */
  setMapKeySize(name: string, size: number): void {
    const m = this.map(name);
    if (this.#loaded)
      throw new BpfError('set key size', `"${name}" of object "${this.name}"`, Conflict, {
        hint: 'the key size can only be set before load',
      });
    check(libbpf.mapSetKeySize(m.handle, size), 'set key size', `"${name}" of object "${this.name}"`);
  }

  /** The struct (or typedef of one) a map's BTF value type names, e.g. `__type(value, struct event)`. */
  mapValueStruct(name: string): string | undefined {
    const id = libbpf.mapBtfValueTypeId(this.map(name).handle);
    if (!this.btf || !id) return undefined;
    const t = this.btf.type(id);
    const s = this.btf.type(this.btf.resolve(id));
    return s.kind === 'STRUCT' && t.name ? t.name : undefined;
  }

  /** A map's max_entries as it will be created (after resizeMap). */
  mapMaxEntries(name: string): number {
    return libbpf.mapMaxEntries(this.map(name).handle);
  }

  /** Makes the object use an existing map (e.g. a pinned one) instead of creating its own. */
  reuseMap(name: string, map: BpfMap): void {
    const own = this.map(name);
    if (this.#loaded) {
      // libbpf would swap the fd under the loaded programs, which keep using the old map
      throw new BpfError('reuse map', `"${name}" of object "${this.name}"`, Conflict, {
        hint: 'maps can only be reused before load',
      });
    }
    check(
      libbpf.mapReuseFd(own.handle, map.fd),
      'reuse map',
      `"${name}" of object "${this.name}" (from ${map.description})`,
    );
  }

  /** Loads every program (and creates the maps). A rejected program throws VerifierError. */
  load(): this {
    if (this.#loaded) return this;
    const buffers = new Map<Program, Pointer>();
    try {
      for (const prog of this.programs.values()) {
        if (!prog.autoload) continue;
        const buf = koffi.alloc('uint8_t', VERIFIER_LOG_SIZE);
        new Uint8Array(koffi.view(buf, 1))[0] = 0;
        buffers.set(prog, buf);
        libbpf.programSetLogBuf(prog.handle, buf, VERIFIER_LOG_SIZE);
      }
      const { result, log } = captureLibbpfLog(() => libbpf.objectLoad(this.ptr));
      if (result < 0) {
        for (const [prog, buf] of buffers) {
          const text = readCString(buf, VERIFIER_LOG_SIZE);
          if (text) throw new VerifierError(this.name, prog.name, -result, text.split('\n'), log);
        }
        throw new BpfError('load object', `"${this.name}"`, -result, { libbpfLog: log });
      }
      this.#loaded = true;
      return this;
    } finally {
      for (const [prog, buf] of buffers) {
        libbpf.programSetLogBuf(prog.handle, null, 0);
        koffi.free(buf);
      }
    }
  }

  /** Releases every fd of the object. Pinned maps and links stay in the kernel. */
  close(): void {
    if (this.#ptr) {
      for (const p of this.programs.values()) p.objectClosed();
      for (const m of this.maps.values()) m.objectClosed();
      libbpf.objectClose(this.#ptr);
      this.#ptr = null;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function readSource(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BpfError(
      'open object',
      path,
      constants.errno[err.code as keyof typeof constants.errno] ?? constants.errno.EIO,
    );
  }
}

function readCString(ptr: Pointer, max: number): string {
  const bytes = new Uint8Array(koffi.view(ptr, max));
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.subarray(0, end < 0 ? max : end))
    .toString('utf8')
    .trimEnd();
}
