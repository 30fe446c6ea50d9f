// SPDX-License-Identifier: GPL-2.0
// Fixture for test/runtime/perfbuf.test.ts: an XDP program run with BPF_PROG_TEST_RUN (repeat =
// N) that writes one numbered struct pb_event per run to a perf event array (this CPU's buffer).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum pb_kind { PB_A = 10, PB_B = 20 };

struct pb_event {
	__u64 seq;
	__u32 pid;
	char comm[16];
	enum pb_kind kind;
	__u16 pkt_len;
	__u32 cpu;
};

struct pb_event *unused_pb_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pb SEC(".maps");

__u64 seq = 0;

SEC("xdp")
int emit_perf(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pb_event e = {};

	e.seq = __sync_fetch_and_add(&seq, 1);
	e.pid = bpf_get_current_pid_tgid() >> 32;
	if (data + 14 + 16 <= data_end)
		__builtin_memcpy(e.comm, data + 14, 16);
	e.kind = e.seq % 2 ? PB_B : PB_A;
	e.pkt_len = data_end - data;
	e.cpu = bpf_get_smp_processor_id();
	bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
