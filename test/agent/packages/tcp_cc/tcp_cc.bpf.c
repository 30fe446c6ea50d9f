// Test package: a TCP congestion control written as BPF struct_ops (a tiny Reno), registered
// through a `.struct_ops.link` map, counting the sockets it starts and the ACKs it sees.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} cc_calls SEC(".maps"); /* 0: sockets started, 1: ACKs */

static __always_inline void count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&cc_calls, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("struct_ops/kbpf_cc_init")
void BPF_PROG(kbpf_cc_init, struct sock *sk)
{
	count(0);
}

SEC("struct_ops/kbpf_cc_ssthresh")
__u32 BPF_PROG(kbpf_cc_ssthresh, struct sock *sk)
{
	const struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 half = tp->snd_cwnd >> 1;

	return half > 2 ? half : 2;
}

SEC("struct_ops/kbpf_cc_cong_avoid")
void BPF_PROG(kbpf_cc_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	count(1);
	if (tp->snd_cwnd < tp->snd_cwnd_clamp)
		tp->snd_cwnd = tp->snd_cwnd + 1;
}

SEC("struct_ops/kbpf_cc_undo_cwnd")
__u32 BPF_PROG(kbpf_cc_undo_cwnd, struct sock *sk)
{
	return ((struct tcp_sock *)sk)->snd_cwnd;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops kbpf_cc = {
	.init = (void *)kbpf_cc_init,
	.ssthresh = (void *)kbpf_cc_ssthresh,
	.cong_avoid = (void *)kbpf_cc_cong_avoid,
	.undo_cwnd = (void *)kbpf_cc_undo_cwnd,
	.name = "kbpf_cc",
};

char LICENSE[] SEC("license") = "GPL";
