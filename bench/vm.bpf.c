// SPDX-License-Identifier: GPL-2.0
// Programs of the vm benchmark (bench/vm.ts), run by the interpreter, the Wasm compiler and the
// kernel's JIT: a compute loop (prime sieve), a memory loop (checksum of the packet) and an
// XDP-style parser with a hash-map lookup.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SIEVE 512

SEC("xdp")
int sieve(struct xdp_md *ctx)
{
	__u8 composite[SIEVE / 2] = {};
	__u32 primes = 1; /* 2 */
	for (__u32 i = 3; i < SIEVE; i += 2) {
		if (composite[i / 2])
			continue;
		primes++;
		for (__u32 j = i * i; j < SIEVE; j += 2 * i)
			composite[(j / 2) & (SIEVE / 2 - 1)] = 1;
	}
	return primes;
}

SEC("xdp")
int checksum(struct xdp_md *ctx)
{
	__u8 *p = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;
	__u32 sum = 0;
	for (int i = 0; i < 1500; i += 2) {
		if ((void *)(p + i + 2) > (void *)end)
			break;
		sum += ((__u32)p[i] << 8) | p[i + 1];
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

struct flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow);
	__type(value, __u64);
} flows SEC(".maps");

SEC("xdp")
int parser(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(0x0800))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	struct flow f = {
		.saddr = ip->saddr, .daddr = ip->daddr, .sport = udp->source, .dport = udp->dest, .proto = ip->protocol,
	};
	__u64 *hits = bpf_map_lookup_elem(&flows, &f);
	if (!hits)
		return XDP_DROP;
	__sync_fetch_and_add(hits, 1);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
