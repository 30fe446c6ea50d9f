// Test package: bare kprobe and kretprobe sections, whose loader names the function (as the
// tutorials' profiler does): the package builds and run asks for the function.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} probe_hits SEC(".maps");

static int hit(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&probe_hits, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("kprobe")
int on_entry(void *ctx)
{
	return hit(0);
}

SEC("kretprobe")
int on_return(void *ctx)
{
	return hit(1);
}

char LICENSE[] SEC("license") = "GPL";
