// Program order on one multi-program hook (the kernel's "mprog" API): tcx (6.6+) and cgroup
// links (6.16+) take BPF_F_BEFORE / BPF_F_AFTER relative to a link (BPF_F_LINK | BPF_F_ID: the
// kernel refuses a program as the anchor when that program is attached through a link) in
// BPF_LINK_CREATE, and
// BPF_PROG_QUERY lists a hook's programs in the order they run, with a revision that is 0 on
// kernels without the mprog API for that hook. Debian's libbpf 1.1 knows neither, so both
// commands are made here through bpf(2).

import { archInfo } from '../arch.js';
import { BpfError, UnsupportedError } from '../errors.js';
import { addressOf, koffi, lastErrno } from '../ffi/koffi.js';
import { libc } from '../ffi/libc.js';
import type { Program } from '../program.js';

const BPF_PROG_QUERY = 16;
const BPF_LINK_CREATE = 28;
const ATTR_SIZE = 64;
const BPF_F_BEFORE = 1 << 3;
const BPF_F_AFTER = 1 << 4;
const BPF_F_ID = 1 << 5;
const BPF_F_LINK = 1 << 13;
const MAX_PROGS = 64;

/** Where a new program goes among those on its hook: before or after the link of that id. */
export type HookPosition = { before: number } | { after: number };

/** A hook: a cgroup (an fd of its directory) or a network device (ifindex), with an attach type. */
export interface HookTarget {
  /** cgroup directory fd, or ifindex */
  target: number;
  attachType: number;
  /** "cgroup" or "tcx": names the feature when the kernel lacks ordering there */
  kind: 'cgroup' | 'tcx';
  /** for messages: the cgroup's path or the interface, and the attach type's name */
  description: string;
}

/** The programs on a hook in the order they run, and the hook's revision (0: no mprog API). */
export interface HookPrograms {
  progIds: number[];
  linkIds: number[];
  revision: bigint;
}

/** BPF_PROG_QUERY of one hook: its programs in run order. */
export function queryHook(hook: HookTarget): HookPrograms {
  const ids = koffi.alloc('uint32_t', MAX_PROGS);
  const links = koffi.alloc('uint32_t', MAX_PROGS);
  try {
    const attr = Buffer.alloc(ATTR_SIZE);
    attr.writeUInt32LE(hook.target, 0);
    attr.writeUInt32LE(hook.attachType, 4);
    attr.writeBigUInt64LE(addressOf(ids), 16);
    attr.writeUInt32LE(MAX_PROGS, 24);
    attr.writeBigUInt64LE(addressOf(links), 40);
    const ret = Number(libc.bpf(archInfo().sysBpf, BPF_PROG_QUERY, attr, ATTR_SIZE));
    if (ret < 0) throw new BpfError('list the programs on', hook.description, lastErrno());
    const count = Math.min(attr.readUInt32LE(24), MAX_PROGS);
    const progIds = [...new Uint32Array(koffi.view(ids, count * 4), 0, count)];
    const linkIds = [...new Uint32Array(koffi.view(links, count * 4), 0, count)];
    return { progIds, linkIds, revision: attr.readBigUInt64LE(56) };
  } finally {
    koffi.free(ids);
    koffi.free(links);
  }
}

const FEATURE = {
  cgroup: 'cgroup multi-program order (BPF_F_BEFORE/BPF_F_AFTER in BPF_LINK_CREATE, kernel 6.16+)',
  tcx: 'tcx multi-program order (BPF_F_BEFORE/BPF_F_AFTER, kernel 6.6+)',
};

/** Whether the kernel orders programs on this kind of hook (its query reports a revision). */
export function supportsOrder(hook: HookTarget): boolean {
  try {
    return queryHook(hook).revision > 0n;
  } catch {
    return false;
  }
}

/**
 * BPF_LINK_CREATE at a position among the hook's programs. Refuses with UnsupportedError, naming
 * the feature, where the kernel has no order on this hook.
 */
export function linkCreateAt(prog: Program, hook: HookTarget, position: HookPosition, what: string): number {
  if (!supportsOrder(hook))
    throw new UnsupportedError(
      'attach',
      what,
      'this kernel runs the programs of this hook in attach order only: drop programs.*.order',
      FEATURE[hook.kind],
    );
  const attr = Buffer.alloc(ATTR_SIZE);
  attr.writeUInt32LE(prog.fd, 0);
  attr.writeUInt32LE(hook.target, 4);
  attr.writeUInt32LE(hook.attachType, 8);
  const before = 'before' in position;
  attr.writeUInt32LE((before ? BPF_F_BEFORE : BPF_F_AFTER) | BPF_F_LINK | BPF_F_ID, 12);
  attr.writeUInt32LE(before ? position.before : position.after, 16);
  const fd = Number(libc.bpf(archInfo().sysBpf, BPF_LINK_CREATE, attr, ATTR_SIZE));
  if (fd < 0) {
    const errno = lastErrno();
    const rel = before ? `before link ${position.before}` : `after link ${position.after}`;
    throw new BpfError('attach', `${what} ${rel}`, errno, {
      hint: errno === 2 ? 'that link is no longer on this hook' : undefined,
    });
  }
  return fd;
}
