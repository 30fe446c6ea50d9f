// Test package: one probe of sched_process_exec in three variants (tp_btf, raw_tp, tracepoint)
// and an optional program on a tracepoint no kernel has. Each variant counts in its own slot.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} exec_hits SEC(".maps");

static void hit(__u32 variant)
{
	__u64 *n = bpf_map_lookup_elem(&exec_hits, &variant);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	hit(0);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int exec_raw(void *ctx)
{
	hit(1);
	return 0;
}

SEC("tp/sched/sched_process_exec")
int exec_tp(void *ctx)
{
	hit(2);
	return 0;
}

SEC("tp/kbpf_nowhere/no_such_event")
int nowhere(void *ctx)
{
	hit(3);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
