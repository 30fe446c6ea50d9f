// Synthetic flow reports for `npm run bench -- flows`: written into flow-monitor's ring buffer
// (the bench reuses the instance's pinned flow_events), `count` per call, numbered from `start`
// in the cookie, so the reader can tell that none is lost. An XDP program run with
// BPF_PROG_TEST_RUN, its arguments (struct args) the first bytes of the test packet.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "../apps/flow-monitor/flow_report.h"

struct args {
	__u64 start;
	__u32 count;
	__u32 closed; /* 1: closed reports; 0: periodic reports of open flows */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} flow_events SEC(".maps");

__u64 written = 0;
__u64 failed = 0;

struct loop_ctx {
	__u64 start;
	__u32 closed;
};

static long one(__u64 i, struct loop_ctx *c)
{
	struct flow_report *r = bpf_ringbuf_reserve(&flow_events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&failed, 1);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->cookie = c->start + i;
	r->duration_ns = 1000000;
	r->closed = c->closed;
	r->laddr.b[10] = 0xff;
	r->laddr.b[11] = 0xff;
	r->laddr.b[12] = 10;
	r->laddr.b[15] = 1;
	r->raddr.b[10] = 0xff;
	r->raddr.b[11] = 0xff;
	r->raddr.b[12] = 10;
	r->raddr.b[15] = 2;
	r->lport = 40000 + (i & 0x3fff);
	r->rport = 80;
	r->family = 2;
	r->proto = 6;
	r->active = 1;
	r->tcp_state = c->closed ? 7 : 1;
	r->flags_tx = 0x1b;
	r->flags_rx = 0x1b;
	r->srtt_us = 100;
	r->min_rtt_us = 50;
	r->bytes_tx = 1002;
	r->bytes_rx = 501;
	r->packets_tx = 5;
	r->packets_rx = 4;
	bpf_ringbuf_submit(r, 0);
	__sync_fetch_and_add(&written, 1);
	return 0;
}

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct args *a = data;
	if ((void *)(a + 1) > end)
		return XDP_ABORTED;
	struct loop_ctx c = {.start = a->start, .closed = a->closed};
	bpf_loop(a->count, one, &c, 0);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
