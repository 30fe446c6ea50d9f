// Which fields of a record hold stacks, by their names, as the tools name them: shared by the
// event formats `kbpf build` infers and the map dumps the agent symbolizes.

/** arrays of 64-bit code addresses: stacks, callers, instruction pointers */
export const ADDRESS_LIST = /(^|_)(k|u|kern|kernel|user)?_?(stack|callers|ips?|addrs)$/;
/** the id of a stack in a stack trace map (bpf_get_stackid) */
export const STACK_ID = /(^|_)(k|u|kern|kernel|user)?_?stack_?id$/;
/** the fields naming the process whose user stack it is: the process (tgid) before the thread */
export const PID_FIELDS = ['tgid', 'pid', 'tid'] as const;

/** Whose addresses a stack field named so holds: `kstack`, `kern_stack_id` the kernel's, `ustack` a process's. */
export function stackSpace(name: string): 'kernel' | 'user' | undefined {
  const m = /^(k|u|kern|kernel|user)_?(stack|callers|ips?|addrs)/.exec(name.toLowerCase());
  if (!m) return undefined;
  return m[1]!.startsWith('k') ? 'kernel' : 'user';
}
