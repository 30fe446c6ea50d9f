// A program on a cgroup hook and one on a tracepoint that sees every socket of the node, which
// counts only sockets made below the instance's cgroup (kbpf_cgroup.h: the agent sets
// kbpf_cgroup_id and kbpf_cgroup_level from where the instance attaches).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <kbpf_cgroup.h>

__u64 created = 0; /* sockets made below the cgroup (the cgroup hook) */
__u64 in_scope = 0; /* UDP sends whose socket's cgroup is the instance's or below (the tracepoint) */
__u64 outside = 0;  /* the other UDP sends of the node */
__u64 in_scope_btf = 0; /* the same count by kbpf_btf_sock_in_cgroup (the socket is a BTF pointer) */

SEC("cgroup/sock_create")
int scope_sock_create(struct bpf_sock *sk)
{
	__sync_fetch_and_add(&created, 1);
	return 1;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(scope_send, struct sock *sk, int ret, int flags)
{
	if (sk->sk_protocol != IPPROTO_UDP)
		return 0;
	int ours = kbpf_sock_in_cgroup(sk);
	__sync_fetch_and_add(ours ? &in_scope : &outside, 1);
	if (kbpf_btf_sock_in_cgroup(sk))
		__sync_fetch_and_add(&in_scope_btf, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
