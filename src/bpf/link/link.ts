// A link: a program attached to a hook, as a kernel object with its own fd. It can be pinned,
// re-opened from its pin, switched to another program in place (bpf_link_update), detached,
// and closed. Closing an unpinned link detaches the program.

import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError, check } from '../errors.js';
import type { Pointer } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { libc } from '../ffi/libc.js';
import { type LinkInfo, linkInfo } from '../info.js';
import type { Program } from '../program.js';

export class Link {
  #fd: number;
  #libbpfLink: Pointer | null;
  #pinPath: string | null = null;

  /** @internal */
  constructor(
    fd: number,
    readonly description: string,
    libbpfLink: Pointer | null = null,
  ) {
    this.#fd = fd;
    this.#libbpfLink = libbpfLink;
  }

  /** @internal a link made by one of libbpf's attach functions */
  static fromLibbpf(ptr: Pointer, description: string): Link {
    return new Link(libbpf.linkFd(ptr), description, ptr);
  }

  /** Re-opens a pinned link. */
  static fromPin(path: string): Link {
    const fd = libbpf.objGet(path);
    if (fd < 0) throw new BpfError('open pinned link', path, -fd);
    const link = new Link(fd, `link pinned at ${path}`);
    link.#pinPath = path;
    return link;
  }

  get fd(): number {
    if (this.#fd < 0)
      throw new BpfError('use', this.description, constants.errno.EBADF, { hint: 'the link is closed' });
    return this.#fd;
  }

  get pinPath(): string | null {
    return this.#pinPath;
  }

  info(): LinkInfo {
    return linkInfo(this.fd);
  }

  get id(): number {
    return this.info().id;
  }

  /** Pins the link in bpffs: it then outlives this process. */
  pin(path: string): void {
    check(libbpf.objPin(this.fd, path), 'pin', `${this.description} at ${path}`);
    this.#pinPath = path;
  }

  /** Removes the pin (the link lives on while this handle is open). */
  unpin(): void {
    if (!this.#pinPath) return;
    try {
      unlinkSync(this.#pinPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.#pinPath = null;
  }

  /** Atomically replaces the attached program; the hook is never left uncovered. */
  update(program: Program): void {
    check(libbpf.linkUpdate(this.fd, program.fd, null), 'update', `${this.description} to ${program.description}`, {
      hint: 'this kind of link may not support in-place update',
    });
  }

  /**
   * Detaches the program from its hook now, even if the link is pinned or other fds to it exist.
   * Links the kernel cannot detach explicitly (perf-event based: tracepoints, uprobes) are
   * detached when their last reference goes; for those this unpins and closes.
   */
  detach(): void {
    const ret = libbpf.linkDetach(this.fd);
    if (ret < 0 && ret !== -constants.errno.EOPNOTSUPP && ret !== -constants.errno.EINVAL && ret !== -524) {
      check(ret, 'detach', this.description);
    }
    this.unpin();
    this.close();
  }

  /** Releases this process's handle. An unpinned link detaches when the last handle goes. */
  close(): void {
    if (this.#libbpfLink) {
      libbpf.linkDestroy(this.#libbpfLink);
      this.#libbpfLink = null;
    } else if (this.#fd >= 0) {
      libc.close(this.#fd);
    }
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
