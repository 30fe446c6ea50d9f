// SPDX-License-Identifier: GPL-2.0
// Fixture for vm.test.ts: what the user-space engines load from a package object — BTF maps
// (array, hash, ringbuf, prog array with initial values), .rodata config and .bss globals,
// a bpf-to-bpf call, helpers, atomics and a tail call.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} squares SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

const volatile __u32 factor = 3;
__u64 calls;

struct event {
	__u32 n;
	__u32 square;
};

static __noinline __u64 square(__u32 n)
{
	return (__u64)n * n;
}

SEC("xdp")
int compute(struct xdp_md *ctx)
{
	__u32 key = 1;
	__u64 *c = bpf_map_lookup_elem(&counters, &key);
	if (c)
		__sync_fetch_and_add(c, factor);
	__sync_fetch_and_add(&calls, 1);
	for (__u32 n = 1; n <= 5; n++) {
		__u64 sq = square(n);
		bpf_map_update_elem(&squares, &n, &sq, BPF_ANY);
		struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			e->n = n;
			e->square = sq;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return XDP_PASS;
}

SEC("xdp")
int tail_target(struct xdp_md *ctx)
{
	return 42;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail_target },
};

SEC("xdp")
int tail_caller(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jumps, 1);
	return 7;
}

char LICENSE[] SEC("license") = "GPL";
