// Test package: map sharing — the owner writes its own key into a hash map "tally".
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} tally SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int count_owner(void *ctx)
{
	__u32 key = 1;
	__u64 one = 1, *n = bpf_map_lookup_elem(&tally, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&tally, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
