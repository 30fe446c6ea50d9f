// Test package: a flow dissector for IPv4 TCP/UDP over Ethernet that fills the flow keys (and
// counts the packets it saw); anything else is left to the kernel's own dissector.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dissected SEC(".maps");

SEC("flow_dissector")
int dissect(struct __sk_buff *skb)
{
	struct bpf_flow_keys *keys = skb->flow_keys;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *iph;
	__u16 *ports;
	__u32 zero = 0;
	__u64 *n;

	if (keys->n_proto != bpf_htons(ETH_P_IP))
		return BPF_FLOW_DISSECTOR_CONTINUE;
	/* direct packet access: BPF_PROG_TEST_RUN gives no skb for bpf_skb_load_bytes */
	/* a bounded offset (the verifier refuses one of up to 0xffff) */
	iph = data + (keys->nhoff & 0xff);
	if ((void *)(iph + 1) > end || iph->ihl < 5)
		return BPF_DROP;
	keys->addr_proto = ETH_P_IP;
	keys->ipv4_src = iph->saddr;
	keys->ipv4_dst = iph->daddr;
	keys->ip_proto = iph->protocol;
	keys->thoff = keys->nhoff + iph->ihl * 4;
	if (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) {
		ports = (void *)iph + iph->ihl * 4;
		if ((void *)(ports + 2) > end)
			return BPF_DROP;
		keys->sport = ports[0];
		keys->dport = ports[1];
	}
	n = bpf_map_lookup_elem(&dissected, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return BPF_OK;
}

char LICENSE[] SEC("license") = "GPL";
