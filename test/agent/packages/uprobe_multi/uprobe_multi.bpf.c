// Test package: uprobe.multi sections (newer than Debian's libbpf 1.1), whose binary and
// function pattern run gives: entries and returns of every matching function are counted.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} multi_calls SEC(".maps"); /* 0: entries, 1: returns */

static __always_inline void count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&multi_calls, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("uprobe.multi")
int on_entry(struct pt_regs *ctx)
{
	count(0);
	return 0;
}

SEC("uretprobe.multi")
int on_return(struct pt_regs *ctx)
{
	count(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
