// SPDX-License-Identifier: GPL-2.0
// Fixture for loop.test.ts: bpf_loop callbacks (BPF_PSEUDO_FUNC loads of .text subprograms) the
// user-space engines link and call — a callback stopping early, one running to nr, one calling
// bpf_loop itself with its own ctx, the ctx each sees — and bpf_set_retval of a cgroup program.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

struct sum {
	__u64 total;
	__u64 calls;
	__u64 stop_at;
};

static long add_until(__u64 i, void *data)
{
	struct sum *s = data;
	s->calls++;
	s->total += i;
	return i + 1 >= s->stop_at ? 1 : 0;
}

struct grid {
	__u64 cells;
	__u64 rows;
	__u64 weighted;
	__u32 row;
};

static long cell(__u64 i, void *data)
{
	struct grid *g = data;
	g->cells++;
	g->weighted += (g->row + 1) * 10 + i;
	return 0;
}

static long row(__u64 i, void *data)
{
	struct grid *g = data;
	g->row = i;
	g->rows++;
	bpf_loop(3, cell, g, 0);
	return 0;
}

static void put(__u32 k, __u64 v)
{
	bpf_map_update_elem(&results, &k, &v, BPF_ANY);
}

/* stop_at from the packet's first byte: the loop ends after that many calls, or at nr = 10 */
SEC("xdp")
int loop_sum(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct sum s = { .stop_at = 100 };
	if (data + 1 <= end)
		s.stop_at = *(__u8 *)data;
	long n = bpf_loop(10, add_until, &s, 0);
	put(0, n);
	put(1, s.total);
	put(2, s.calls);
	return XDP_PASS;
}

SEC("xdp")
int loop_nested(struct xdp_md *ctx)
{
	struct grid g = {};
	long n = bpf_loop(4, row, &g, 0);
	put(0, n);
	put(1, g.cells);
	put(2, g.weighted);
	put(3, g.rows);
	return XDP_PASS;
}

/* flags must be 0 and nr at most 1 << 23: the errors come back */
SEC("xdp")
int loop_refused(struct xdp_md *ctx)
{
	struct sum s = { .stop_at = 100 };
	put(0, bpf_loop(2, add_until, &s, 1));
	put(1, bpf_loop((1 << 23) + 1, add_until, &s, 0));
	put(2, s.calls);
	return XDP_PASS;
}

SEC("cgroup/connect4")
int refuse(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port == bpf_htons(9))
		return 1;
	bpf_set_retval(-111);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
