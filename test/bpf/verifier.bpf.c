// SPDX-License-Identifier: GPL-2.0
// Fixture for verifier.test.ts and leak.test.ts: compiles, but the verifier rejects
// `deref_unchecked` (it dereferences a map lookup result without the NULL check).
// and `oob_access` (it reads past the end of a map value). `fine` alone loads.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 verifier_cfg = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} vf_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vf_other SEC(".maps");

SEC("socket")
int fine(struct __sk_buff *skb)
{
	__u32 k = verifier_cfg;
	__u64 *v = bpf_map_lookup_elem(&vf_other, &k);
	return v ? (int)*v : 0;
}

SEC("socket")
int deref_unchecked(struct __sk_buff *skb)
{
	__u32 k = skb->len;
	__u64 *v = bpf_map_lookup_elem(&vf_counts, &k);
	/* no NULL check: "R0 invalid mem access 'map_value_or_null'" */
	*v += 1;
	return 0;
}

SEC("socket")
int oob_access(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&vf_other, &k);
	if (!v)
		return 0;
	/* one past the 8-byte value: "invalid access to map value" */
	return (int)*(volatile __u64 *)((char *)v + sizeof(*v));
}

char LICENSE[] SEC("license") = "GPL";
