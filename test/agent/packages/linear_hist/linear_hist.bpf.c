// Test package: a linear histogram in a global variable, as bcc's runqlen keeps run queue
// lengths: slot i counts the value i (no log2 taken). Counts the getgid calls of one process
// by their number modulo 4.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct hist {
	__u32 slots[8];
};

const volatile __u32 target_tgid = 0;

struct hist lens = {};
__u64 seen = 0;

SEC("tracepoint/syscalls/sys_enter_getgid")
int on_getgid(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 != target_tgid)
		return 0;
	__u64 n = __sync_fetch_and_add(&seen, 1);

	__sync_fetch_and_add(&lens.slots[n & 3], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
