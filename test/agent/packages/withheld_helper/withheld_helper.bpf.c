// Test package: a tracepoint program calling a helper the kernel gives only to XDP programs
// (as tutorial programs call bpf_probe_write_user, which a kernel in lockdown withholds).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} helper_calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&helper_calls, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return bpf_xdp_adjust_head(ctx, 0);
}

char LICENSE[] SEC("license") = "GPL";
