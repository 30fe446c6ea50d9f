// Test package: cgroup/connect4 rewrites TCP connections to 127.0.0.1:from_port into to_port.
// Two instances chained (A: X -> Y, B: Y -> Z) show the order they run in: A before B takes X to
// Z, B before A only to Y.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u16 from_port = 0;
const volatile __u16 to_port = 0;

SEC("cgroup/connect4")
int order_rewrite(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_TCP && ctx->user_port == bpf_htons(from_port))
		ctx->user_port = bpf_htons(to_port);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
