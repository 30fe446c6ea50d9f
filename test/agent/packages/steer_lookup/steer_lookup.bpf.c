// Test package: an sk_lookup program steering TCP connections for one port (config) to the
// socket in its sockmap, whatever port that socket listens on.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u16 steered_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target SEC(".maps");

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	struct bpf_sock *sk;
	long err;

	if (ctx->protocol != IPPROTO_TCP || ctx->local_port != steered_port)
		return SK_PASS;
	sk = bpf_map_lookup_elem(&target, &zero);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
