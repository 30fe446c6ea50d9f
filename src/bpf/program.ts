// A BPF program: either one of a BpfObject's (libbpf owns it) or one re-opened by fd/pin.

import { Conflict, Invalid } from '../errors.js';
import { attachType, progType } from './constants.js';
import { BpfError, check } from './errors.js';
import type { Pointer } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import { libc } from './ffi/libc.js';
import { type ProgInfo, progInfo } from './info.js';
import { originalSection } from './struct-ops-sections.js';

export class Program {
  #fd: number;
  #ptr: Pointer | null;
  #objectClosed = false;
  readonly #ownsFd: boolean;

  private constructor(
    readonly name: string,
    readonly objectName: string,
    ptr: Pointer | null,
    fd: number,
    ownsFd: boolean,
    readonly section: string,
  ) {
    this.#ptr = ptr;
    this.#fd = fd;
    this.#ownsFd = ownsFd;
  }

  /** @internal one of an object's programs */
  static ofObject(objectName: string, ptr: Pointer, renamedSleepable = false): Program {
    const section = libbpf.programSectionName(ptr);
    return new Program(
      libbpf.programName(ptr),
      objectName,
      ptr,
      -1,
      false,
      renamedSleepable ? originalSection(section) : section,
    );
  }

  /** Re-opens a pinned program. The returned Program owns its fd: close() it. */
  static fromPin(path: string): Program {
    const fd = libbpf.objGet(path);
    if (fd < 0) throw new BpfError('open pinned program', path, -fd);
    return Program.fromFd(fd, `pin ${path}`);
  }

  /** Opens a loaded program by its id. The returned Program owns its fd: close() it. */
  static fromId(id: number): Program {
    const fd = libbpf.progGetFdById(id);
    if (fd < 0) throw new BpfError('open program', `id ${id}`, -fd);
    return Program.fromFd(fd, `id ${id}`);
  }

  /** Wraps an fd of a loaded program (takes ownership). */
  static fromFd(fd: number, origin = 'fd'): Program {
    const info = progInfo(fd);
    return new Program(info.name, origin, null, fd, true, '');
  }

  /** libbpf's program, for attach functions that need it (tracepoints, uprobes). */
  get handle(): Pointer | null {
    return this.#ptr;
  }

  get description(): string {
    return `program "${this.name}"${this.objectName ? ` of ${this.objectName.startsWith('pin ') ? this.objectName : `object "${this.objectName}"`}` : ''}`;
  }

  /** Program type as bpftool names it, e.g. "cgroup_sock_addr". */
  get type(): string {
    if (this.#ptr) return progType.name(libbpf.programType(this.#ptr));
    return progInfo(this.fd).type;
  }

  /** Expected attach type (from the section name), e.g. "cgroup_inet4_connect". */
  get expectedAttachType(): string {
    if (!this.#ptr) return 'unspec';
    return attachType.name(libbpf.programExpectedAttachType(this.#ptr));
  }

  get expectedAttachTypeId(): number {
    return this.#ptr ? libbpf.programExpectedAttachType(this.#ptr) : 0;
  }

  /** Number of instructions (before load; after load, as loaded). */
  get insnCount(): number {
    return this.#ptr ? libbpf.programInsnCnt(this.#ptr) : 0;
  }

  get loaded(): boolean {
    return this.fdOrNegative >= 0;
  }

  private get fdOrNegative(): number {
    return this.#ptr ? libbpf.programFd(this.#ptr) : this.#fd;
  }

  /** @internal its object was closed: libbpf's program is gone with it */
  objectClosed(): void {
    this.#ptr = null;
    this.#objectClosed = true;
  }

  /** The program's fd; throws if it is not loaded. */
  get fd(): number {
    if (this.#objectClosed) throw new BpfError('use', this.description, Invalid, { hint: 'its object is closed' });
    const fd = this.fdOrNegative;
    if (fd < 0)
      throw new BpfError('use', this.description, Invalid, {
        hint: 'the program is not loaded (call load() on its object first)',
      });
    return fd;
  }

  info(): ProgInfo {
    return progInfo(this.fd);
  }

  /** Kernel id of the loaded program. */
  get id(): number {
    return this.info().id;
  }

  setType(type: string): void {
    this.requireUnloaded('set type of');
    check(libbpf.programSetType(this.#ptr, progType.value(type)), 'set type of', this.description);
  }

  setExpectedAttachType(type: string): void {
    this.requireUnloaded('set expected attach type of');
    check(
      libbpf.programSetExpectedAttachType(this.#ptr, attachType.value(type)),
      'set expected attach type of',
      this.description,
    );
  }

  /** Whether load() loads this program (default true). */
  setAutoload(on: boolean): void {
    this.requireUnloaded('set autoload of');
    check(libbpf.programSetAutoload(this.#ptr, on), 'set autoload of', this.description);
  }

  get autoload(): boolean {
    return this.#ptr ? libbpf.programAutoload(this.#ptr) : true;
  }

  pin(path: string): void {
    check(libbpf.objPin(this.fd, path), 'pin', `${this.description} at ${path}`);
  }

  /** Closes the fd of a re-opened program; object programs are closed with their object. */
  close(): void {
    if (this.#ownsFd && this.#fd >= 0) {
      libc.close(this.#fd);
      this.#fd = -1;
    }
  }

  private requireUnloaded(op: string): void {
    if (!this.#ptr || this.loaded) {
      throw new BpfError(op, this.description, Conflict, {
        hint: 'only possible before the object is loaded',
      });
    }
  }
}
