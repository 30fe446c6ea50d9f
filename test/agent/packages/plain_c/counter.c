// Test package: a BPF source named NAME.c, not NAME.bpf.c (as cilium/ebpf's bpf2go examples
// are, beside their Go code), with a helper .c file of no BPF sections that is not compiled.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} exec_count SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int count_exec(void *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&exec_count, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
