// Test package: a map left at max_entries 0 for its loader to size, as real tools do.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
} per_pid SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int count_pid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1;
	bpf_map_update_elem(&per_pid, &pid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
