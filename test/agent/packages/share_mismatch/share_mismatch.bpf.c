// Test package: a map "tally" of another layout (32-bit values) than share_owner's.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} tally SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int count_mismatch(void *ctx)
{
	__u32 key = 3, one = 1;
	bpf_map_update_elem(&tally, &key, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
