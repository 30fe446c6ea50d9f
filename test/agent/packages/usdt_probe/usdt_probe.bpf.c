// Test package: USDT probes in libbpf's style (usdt.bpf.h, BPF_USDT), in bare sections that get
// their binary, provider and probe at run time.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>
#include <kbpf.h>

struct probe_event {
	__u32 probe; /* 1 tick, 2 konst, 3 guarded */
	__u32 pid;
	__s64 arg0;
	__s64 arg1;
	__s64 arg2;
	__u64 arg3;
	__s64 nargs;
};

KBPF_RINGBUF(events, 64 * 1024, struct probe_event);

static __always_inline void emit(struct pt_regs *ctx, __u32 probe, long a0, long a1, long a2, long a3)
{
	struct probe_event *e = kbpf_reserve(events, sizeof(*e));

	if (!e)
		return;
	e->probe = probe;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->arg0 = a0;
	e->arg1 = a1;
	e->arg2 = a2;
	e->arg3 = a3;
	e->nargs = bpf_usdt_arg_cnt(ctx);
	bpf_ringbuf_submit(e, 0);
}

SEC("usdt")
int BPF_USDT(on_tick, int i, long a, short s, unsigned char c)
{
	emit(ctx, 1, i, a, s, c);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_konst, int k1, int k2)
{
	emit(ctx, 2, k1, k2, 0, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_guarded, int v)
{
	emit(ctx, 3, v, 0, 0, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
