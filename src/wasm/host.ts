// The wasm-bpf host functions (abi.ts) over kbpf's runtime, for one guest. Every pointer the
// guest passes is checked against its memory (-EFAULT), every handle and fd against what this
// guest loaded (-EINVAL, -ENOENT, -EBADF), and every program, attach and map against its
// capability manifest (-EPERM, with a line in the instance's log). Nothing the guest does reaches
// a kernel object it did not load.
import { rmSync } from 'node:fs';
import {
  attachAuto,
  attachCgroup,
  attachXdp,
  BpfError,
  type BpfMap,
  BpfObject,
  type Link,
  MAP_DELETE_ELEM,
  MAP_GET_NEXT_KEY,
  MAP_LOOKUP_ELEM,
  MAP_UPDATE_ELEM,
  numPossibleCpus,
  PerfBufferReader,
  type Program,
  RingBufferReader,
  rawMapOperate,
  waitReadableSync,
} from 'kbpf/bpf';
import { errorMessage } from '../errors.js';
import type { GuestCapabilities } from '../package/package-spec.js';
import { CALLBACK_WRAPPER_EXPORT, EBADF, EFAULT, EINVAL, ENOENT, EPERM } from './abi.js';
import { CapabilityCheck } from './capabilities.js';

/** What the host tells the process that runs the guest (the agent, through guest-main.ts). */
export type HostEvent =
  | { t: 'loaded'; object: number; progs: Record<string, number>; maps: Record<string, number> }
  | { t: 'attached'; object: number; program: string; target: string; link: number }
  | { t: 'closed'; object: number; progs: string[]; maps: string[] }
  | { t: 'refused'; message: string }
  | { t: 'host'; message: string };

export interface HostOptions {
  capabilities: GuestCapabilities;
  /** where the maps of loaded objects are pinned (so `kbpf maps` reads them); undefined: not pinned */
  pinDir?: string;
  report(e: HostEvent): void;
}

type Reader = { kind: 'ring'; reader: RingBufferReader<Buffer> } | { kind: 'perf'; reader: PerfBufferReader<Buffer> };

interface LoadedObject {
  id: number;
  object: BpfObject;
  links: Link[];
  readers: Map<number, Reader>;
  pins: string[];
}

/** Records handed to the guest by one poll call at most (the rest wait for the next call). */
const MAX_RECORDS_PER_POLL = 4096;
const PERF_WAIT_STEP_MS = 2;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

export class WasmBpfHost {
  readonly #objects = new Map<bigint, LoadedObject>();
  readonly #check: CapabilityCheck;
  #nextId = 1;
  #instance?: WebAssembly.Instance;
  #memView?: Uint8Array;
  /** records delivered to the guest's callbacks (for the benchmark) */
  delivered = 0;

  constructor(readonly opts: HostOptions) {
    this.#check = new CapabilityCheck(opts.capabilities);
  }

  /** Called once the guest is instantiated: its memory and table become reachable. */
  bind(instance: WebAssembly.Instance): void {
    this.#instance = instance;
  }

  /** The import objects: `wasm_bpf` and the `callback-wrapper` variant. */
  imports(): Record<string, Record<string, (...a: never[]) => unknown>> {
    return {
      wasm_bpf: {
        wasm_load_bpf_object: (buf: number, size: number) => this.load(buf, size),
        wasm_attach_bpf_program: (obj: bigint, name: number, target: number) => this.attach(obj, name, target),
        wasm_bpf_buffer_poll: (
          obj: bigint,
          fd: number,
          sampleFunc: number,
          ctx: number,
          data: number,
          maxSize: number,
          timeoutMs: number,
        ) => this.poll(obj, fd, { table: sampleFunc }, ctx, data, maxSize, timeoutMs),
        wasm_bpf_map_fd_by_name: (obj: bigint, name: number) => this.mapFdByName(obj, name),
        wasm_bpf_map_operate: (fd: number, cmd: number, key: number, value: number, nextKey: number, flags: bigint) =>
          this.mapOperate(fd, cmd, key, value, nextKey, flags),
        wasm_close_bpf_object: (obj: bigint) => this.close(obj),
      },
      'callback-wrapper': {
        wasm_bpf_buffer_poll: (
          obj: bigint,
          fd: number,
          ctx: number,
          data: number,
          maxSize: number,
          timeoutMs: number,
        ) => this.poll(obj, fd, { export: CALLBACK_WRAPPER_EXPORT }, ctx, data, maxSize, timeoutMs),
      },
    };
  }

