// tc: tcx links (kernel 6.6+; a real BPF link that can be pinned and updated in place) or the
// classic clsact qdisc with a cls_bpf filter in direct-action mode (netlink; no link object:
// the returned TcFilter detaches by deleting the filter).

import { closeSync, openSync } from 'node:fs';
import { attachType } from '../constants.js';
import { BpfError, check } from '../errors.js';
import { libbpf } from '../ffi/libbpf.js';
import { netlibc } from '../ffi/libc.js';
import type { Program } from '../program.js';
import { Link } from './link.js';
import { ifindexOf, inNetns } from './netdev.js';
import { type HookPosition, type HookPrograms, linkCreateAt, queryHook } from './order.js';

export type TcDirection = 'ingress' | 'egress';

function tcxType(direction: TcDirection): number {
  return attachType.value(direction === 'ingress' ? 'tcx_ingress' : 'tcx_egress');
}

/**
 * Attaches with tcx (multi-program, link based): at `position` among the programs already on
 * the hook when given, at the end otherwise.
 */
export function attachTcx(
  prog: Program,
  iface: string | number,
  direction: TcDirection,
  position?: HookPosition,
): Link {
  const ifindex = ifindexOf(iface);
  const what = `${prog.description} to tcx ${direction} of ${iface}`;
  const type = tcxType(direction);
  const fd = position
    ? linkCreateAt(
        prog,
        { target: ifindex, attachType: type, kind: 'tcx', description: `tcx ${direction} of ${iface}` },
        position,
        what,
      )
    : libbpf.linkCreate(prog.fd, ifindex, type, null);
  if (fd < 0)
    throw new BpfError('attach', what, -fd, {
      hint: -fd === 22 ? 'the kernel may lack tcx (6.6+): use the clsact mode' : undefined,
    });
  return new Link(fd, `link of ${what}`);
}

/** The tcx programs of an interface's ingress or egress, in the order they run. */
export function tcxHookPrograms(iface: string | number, direction: TcDirection): HookPrograms {
  return queryHook({
    target: ifindexOf(iface),
    attachType: tcxType(direction),
    kind: 'tcx',
    description: `tcx ${direction} of ${iface}`,
  });
}

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

/** struct bpf_tc_hook { size_t sz; int ifindex; enum bpf_tc_attach_point attach_point; __u32 parent; size_t :0; } */
function tcHook(ifindex: number, direction: TcDirection): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, 12);
  return b;
}

/** struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags; __u32 prog_id; __u32 handle; __u32 priority; size_t :0; } */
function tcOpts(progFd: number, handle: number, priority: number, flags = 0): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(flags, 12);
  b.writeUInt32LE(handle, 20);
  b.writeUInt32LE(priority, 24);
  return b;
}

/**
 * A cls_bpf filter on a clsact qdisc. An ifindex only means something in one network namespace,
 * and netlink talks to the caller's: the filter keeps an fd of the namespace it was attached in
 * and updates/detaches there (so detach() from another namespace, e.g. after inNetns() returned,
 * removes this filter and not one on an unrelated interface with the same ifindex).
 */
export class TcFilter {
  #attached = true;
  #netnsFd: number;
  constructor(
    readonly ifindex: number,
    readonly direction: TcDirection,
    readonly handle: number,
    readonly priority: number,
    readonly description: string,
    netnsFd = -1,
  ) {
    this.#netnsFd = netnsFd;
  }

  get attached(): boolean {
    return this.#attached;
  }

  #inOwnNetns<T>(fn: () => T): T {
    return this.#netnsFd >= 0 ? inNetns(`/proc/self/fd/${this.#netnsFd}`, fn) : fn();
  }

  /** Replaces the filter's program in place (tc's replace flag). */
  update(prog: Program): void {
    if (!this.#attached) throw new BpfError('update', this.description, 9, { hint: 'the filter is detached' });
    const ret = this.#inOwnNetns(() =>
      libbpf.tcAttach(tcHook(this.ifindex, this.direction), tcOpts(prog.fd, this.handle, this.priority, 1)),
    );
    check(ret, 'update', `${this.description} to ${prog.description}`);
  }

  detach(): void {
    if (!this.#attached) return;
    try {
      const ret = this.#inOwnNetns(() =>
        libbpf.tcDetach(tcHook(this.ifindex, this.direction), tcOpts(0, this.handle, this.priority)),
      );
      if (ret < 0 && ret !== -2 && ret !== -19) check(ret, 'detach', this.description);
    } finally {
      this.#attached = false;
      if (this.#netnsFd >= 0) closeSync(this.#netnsFd);
      this.#netnsFd = -1;
    }
  }

  close(): void {
    this.detach();
  }
}

/** Attaches with the classic clsact qdisc (created if missing; left in place on detach). */
export function attachTcClsact(
  prog: Program,
  iface: string | number,
  direction: TcDirection,
  opts: { handle?: number; priority?: number } = {},
): TcFilter {
  const ifindex = ifindexOf(iface);
  const what = `${prog.description} to tc ${direction} of ${iface}`;
  const hook = tcHook(ifindex, direction);
  // BPF_TC_INGRESS|BPF_TC_EGRESS as attach point creates the clsact qdisc
  const qdisc = tcHook(ifindex, direction);
  qdisc.writeUInt32LE(BPF_TC_INGRESS | BPF_TC_EGRESS, 12);
  const created = libbpf.tcHookCreate(qdisc);
  if (created < 0 && created !== -17) check(created, 'create clsact qdisc for', what);
  const o = tcOpts(prog.fd, opts.handle ?? 1, opts.priority ?? 1);
  check(libbpf.tcAttach(hook, o), 'attach', what);
  const netnsFd = openSync(`/proc/self/task/${netlibc.gettid()}/ns/net`, 'r');
  return new TcFilter(ifindex, direction, o.readUInt32LE(20), o.readUInt32LE(24), `tc filter of ${what}`, netnsFd);
}

/** tcx where the kernel has it, clsact otherwise. */
export function attachTc(prog: Program, iface: string | number, direction: TcDirection): Link | TcFilter {
  try {
    return attachTcx(prog, iface, direction);
  } catch (e) {
    if (e instanceof BpfError && (e.errno === 22 || e.errno === 95)) return attachTcClsact(prog, iface, direction);
    throw e;
  }
}
