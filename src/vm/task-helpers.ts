// Helpers that ask about the task or socket a program runs for (bpf_get_current_pid_tgid,
// _uid_gid, _comm, _cgroup_id, _ancestor_cgroup_id, bpf_get_socket_cookie, bpf_get_netns_cookie).
// In user space there is no such task: the embedder (or a test case's `task:`) says what they
// answer, so a cgroup/connect4 program gives the same result for the same task every time. There
// are no other sockets either: bpf_sk_lookup_tcp/_udp find none (NULL), so bpf_sk_release is
// never given one.
import { VmFault } from './errors.js';
import type { Helper } from './helpers.js';

export interface VmTask {
  pid?: number;
  /** default: pid */
  tgid?: number;
  uid?: number;
  gid?: number;
  comm?: string;
  cgroupId?: bigint;
  /** bpf_get_current_ancestor_cgroup_id(level) by level (0 when not given) */
  ancestorCgroupIds?: ReadonlyMap<number, bigint>;
  socketCookie?: bigint;
  netnsCookie?: bigint;
}

const u64 = (n: number | bigint) => BigInt.asUintN(64, BigInt(n));

/** The task helpers answering for `task`, by helper id (to give as VmOptions.helpers). */
export function taskHelpers(task: VmTask): Map<number, Helper> {
  const pid = task.pid ?? 0;
  return new Map<number, Helper>([
    [14, () => (u64(task.tgid ?? pid) << 32n) | u64(pid >>> 0)],
    [15, () => (u64(task.gid ?? 0) << 32n) | u64((task.uid ?? 0) >>> 0)],
    [
      16,
      (env, buf, size) => {
        const out = env.mem.writable(buf, Number(size));
        out.fill(0);
        const name = new TextEncoder().encode(task.comm ?? '').subarray(0, Math.max(0, out.length - 1));
        out.set(name);
        return 0n;
      },
    ],
    [80, () => u64(task.cgroupId ?? 0n)],
    [123, (_env, level) => u64(task.ancestorCgroupIds?.get(Number(level)) ?? 0n)],
    [46, () => u64(task.socketCookie ?? 0n)],
    [122, () => u64(task.netnsCookie ?? 0n)],
    [84, () => 0n],
    [85, () => 0n],
    [
      86,
      (_env, sk) => {
        throw new VmFault(`sk_release of 0x${sk.toString(16)}: not a socket from bpf_sk_lookup_*`);
      },
    ],
  ]);
}
