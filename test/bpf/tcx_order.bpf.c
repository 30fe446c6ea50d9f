// Test fixture: two tcx programs whose order decides the verdict. tcx_pass ends the chain with
// TCX_PASS, tcx_drop with TCX_DROP; each counts the packets it saw (ICMP only, so ARP is let through).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static __always_inline int is_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	return (void *)(ip + 1) <= end && eth->h_proto == bpf_htons(0x0800) && ip->protocol == IPPROTO_ICMP;
}

static __always_inline int saw(struct __sk_buff *skb, __u32 who, int verdict)
{
	if (!is_icmp(skb))
		return TCX_NEXT;
	__u64 *n = bpf_map_lookup_elem(&seen, &who);
	if (n)
		__sync_fetch_and_add(n, 1);
	return verdict;
}

SEC("tcx/ingress")
int tcx_pass(struct __sk_buff *skb)
{
	return saw(skb, 0, TCX_PASS);
}

SEC("tcx/ingress")
int tcx_drop(struct __sk_buff *skb)
{
	return saw(skb, 1, TCX_DROP);
}

char LICENSE[] SEC("license") = "GPL";
