// Test package: a stack trace map without a size or a value size (bcc's tools set both from
// their loader), counting user stacks of exec calls.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
} stackmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} stack_hits SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
	__s64 id = bpf_get_stackid(ctx, &stackmap, BPF_F_USER_STACK);
	__u32 key = id < 0 ? 0xffffffff : (__u32)id;
	__u64 one = 1, *n = bpf_map_lookup_elem(&stack_hits, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&stack_hits, &key, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
