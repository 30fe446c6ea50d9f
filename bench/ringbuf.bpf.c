// SPDX-License-Identifier: GPL-2.0
// Producer of the ring buffer benchmark (bench/ringbuf.ts): an XDP program run with
// BPF_PROG_TEST_RUN (large repeat) that writes `batch` records per run with bpf_loop. The
// TypeScript reader and the C consumer (bench/ringbuf_consumer.c) load this same object.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct bench_event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	__u32 kind;
	__u32 len;
	char comm[16];
};

struct bench_event *unused_bench_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

/* records written per program run */
const volatile __u32 batch = 64;

__u64 seq = 0;

struct loop_ctx {
	__u64 ts;
	__u32 pid;
	__u32 cpu;
};

static long write_one(__u64 i, struct loop_ctx *lc)
{
	struct bench_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&events_lost, &zero);
		if (n)
			(*n)++;
		return 0;
	}
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->ts = lc->ts;
	e->pid = lc->pid;
	e->cpu = lc->cpu;
	e->kind = i & 3;
	e->len = sizeof(*e);
	__builtin_memcpy(e->comm, "kbpf-bench\0\0\0\0\0", 16);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("xdp")
int produce(struct xdp_md *ctx)
{
	struct loop_ctx lc = {
		.ts = bpf_ktime_get_ns(),
		.pid = bpf_get_current_pid_tgid() >> 32,
		.cpu = bpf_get_smp_processor_id(),
	};

	bpf_loop(batch, write_one, &lc, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
