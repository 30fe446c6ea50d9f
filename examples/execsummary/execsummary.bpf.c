// execsummary: every exec() on the node, as execsnoop, with an event processor (processor.c)
// that drops the execs of one program and turns the rest into one summary per command a second.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>

struct event {
	__u32 pid;
	__u32 uid;
	char comm[16];
};

KBPF_RINGBUF(events, 256 * 1024, struct event);

SEC("tracepoint/sched/sched_process_exec")
int trace_exec(void *ctx)
{
	struct event *e = kbpf_reserve(events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
