// cgroup v2 hooks: sock_addr (connect/bind/sendmsg/recvmsg/getpeername/getsockname, v4 and v6),
// sockopt, sock_ops, cgroup_skb ingress/egress, sock_create, sock_release, post_bind.
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants } from 'node:os';
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { libbpf } from '../ffi/libbpf.js';
import type { Program } from '../program.js';
import { Link } from './link.js';
import { type HookPosition, type HookPrograms, linkCreateAt, queryHook } from './order.js';

function openCgroup<T>(cgroupPath: string, what: string, fn: (fd: number) => T): T {
  let cgFd: number;
  try {
    cgFd = openSync(cgroupPath, fsConstants.O_DIRECTORY | fsConstants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new BpfError('attach', what, constants.errno[code as keyof typeof constants.errno] ?? constants.errno.EIO, {
      hint: 'cannot open the cgroup directory',
    });
  }
  try {
    return fn(cgFd);
  } finally {
    closeSync(cgFd);
  }
}

/**
 * Attaches to the cgroup at cgroupPath (a cgroup v2 directory) with a BPF link; at `position`
 * among the programs already there when given (kernel 6.16+), at the end otherwise.
 */
export function attachCgroup(prog: Program, cgroupPath: string, type?: string, position?: HookPosition): Link {
  const typeId = type ? attachType.value(type) : prog.expectedAttachTypeId;
  const typeName = attachType.name(typeId);
  if (!type && typeId === 0 && prog.type !== 'cgroup_skb') {
    throw new BpfError('attach', `${prog.description} to cgroup ${cgroupPath}`, constants.errno.EINVAL, {
      hint: 'no attach type: name one, or use a section like cgroup/connect4',
    });
  }
  const what = `${prog.description} to cgroup ${cgroupPath} (${typeName})`;
  return openCgroup(cgroupPath, `${prog.description} to cgroup ${cgroupPath}`, (cgFd) => {
    const fd = position
      ? linkCreateAt(
          prog,
          { target: cgFd, attachType: typeId, kind: 'cgroup', description: `cgroup ${cgroupPath} (${typeName})` },
          position,
          what,
        )
      : libbpf.linkCreate(prog.fd, cgFd, typeId, null);
    if (fd < 0) {
      const hint =
        -fd === constants.errno.EBADF
          ? 'not a cgroup v2 directory (cgroup2 is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified)'
          : undefined;
      throw new BpfError('attach', what, -fd, { hint });
    }
    return new Link(fd, `link of ${what}`);
  });
}

/** The programs attached to one hook of a cgroup (not inherited ones), in the order they run. */
export function cgroupHookPrograms(cgroupPath: string, type: string): HookPrograms {
  const typeId = attachType.value(type);
  const description = `cgroup ${cgroupPath} (${type})`;
  return openCgroup(cgroupPath, description, (target) =>
    queryHook({ target, attachType: typeId, kind: 'cgroup', description }),
  );
}
