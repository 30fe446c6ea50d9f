// Test fixture for bpf_link_update: pairs of programs for the same hook, to switch a link from
// one to the other in place.
//   cgroup/connect4: connections to 127.0.0.1:from_port go to port_b (lu_connect_b) or port_c
//                    (lu_connect_c);
//   xdp:             lu_xdp_pass counts ICMP echo requests, lu_xdp_drop counts and drops them;
//   tc (tcx):        lu_tc_v1 / lu_tc_v2 count ICMP echo replies, each in its own slot.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

const volatile __u16 from_port = 0;
const volatile __u16 port_b = 0;
const volatile __u16 port_c = 0;

enum {
	LU_TO_B = 0,
	LU_TO_C = 1,
	LU_XDP_PASS = 2,
	LU_XDP_DROP = 3,
	LU_TC_V1 = 4,
	LU_TC_V2 = 5,
	LU_SLOTS = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LU_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lu_hits SEC(".maps");

static __always_inline void bump(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&lu_hits, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline int redirect(struct bpf_sock_addr *ctx, __u16 to, __u32 slot)
{
	if (ctx->protocol != IPPROTO_TCP || ctx->user_port != bpf_htons(from_port))
		return 1;
	ctx->user_port = bpf_htons(to);
	bump(slot);
	return 1;
}

SEC("cgroup/connect4")
int lu_connect_b(struct bpf_sock_addr *ctx)
{
	return redirect(ctx, port_b, LU_TO_B);
}

SEC("cgroup/connect4")
int lu_connect_c(struct bpf_sock_addr *ctx)
{
	return redirect(ctx, port_c, LU_TO_C);
}

static __always_inline int icmp_type(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP || ip->ihl != 5)
		return -1;
	struct icmphdr *icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > data_end)
		return -1;
	return icmp->type;
}

SEC("xdp")
int lu_xdp_pass(struct xdp_md *ctx)
{
	if (icmp_type((void *)(long)ctx->data, (void *)(long)ctx->data_end) == ICMP_ECHO)
		bump(LU_XDP_PASS);
	return XDP_PASS;
}

SEC("xdp")
int lu_xdp_drop(struct xdp_md *ctx)
{
	if (icmp_type((void *)(long)ctx->data, (void *)(long)ctx->data_end) != ICMP_ECHO)
		return XDP_PASS;
	bump(LU_XDP_DROP);
	return XDP_DROP;
}

SEC("tc")
int lu_tc_v1(struct __sk_buff *skb)
{
	if (icmp_type((void *)(long)skb->data, (void *)(long)skb->data_end) == ICMP_ECHOREPLY)
		bump(LU_TC_V1);
	return 0; // TC_ACT_OK / TCX_PASS
}

SEC("tc")
int lu_tc_v2(struct __sk_buff *skb)
{
	if (icmp_type((void *)(long)skb->data, (void *)(long)skb->data_end) == ICMP_ECHOREPLY)
		bump(LU_TC_V2);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
