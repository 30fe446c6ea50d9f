// Test package: exec events in a ring buffer whose record type is a typedef'd anonymous struct
// used only through a local pointer; an IPv4 address in the first 4 bytes of a 16-byte field,
// its family in another field (as bcc's tcplife and tcpstates do).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "typedef_events.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	exec_event_t *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->family = 2; /* AF_INET */
	e->port = 8080;
	e->addr = 0x0100007f; /* 127.0.0.1 in memory order */
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
