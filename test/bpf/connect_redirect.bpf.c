// Test fixture: cgroup/connect4 rewrites connections to 127.0.0.1:from_port into to_port.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u16 from_port = 0;
const volatile __u16 to_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} redirected SEC(".maps");

SEC("cgroup/connect4")
int redirect_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	if (ctx->user_port != bpf_htons(from_port))
		return 1;
	ctx->user_port = bpf_htons(to_port);
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&redirected, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
