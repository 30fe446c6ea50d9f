// SPDX-License-Identifier: GPL-2.0
// Fixture for test/runtime/ringbuf-wakeup.test.ts: an XDP program run with BPF_PROG_TEST_RUN
// (repeat = N, from two threadpool threads at once, so commits from two CPUs interleave) that
// writes `per_run` small records per run into one-page and four-page rings, some discarded.
// `submitted` counts the records committed (not discarded, not lost): what a reader must see.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct wake_rec {
	__u64 seq;
	__u32 cpu;
	__u32 pad;
};

struct wake_rec *unused_wake_rec __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb_page SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} rb_four SEC(".maps");

const volatile __u32 per_run = 1;
const volatile __u32 discard_every = 0;
/* 0: rb_page, 1: rb_four */
const volatile __u32 which = 0;
/* 1: submit with BPF_RB_NO_WAKEUP (the reader must look by itself: pollMs) */
const volatile __u32 no_wakeup = 0;

__u64 seq = 0;
__u64 submitted = 0;
__u64 lost = 0;

static long write_one(__u64 i, void *unused)
{
	struct wake_rec *e;
	__u64 n;

	if (which)
		e = bpf_ringbuf_reserve(&rb_four, sizeof(*e), 0);
	else
		e = bpf_ringbuf_reserve(&rb_page, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost, 1);
		return 0;
	}
	n = __sync_fetch_and_add(&seq, 1);
	e->seq = n;
	e->cpu = bpf_get_smp_processor_id();
	e->pad = 0;
	if (discard_every && n % discard_every == 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	__sync_fetch_and_add(&submitted, 1);
	bpf_ringbuf_submit(e, no_wakeup ? BPF_RB_NO_WAKEUP : 0);
	return 0;
}

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	bpf_loop(per_run, write_one, 0, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
