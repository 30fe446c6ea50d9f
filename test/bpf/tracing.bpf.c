// SPDX-License-Identifier: GPL-2.0
// Fixture for tracing.test.ts: a tracepoint on openat that records the paths one process opens,
// a raw tracepoint on sched_process_exec that records what that process's children exec,
// and a kprobe for features.test.ts.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define PATH_LEN 128

/* the test's own pid (tgid); nothing else is recorded */
const volatile __u32 target_tgid = 0;

struct open_path {
	char path[PATH_LEN];
};

/* path opened by target_tgid -> how many times */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct open_path);
	__type(value, __u64);
} opens SEC(".maps");

struct exec_event {
	__u32 pid;
	__u32 ppid;
	__u32 count;
	char comm[16];
	char filename[PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} execs SEC(".maps");

/* scratch space: a struct open_path is too large to zero on the stack cheaply each time */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_path);
} scratch SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_openat(struct trace_event_raw_sys_enter *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u32 zero = 0;
	struct open_path *key = bpf_map_lookup_elem(&scratch, &zero);
	if (!key)
		return 0;
	__builtin_memset(key->path, 0, sizeof(key->path));
	if (bpf_probe_read_user_str(key->path, sizeof(key->path), (const char *)ctx->args[1]) <= 0)
		return 0;
	__u64 one = 1;
	__u64 *n = bpf_map_lookup_elem(&opens, key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&opens, key, &one, BPF_NOEXIST);
	return 0;
}

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
SEC("raw_tracepoint/sched_process_exec")
int raw_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	if (ppid != target_tgid)
		return 0;
	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&execs, &zero);
	if (!e)
		return 0;
	e->pid = BPF_CORE_READ(task, tgid);
	e->ppid = ppid;
	e->count++;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	return 0;
}

/* a kprobe: loads (the program type exists) but cannot attach on a kernel without kprobes;
 * features.test.ts checks that attaching is refused cleanly */
SEC("kprobe/do_unlinkat")
int BPF_KPROBE(on_unlinkat, int dfd)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
