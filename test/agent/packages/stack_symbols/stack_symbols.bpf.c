// Test package: the kernel and user stacks of one process's getppid calls, in the shapes tools
// keep them: arrays of addresses with their sizes (libbpf-bootstrap's profile), ids in a stack
// trace map in a ring buffer event and in a counting hash map's key (bcc's profile, offcputime).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define DEPTH 32

const volatile __u32 target_tgid = 0;

struct stack_event {
	__u32 pid;
	__s32 kern_stack_id;
	__s32 user_stack_id;
	__s64 kstack_sz;
	__s64 ustack_sz;
	__u64 kstack[DEPTH];
	__u64 ustack[DEPTH];
};

struct key_t {
	__u32 pid;
	__s32 user_stack_id;
	__s32 kern_stack_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct key_t);
	__type(value, __u64);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct key_t key = {};
	struct stack_event *e;
	__u64 one = 1, *n;

	if (tgid != target_tgid)
		return 0;
	key.pid = tgid;
	key.kern_stack_id = bpf_get_stackid(ctx, &stacks, 0);
	key.user_stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	n = bpf_map_lookup_elem(&counts, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = tgid;
	e->kern_stack_id = key.kern_stack_id;
	e->user_stack_id = key.user_stack_id;
	e->kstack_sz = bpf_get_stack(ctx, e->kstack, sizeof(e->kstack), 0);
	e->ustack_sz = bpf_get_stack(ctx, e->ustack, sizeof(e->ustack), BPF_F_USER_STACK);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
