// cgroup v2 hooks: sock_addr (connect/bind/sendmsg/recvmsg/getpeername/getsockname, v4 and v6),
// sockopt, sock_ops, cgroup_skb ingress/egress, sock_create, sock_release, post_bind.
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants } from 'node:os';
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { libbpf } from '../ffi/libbpf.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

/** Attaches to the cgroup at cgroupPath (a cgroup v2 directory) with a BPF link. */
export function attachCgroup(prog: Program, cgroupPath: string, type?: string): Link {
  const typeId = type ? attachType.value(type) : prog.expectedAttachTypeId;
  const typeName = attachType.name(typeId);
  if (!type && typeId === 0 && prog.type !== 'cgroup_skb') {
    throw new BpfError('attach', `${prog.description} to cgroup ${cgroupPath}`, constants.errno.EINVAL, {
      hint: 'no attach type: name one, or use a section like cgroup/connect4',
    });
  }
  let cgFd: number;
  try {
    cgFd = openSync(cgroupPath, fsConstants.O_DIRECTORY | fsConstants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new BpfError(
      'attach',
      `${prog.description} to cgroup ${cgroupPath}`,
      constants.errno[code as keyof typeof constants.errno] ?? constants.errno.EIO,
      { hint: 'cannot open the cgroup directory' },
    );
  }
  try {
    const fd = libbpf.linkCreate(prog.fd, cgFd, typeId, null);
    const what = `${prog.description} to cgroup ${cgroupPath} (${typeName})`;
    if (fd < 0) {
      const hint =
        -fd === constants.errno.EBADF
          ? 'not a cgroup v2 directory (cgroup2 is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified)'
          : undefined;
      throw new BpfError('attach', what, -fd, { hint });
    }
    return new Link(fd, `link of ${what}`);
  } finally {
    closeSync(cgFd);
  }
}
