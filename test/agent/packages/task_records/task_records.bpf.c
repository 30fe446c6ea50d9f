// Test package: an iterator writing one binary struct per task with bpf_seq_write (no text).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "task_records.h"

SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_rec r = {};

	if (!task)
		return 0;
	r.pid = task->tgid;
	r.ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), task->comm);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
