// A program on a cgroup hook and one on a tracepoint that sees every socket of the node, which
// counts only sockets made below the instance's cgroup: the agent sets kbpf_cgroup_id and
// kbpf_cgroup_level from where the instance attaches (src/agent/attach-globals.ts).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

const volatile __u64 kbpf_cgroup_id = 0;
const volatile __u32 kbpf_cgroup_level = 0;

__u64 created = 0; /* sockets made below the cgroup (the cgroup hook) */
__u64 in_scope = 0; /* UDP sends whose socket's cgroup is the instance's or below (the tracepoint) */
__u64 outside = 0;  /* the other UDP sends of the node */

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
	const struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	const struct cgroup *a = 0;
	int ours = 0;
	if (cg && BPF_CORE_READ(cg, level) >= (int)kbpf_cgroup_level) {
		__u64 off = bpf_core_field_offset(struct cgroup, ancestors) + (__u64)kbpf_cgroup_level * sizeof(a);
		if (bpf_probe_read_kernel(&a, sizeof(a), (const void *)cg + off) == 0 && a)
			ours = BPF_CORE_READ(a, kn, id) == kbpf_cgroup_id;
	}
	__sync_fetch_and_add(ours ? &in_scope : &outside, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
