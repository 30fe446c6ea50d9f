// Test package: loops written with bpf_for, bpf_repeat and bpf_for_each (newer libbpf headers'
// macros over the kernel's numbers iterator), as tutorial programs use them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} loop_sums SEC(".maps");

static void add(__u32 slot, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&loop_sums, &slot);

	if (p)
		__sync_fetch_and_add(p, v);
}

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
	__u64 sum = 0, times = 0, each = 0;
	int i, *v;

	bpf_for(i, 0, 10) sum += i;
	bpf_repeat(3) times++;
	bpf_for_each(num, v, 1, 5) each += *v;
	add(0, sum);   /* 45 per exec */
	add(1, times); /* 3 */
	add(2, each);  /* 1+2+3+4 = 10 */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
