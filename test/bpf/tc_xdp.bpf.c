// Test fixture: XDP and tc programs that count packets on a veth pair between two network
// namespaces. The XDP program drops ICMP echo requests while xdp_config[0] is non-zero.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define TC_ACT_OK 0

// counter slots
enum {
	XDP_ALL = 0,        // every frame the XDP program saw
	XDP_ECHO_REQ = 1,   // ICMP echo requests seen by XDP
	XDP_DROPPED = 2,    // echo requests XDP dropped
	TCX_ALL = 3,        // every packet the tcx program saw
	TCX_ECHO_REPLY = 4, // ICMP echo replies seen by the tcx program
	TCX_ECHO_REQ = 5,
	CLS_ALL = 6,        // every packet the clsact program saw
	CLS_ECHO_REPLY = 7,
	CLS_ECHO_REQ = 8,
	NR_COUNTERS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// xdp_config[0]: drop ICMP echo requests in XDP when non-zero
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xdp_config SEC(".maps");

static __always_inline void bump(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

// ICMP type of an IPv4 ICMP packet in [data, data_end), or -1.
static __always_inline int icmp_type(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return -1;
	if (ip->protocol != IPPROTO_ICMP || ip->ihl != 5)
		return -1;
	struct icmphdr *icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end)
		return -1;
	return icmp->type;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	bump(XDP_ALL);
	if (icmp_type(data, data_end) != ICMP_ECHO)
		return XDP_PASS;
	bump(XDP_ECHO_REQ);
	__u32 zero = 0;
	__u32 *drop = bpf_map_lookup_elem(&xdp_config, &zero);
	if (drop && *drop) {
		bump(XDP_DROPPED);
		return XDP_DROP;
	}
	return XDP_PASS;
}

static __always_inline int tc_count(struct __sk_buff *skb, __u32 all, __u32 reply, __u32 req)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	bump(all);
	int type = icmp_type(data, data_end);
	if (type == ICMP_ECHOREPLY)
		bump(reply);
	else if (type == ICMP_ECHO)
		bump(req);
	return TC_ACT_OK;
}

// attached with tcx (a BPF link)
SEC("tc")
int tcx_count(struct __sk_buff *skb)
{
	return tc_count(skb, TCX_ALL, TCX_ECHO_REPLY, TCX_ECHO_REQ);
}

// attached with the clsact qdisc (a cls_bpf filter)
SEC("tc")
int clsact_count(struct __sk_buff *skb)
{
	return tc_count(skb, CLS_ALL, CLS_ECHO_REPLY, CLS_ECHO_REQ);
}

char LICENSE[] SEC("license") = "GPL";
