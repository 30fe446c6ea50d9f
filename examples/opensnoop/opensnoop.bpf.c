// opensnoop: every openat() with the process that made it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>

#define PATH_LEN 128

struct event {
	__u32 pid;
	__u32 uid;
	char comm[16];
	char path[PATH_LEN];
	__s32 flags;
};

/* config: only this process (0 = every process) */
const volatile __u32 target_pid = 0;

/* events, and events_lost: records the ring had no room for */
KBPF_RINGBUF(events, 256 * 1024, struct event);

/* opens seen, per process name */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[16]);
	__type(value, __u64);
} opens_by_comm SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (target_pid && pid != target_pid)
		return 0;

	struct event *e = kbpf_reserve(events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = pid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->path, sizeof(e->path), (const char *)ctx->args[1]);
	e->flags = (__s32)ctx->args[2];

	__u64 one = 1, *n = bpf_map_lookup_elem(&opens_by_comm, e->comm);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&opens_by_comm, e->comm, &one, BPF_NOEXIST);

	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
