// Test package: a BPF netfilter program dropping IPv4 TCP packets to one port (config), counting them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define NF_DROP 0
#define NF_ACCEPT 1

const volatile __u16 blocked_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

SEC("netfilter")
int drop_port(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	struct iphdr iph;
	struct tcphdr th;
	__u32 zero = 0;
	__u64 *n;

	if (bpf_probe_read_kernel(&iph, sizeof(iph), head + nh) || iph.protocol != IPPROTO_TCP)
		return NF_ACCEPT;
	if (bpf_probe_read_kernel(&th, sizeof(th), head + nh + iph.ihl * 4))
		return NF_ACCEPT;
	if (!blocked_port || th.dest != bpf_htons(blocked_port))
		return NF_ACCEPT;
	n = bpf_map_lookup_elem(&dropped, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return NF_DROP;
}

char LICENSE[] SEC("license") = "GPL";
