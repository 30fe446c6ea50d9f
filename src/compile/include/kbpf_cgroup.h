/* kbpf_cgroup.h: keeping a tracepoint (which sees the whole node) to the instance's cgroup.
 * #include <kbpf_cgroup.h> after "vmlinux.h" and <bpf/bpf_core_read.h>.
 *
 * The agent sets kbpf_cgroup_id and kbpf_cgroup_level in an object that declares them, from
 * where the instance's cgroup programs attach (run --cgroup): that cgroup's id (its inode
 * number, bpf_get_current_cgroup_id's numbering) and its depth below the cgroup2 mount's root.
 * Without a cgroup program both stay 0 and everything is in the cgroup.
 */
#ifndef __KBPF_CGROUP_H__
#define __KBPF_CGROUP_H__

const volatile __u64 kbpf_cgroup_id = 0;
const volatile __u32 kbpf_cgroup_level = 0;

/* the deepest a cgroup is looked for below the level the agent found */
#define KBPF_CGROUP_DEEPER 16

/* The instance's cgroup, once a check has found it: later checks compare the ancestor's address
 * instead of reading its id. The cgroup cannot go away while the instance's cgroup programs are
 * attached to it. */
__u64 kbpf_cgroup_seen = 0;

/* 1 when the ancestor of cg at `level` is the instance's cgroup: one helper call (the verifier
 * lets no program index the ancestors array), then an address compare, or its id once */
static __always_inline int kbpf_cgroup_ancestor_is(const struct cgroup *cg, __u32 level)
{
	const struct cgroup *a = 0;
	__u64 off = bpf_core_field_offset(struct cgroup, ancestors) + (__u64)level * sizeof(a);
	if (bpf_probe_read_kernel(&a, sizeof(a), (const void *)cg + off) < 0 || !a)
		return 0;
	if ((__u64)a == kbpf_cgroup_seen)
		return 1;
	if (BPF_CORE_READ(a, kn, id) != kbpf_cgroup_id)
		return 0;
	kbpf_cgroup_seen = (__u64)a;
	return 1;
}

/* 1 when cgroup cg, at depth `level`, is the instance's or below it: its ancestor at the level the
 * agent found; then the deeper ones, for an agent whose cgroup2 mount starts below the root (a
 * cgroup namespace's, a bind mount of a cgroup), which counts the depth from there */
static __always_inline int kbpf_cgroup_at_or_below(const struct cgroup *cg, int level)
{
	if (level < (int)kbpf_cgroup_level)
		return 0;
	if (kbpf_cgroup_ancestor_is(cg, kbpf_cgroup_level))
		return 1;
	for (int i = 1; i <= KBPF_CGROUP_DEEPER && kbpf_cgroup_level + i <= level; i++)
		if (kbpf_cgroup_ancestor_is(cg, kbpf_cgroup_level + i))
			return 1;
	return 0;
}

/* 1 when cgroup cg is the instance's or below it (any program: its fields through probe reads) */
static __always_inline int kbpf_in_cgroup(const struct cgroup *cg)
{
	if (!kbpf_cgroup_id)
		return 1;
	return cg && kbpf_cgroup_at_or_below(cg, BPF_CORE_READ(cg, level));
}

/* a socket's cgroup (v2: where the task that made it was; an accepted socket has its listener's) */
static __always_inline int kbpf_sock_in_cgroup(const struct sock *sk)
{
	return kbpf_in_cgroup(BPF_CORE_READ(sk, sk_cgrp_data.cgroup));
}

/* kbpf_in_cgroup for a cgroup that is a BTF pointer (read from a tp_btf / fentry / iterator
 * program's argument): its level loaded directly, not through a probe read */
static __always_inline int kbpf_btf_in_cgroup(const struct cgroup *cg)
{
	if (!kbpf_cgroup_id)
		return 1;
	return cg && kbpf_cgroup_at_or_below(cg, cg->level);
}

/* kbpf_sock_in_cgroup for a socket that is a BTF pointer (a tp_btf / fentry program's argument):
 * its cgroup loaded directly */
static __always_inline int kbpf_btf_sock_in_cgroup(const struct sock *sk)
{
	return kbpf_btf_in_cgroup(sk->sk_cgrp_data.cgroup);
}

#endif
