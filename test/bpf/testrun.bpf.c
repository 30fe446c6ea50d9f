// SPDX-License-Identifier: GPL-2.0
// Fixture for testrun.test.ts: an XDP program that drops UDP to port 53, answers UDP to port 7
// (echo) by swapping MAC addresses, IPs and ports and sending it back (XDP_TX), and passes the
// rest; a tc program that reads and writes skb fields (ctx in/out).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* how often each XDP verdict was returned, indexed by the action */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 action)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &action);
	if (n)
		__sync_fetch_and_add(n, 1);
	return action;
}

SEC("xdp")
int xdp_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return verdict(XDP_ABORTED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(XDP_PASS);
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return verdict(XDP_PASS);
	if (ip->protocol != IPPROTO_UDP)
		return verdict(XDP_PASS);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return verdict(XDP_PASS);
	if (udp->dest == bpf_htons(53))
		return verdict(XDP_DROP);
	if (udp->dest == bpf_htons(7)) {
		unsigned char mac[ETH_ALEN];
		__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
		__be32 addr = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = addr;
		__be16 port = udp->source;
		udp->source = udp->dest;
		udp->dest = port;
		return verdict(XDP_TX);
	}
	return verdict(XDP_PASS);
}

/* mark 0: drop; otherwise double the mark and set the priority */
SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	if (skb->mark == 0)
		return TC_ACT_SHOT;
	skb->mark = skb->mark * 2;
	skb->priority = 7;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
