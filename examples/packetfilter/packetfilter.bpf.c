// packetfilter: a small packet filter in three program types, with unit tests (tests/*.yaml)
// that `kbpf test` runs in the user-space engine and in the kernel (BPF_PROG_TEST_RUN).
//  - xdp_filter (XDP): drops UDP and TCP to `blocked_port` and everything from a source in
//    `blocked_src` (counting its hits), answers UDP echo (port 7) by sending the packet back
//    (XDP_TX), passes the rest; counts verdicts; a drop is an event.
//  - tc_mark (tc): marks TCP to port 80 with 0x80, drops IPv4 packets with a TTL of 1.
//  - sock_udp (socket filter): keeps UDP datagrams (their whole length), drops the rest.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <kbpf.h>

#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

struct event {
	__u8 saddr[4];
	__u8 daddr[4];
	__u16 dport;
	__u8 proto;
	__u8 verdict;
};

/* config: UDP and TCP to this port are dropped (0 = none) */
const volatile __u16 blocked_port = 53;

/* packets per XDP verdict */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

/* sources to drop (network order) and how many packets each had dropped */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} blocked_src SEC(".maps");

KBPF_RINGBUF(events, 64 * 1024, struct event);

static __always_inline int verdict(__u32 action)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &action);
	if (n)
		__sync_fetch_and_add(n, 1);
	return action;
}

static __always_inline int drop(struct iphdr *ip, __u16 dport)
{
	struct event *e = kbpf_reserve(events, sizeof(*e));
	if (e) {
		__builtin_memcpy(e->saddr, &ip->saddr, 4);
		__builtin_memcpy(e->daddr, &ip->daddr, 4);
		e->dport = dport;
		e->proto = ip->protocol;
		e->verdict = XDP_DROP;
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(XDP_DROP);
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
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
	__u32 src = ip->saddr;
	__u64 *hits = bpf_map_lookup_elem(&blocked_src, &src);
	if (hits) {
		__sync_fetch_and_add(hits, 1);
		return drop(ip, 0);
	}
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return verdict(XDP_PASS);
		if (blocked_port && tcp->dest == bpf_htons(blocked_port))
			return drop(ip, blocked_port);
		return verdict(XDP_PASS);
	}
	if (ip->protocol != IPPROTO_UDP)
		return verdict(XDP_PASS);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return verdict(XDP_PASS);
	if (blocked_port && udp->dest == bpf_htons(blocked_port))
		return drop(ip, blocked_port);
	if (udp->dest == bpf_htons(7)) {
		unsigned char mac[ETH_ALEN];
		__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
		__be32 a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		__be16 p = udp->source;
		udp->source = udp->dest;
		udp->dest = p;
		return verdict(XDP_TX);
	}
	return verdict(XDP_PASS);
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	if (ip->ttl <= 1)
		return TC_ACT_SHOT;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) <= end && tcp->dest == bpf_htons(80))
			skb->mark = 0x80;
	}
	return TC_ACT_OK;
}

SEC("socket")
int sock_udp(struct __sk_buff *skb)
{
	__u8 proto;
	/* a socket filter sees the packet from its network header */
	if (bpf_skb_load_bytes(skb, 9, &proto, 1) < 0)
		return 0;
	return proto == IPPROTO_UDP ? skb->len : 0;
}

char LICENSE[] SEC("license") = "GPL";
