// Test package: tail calls through a program array its loader fills (kbpf.yaml maps.jumps.programs),
// the way bpf-developer-tutorial's pidhide jumps to a `tp/unused` program: the entry program
// counts this process's getgid calls in slot 0 and jumps; the jumped-to program counts in slot 1.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;

__u64 hits[2] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

SEC("tp/syscalls/sys_enter_getgid")
int on_getgid(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 != target_tgid)
		return 0;
	__sync_fetch_and_add(&hits[0], 1);
	bpf_tail_call(ctx, &jumps, 2);
	return 0;
}

SEC("tp/unused")
int on_jump(void *ctx)
{
	__sync_fetch_and_add(&hits[1], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
