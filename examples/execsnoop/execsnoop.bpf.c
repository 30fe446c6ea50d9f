// execsnoop: every exec() on the node.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>
#include <bpf/bpf_core_read.h>

struct event {
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	char comm[16];
	char filename[128];
};

/* config: only processes of this user id (-1 = every user) */
const volatile __s64 target_uid = -1;

/* events, and events_lost: records the ring had no room for */
KBPF_RINGBUF(events, 256 * 1024, struct event);

SEC("tracepoint/sched/sched_process_exec")
int trace_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	if (target_uid >= 0 && uid != (__u32)target_uid)
		return 0;
	struct event *e = kbpf_reserve(events, sizeof(*e));
	if (!e)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	unsigned int off = ctx->__data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
