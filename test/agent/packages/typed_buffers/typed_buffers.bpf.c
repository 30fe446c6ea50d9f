// Test package: event buffers that name their record with __type(value, ...), as cilium/ebpf's
// examples write them (its loader fixes the sizes; the kernel wants 4-byte or no keys and values).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct exec_rec {
	__u32 pid;
	__u32 marker;
	char comm[16];
};

struct exit_rec {
	__u32 tgid;
	__u32 code;
	__u64 marker;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(value, struct exec_rec);
} exec_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
	__type(value, struct exit_rec);
} exit_events SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	struct exec_rec r = { .pid = bpf_get_current_pid_tgid() >> 32, .marker = 0xabcd };

	bpf_get_current_comm(r.comm, sizeof(r.comm));
	bpf_perf_event_output(ctx, &exec_events, BPF_F_CURRENT_CPU, &r, sizeof(r));
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int on_exit(void *ctx)
{
	struct exit_rec *r = bpf_ringbuf_reserve(&exit_events, sizeof(*r), 0);

	if (!r)
		return 0;
	r->tgid = bpf_get_current_pid_tgid() >> 32;
	r->code = 0;
	r->marker = 0x1234;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
