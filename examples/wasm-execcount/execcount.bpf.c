// execcount: the BPF half of a Wasm guest. Every exec() on the node goes to the guest through
// the ring buffer; the guest writes how many it decoded into guest_stats.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>

/* the record; the guest gets it from the generated skeleton (execcount.skel.h) */
struct event {
	__u32 pid;
	__u32 uid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");
/* its records are struct event (kbpf build writes it for wasm32 in execcount.skel.h) */
KBPF_EVENT(events, struct event);

/* written by the guest: key 0 = events it decoded */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} guest_stats SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int trace_exec(void *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
