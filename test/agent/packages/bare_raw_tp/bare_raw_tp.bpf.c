// Test package: sections that name no event, which a loader attaches by hand — a raw tracepoint
// (`raw_tp/`) and a tracepoint (`tp`), in UAPI-header style; each counts the calls it sees.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} bare_calls SEC(".maps"); /* 0: raw tracepoint, 1: tracepoint */

static __always_inline void count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&bare_calls, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("raw_tp/")
int on_raw(void *ctx)
{
	count(0);
	return 0;
}

SEC("tp")
int on_tp(void *ctx)
{
	count(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
