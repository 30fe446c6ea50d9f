// Test package: exec events whose argument list is kept as bcc's execsnoop keeps it, the
// strings one after another with a NUL after each in one char array, with its used size and
// count in sibling fields.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define ARGSIZE 64
#define MAX_ARGS 8
#define ARGS_BYTES (ARGSIZE * MAX_ARGS)

struct event {
	__u32 pid;
	int args_count;
	unsigned int args_size;
	char comm[16];
	char args[ARGS_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(struct trace_event_raw_sys_enter *ctx)
{
	const char **argv = (const char **)ctx->args[1];
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->args_count = 0;
	e->args_size = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	for (int i = 0; i < MAX_ARGS; i++) {
		const char *arg = 0;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		unsigned int at = e->args_size;
		if (at > ARGS_BYTES - ARGSIZE)
			break;
		long n = bpf_probe_read_user_str(&e->args[at], ARGSIZE, arg);
		if (n <= 0)
			break;
		e->args_size += n;
		e->args_count++;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
