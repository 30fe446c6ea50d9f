// flows-hooks: flow-monitor's hooks with nothing on them (bench/flows.ts, the "hooks" arm). Keep
// the sections as apps/flow-monitor/flow_monitor.bpf.c has them: the difference between this
// package's rates and flow-monitor's is what flow-monitor's own work costs.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(hooks_tcp_state, const struct sock *sk, int oldstate, int newstate)
{
	return 0;
}

/* loaded only where the send and receive tracepoints are missing (kbpf.yaml: groups datagram_tx,
 * datagram_rx) */
SEC("cgroup_skb/egress")
int hooks_egress(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/ingress")
int hooks_ingress(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int hooks_sendmsg4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int hooks_sendmsg6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(hooks_dgram_copy, const struct sk_buff *skb, int len)
{
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(hooks_sock_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(hooks_dgram_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("cgroup/recvmsg4")
int hooks_recvmsg4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/recvmsg6")
int hooks_recvmsg6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(hooks_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(hooks_drop, const struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return 0;
}

SEC("cgroup/sock_release")
int hooks_release(struct bpf_sock *sk)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