  // ---- guest memory ----

  /** The guest's memory as bytes (one view, made anew only when the memory grew). */
  private memory(): Uint8Array {
    const mem = this.#instance?.exports.memory;
    if (!(mem instanceof WebAssembly.Memory)) throw new Error('the guest exports no memory');
    if (this.#memView?.buffer !== mem.buffer) this.#memView = new Uint8Array(mem.buffer);
    return this.#memView;
  }

  private range(ptr: number, size: number): Uint8Array | undefined {
    const mem = this.memory();
    const p = ptr >>> 0;
    if (size < 0 || p + size > mem.length) return undefined;
    return mem.subarray(p, p + size);
  }

  /** A NUL-terminated string in guest memory (at most 4 KiB); undefined when it runs off memory. */
  private cString(ptr: number): string | undefined {
    const mem = this.memory();
    const p = ptr >>> 0;
    const end = mem.indexOf(0, p);
    if (p >= mem.length || end < 0 || end - p > 4096) return undefined;
    return Buffer.from(mem.subarray(p, end)).toString('utf8');
  }

  private refuse(message: string): number {
    this.opts.report({ t: 'refused', message });
    return -EPERM;
  }

  private fail(what: string, e: unknown): number {
    this.opts.report({ t: 'host', message: `${what}: ${errorMessage(e)}` });
    return e instanceof BpfError && e.errno > 0 ? -e.errno : -EINVAL;
  }

  // ---- the host functions ----

  load(buf: number, size: number): bigint {
    if (size <= 0) return 0n;
    const bytes = this.range(buf, size);
    if (!bytes) return 0n;
    const id = this.#nextId++;
    let object: BpfObject;
    try {
      object = BpfObject.open(Uint8Array.from(bytes), { name: `guest-object-${id}` });
    } catch (e) {
      this.fail('open BPF object', e);
      return 0n;
    }
    try {
      for (const p of object.programs.values()) {
        const why = this.#check.programType(p.type, p.name);
        if (why) {
          this.refuse(`refused to load object ${id}: ${why}`);
          object.close();
          return 0n;
        }
      }
      for (const name of userMaps(object)) {
        const why = this.#check.map(name);
        if (why) {
          this.refuse(`refused to load object ${id}: ${why}`);
          object.close();
          return 0n;
        }
      }
      object.load();
    } catch (e) {
      object.close();
      this.fail(`load BPF object ${id}`, e);
      return 0n;
    }
    const loaded: LoadedObject = { id, object, links: [], readers: new Map(), pins: [] };
    if (this.opts.pinDir) {
      for (const name of userMaps(object)) {
        const path = `${this.opts.pinDir}/${name}`;
        try {
          object.map(name).pin(path);
          loaded.pins.push(path);
        } catch (e) {
          this.opts.report({ t: 'host', message: `map ${name} is not shown by kbpf maps: ${errorMessage(e)}` });
        }
      }
    }
    const handle = BigInt(id);
    this.#objects.set(handle, loaded);
    this.opts.report({
      t: 'loaded',
      object: id,
      progs: Object.fromEntries([...object.programs].map(([n, p]) => [n, p.id])),
      maps: Object.fromEntries(userMaps(object).map((n) => [n, object.map(n).id])),
    });
    return handle;
  }

  attach(handle: bigint, namePtr: number, targetPtr: number): number {
    const o = this.#objects.get(handle);
    if (!o) return -EINVAL;
    const name = this.cString(namePtr);
    const target = targetPtr === 0 ? '' : this.cString(targetPtr);
    if (name === undefined || target === undefined) return -EFAULT;
    const prog = o.object.programs.get(name);
    if (!prog) {
      this.opts.report({ t: 'host', message: `attach: object ${o.id} has no program "${name}"` });
      return -ENOENT;
    }
    const why = this.#check.attach(name, prog.section, target);
    if (why) return this.refuse(`refused: ${why}`);
    try {
      const link = attachWith(prog, target);
      o.links.push(link);
      this.opts.report({ t: 'attached', object: o.id, program: name, target: target || prog.section, link: link.id });
      return 0;
    } catch (e) {
      return this.fail(`attach ${name}${target ? ` to ${target}` : ''}`, e);
    }
  }

  mapFdByName(handle: bigint, namePtr: number): number {
    const o = this.#objects.get(handle);
    if (!o) return -EINVAL;
    const name = this.cString(namePtr);
    if (name === undefined) return -EFAULT;
    const map = o.object.maps.get(name);
    if (!map) return -ENOENT;
    const why = this.#check.map(name);
    if (why) return this.refuse(`refused: ${why}`);
    return map.fd;
  }

  /** The map of one of this guest's objects with this fd. */
  private mapOfFd(fd: number): { o: LoadedObject; name: string; map: BpfMap } | undefined {
    for (const o of this.#objects.values())
      for (const [name, map] of o.object.maps) if (map.fd === fd) return { o, name, map };
    return undefined;
  }

  mapOperate(fd: number, cmd: number, keyPtr: number, valuePtr: number, nextPtr: number, flags: bigint): number {
    const found = this.mapOfFd(fd);
    if (!found) return -EBADF;
    const why = this.#check.map(found.name);
    if (why) return this.refuse(`refused: ${why}`);
    const { map } = found;
    const valueSize = map.isPerCpu ? Math.ceil(map.valueSize / 8) * 8 * numPossibleCpus() : map.valueSize;
    const keyed = map.keySize > 0;
    const key = keyed && keyPtr !== 0 ? (this.range(keyPtr, map.keySize) ?? null) : null;
    if (keyed && keyPtr !== 0 && !key) return -EFAULT;
    let value: Uint8Array | null = null;
    let next: Uint8Array | null = null;
    switch (cmd) {
      case MAP_LOOKUP_ELEM:
      case MAP_UPDATE_ELEM:
        value = this.range(valuePtr, valueSize) ?? null;
        if (!value || (keyed && !key)) return -EFAULT;
        break;
      case MAP_DELETE_ELEM:
        if (!key) return -EFAULT;
        break;
      case MAP_GET_NEXT_KEY:
        next = this.range(nextPtr, map.keySize) ?? null;
        if (!next) return -EFAULT;
        break;
      default:
        return -EINVAL;
    }
    // the kernel reads and writes copies: guest memory is a JavaScript buffer, not C memory
    const k = key && Uint8Array.from(key);
    const v = value && Uint8Array.from(value);
    const n = next && Uint8Array.from(next);
    const ret = rawMapOperate(fd, cmd, k, v, n, Number(flags));
    if (ret === 0) {
      if (value && v && cmd === MAP_LOOKUP_ELEM) this.range(valuePtr, valueSize)!.set(v);
      if (next && n) this.range(nextPtr, map.keySize)!.set(n);
    }
    return ret;
  }

  poll(
    handle: bigint,
    fd: number,
    callback: { table: number } | { export: string },
    ctx: number,
    data: number,
    maxSize: number,
    timeoutMs: number,
  ): number {
    const o = this.#objects.get(handle);
    if (!o) return -EINVAL;
    if (maxSize < 0 || !this.range(data, maxSize)) return -EFAULT;
    let reader = o.readers.get(fd);
    if (!reader) {
      const entry = [...o.object.maps].find(([, m]) => m.fd === fd);
      if (!entry) return -ENOENT;
      const [name, map] = entry;
      const why = this.#check.map(name);
      if (why) return this.refuse(`refused: ${why}`);
      try {
        if (map.type === 'ringbuf')
          reader = { kind: 'ring', reader: new RingBufferReader<Buffer>(map, { decode: 'raw', ref: false }) };
        else if (map.type === 'perf_event_array')
          reader = { kind: 'perf', reader: new PerfBufferReader<Buffer>(map, { decode: 'raw', ref: false }) };
        else {
          this.opts.report({ t: 'host', message: `poll: map ${name} is a ${map.type}, not a ring or perf buffer` });
          return -EINVAL;
        }
      } catch (e) {
        return this.fail(`open the buffer of map ${name}`, e);
      }
      o.readers.set(fd, reader);
    }
    const fn = this.callbackOf(callback);
    if (!fn) return -EINVAL;
    const deliver = (bytes: Uint8Array): number => {
      const n = Math.min(bytes.length, maxSize);
      const mem = this.memory();
      const at = data >>> 0;
      if (at + n > mem.length) return -EFAULT;
      mem.set(n === bytes.length ? bytes : bytes.subarray(0, n), at);
      this.delivered++;
      return Number(fn(ctx, data, n)) | 0;
    };
    let count = this.drain(reader, deliver);
    if (count !== 0 || timeoutMs <= 0) return count;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return 0;
      if (reader.kind === 'ring') waitReadableSync(reader.reader.map.fd, left);
      else Atomics.wait(sleeper, 0, 0, Math.min(left, PERF_WAIT_STEP_MS));
      count = this.drain(reader, deliver);
      if (count !== 0) return count;
    }
  }

  /** Hands what the buffer holds to the guest, record by record; a non-zero callback answer stops. */
  private drain(reader: Reader, deliver: (b: Uint8Array) => number): number {
    let count = 0;
    let stop = 0;
    if (reader.kind === 'ring') {
      let ring: DataView | undefined;
      let bytes: Uint8Array | undefined;
      count = reader.reader.consumeRaw((view, offset, length) => {
        if (view !== ring) {
          ring = view;
          bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        }
        stop = deliver(bytes!.subarray(offset, offset + length));
        return stop === 0;
      }, MAX_RECORDS_PER_POLL);
    } else {
      reader.reader.consume((rec) => {
        if (stop === 0) {
          stop = deliver(rec);
          count++;
        }
      }, MAX_RECORDS_PER_POLL);
    }
    return stop !== 0 ? stop : count;
  }

  private callbackOf(c: { table: number } | { export: string }): ((...a: number[]) => unknown) | undefined {
    const exports = this.#instance?.exports;
    if (!exports) return undefined;
    if ('export' in c) {
      const f = exports[c.export];
      if (typeof f !== 'function') {
        this.opts.report({ t: 'host', message: `poll: the guest exports no function ${c.export}` });
        return undefined;
      }
      return f as (...a: number[]) => unknown;
    }
    const table = exports.__indirect_function_table;
    if (!(table instanceof WebAssembly.Table) || c.table >>> 0 >= table.length) {
      this.opts.report({ t: 'host', message: `poll: callback ${c.table} is not in the guest's function table` });
      return undefined;
    }
    const f = table.get(c.table >>> 0);
    if (typeof f !== 'function') return undefined;
    return f as (...a: number[]) => unknown;
  }

  close(handle: bigint): number {
    const o = this.#objects.get(handle);
    if (!o) return -EINVAL;
    this.#objects.delete(handle);
    this.release(o);
    return 0;
  }

  /** Releases everything the guest loaded (it exited, trapped or is being stopped). */
  closeAll(): void {
    for (const [h, o] of [...this.#objects]) {
      this.#objects.delete(h);
      this.release(o);
    }
  }

  private release(o: LoadedObject): void {
    for (const r of o.readers.values()) r.reader.close();
    for (const l of o.links) {
      try {
        l.close();
      } catch {
        // a link the kernel already dropped
      }
    }
    const progs = [...o.object.programs.keys()];
    const maps = userMaps(o.object);
    for (const p of o.pins) rmSync(p, { force: true });
    o.object.close();
    this.opts.report({ t: 'closed', object: o.id, progs, maps });
  }
}

/** Maps a guest names (internal .rodata/.bss/.data maps and .kconfig excluded). */
function userMaps(object: BpfObject): string[] {
  return [...object.maps.keys()].filter((n) => !n.startsWith('.'));
}

/** As wasm-bpf does: an explicit target for sockops/cgroup (a cgroup path) and xdp (an interface), else libbpf's own attach from the section. */
function attachWith(prog: Program, target: string): Link {
  if (target) {
    if (prog.type === 'xdp') return attachXdp(prog, target);
    if (prog.type === 'sock_ops' || prog.type.startsWith('cgroup')) return attachCgroup(prog, target);
  }
  return attachAuto(prog);
}
