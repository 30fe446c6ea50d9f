// tcpconnect: outgoing IPv4 TCP connections of processes in a cgroup (cgroup/connect4).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>
#include <bpf/bpf_endian.h>

struct event {
	__u32 pid;
	__u32 uid;
	char comm[16];
	__u8 daddr[4];
	__u16 dport;
};

/* config: only this destination port (0 = every port) */
const volatile __u16 target_port = 0;

/* events, and events_lost: records the ring had no room for */
KBPF_RINGBUF(events, 256 * 1024, struct event);

/* connections per destination port */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u64);
} connects_by_port SEC(".maps");

SEC("cgroup/connect4")
int trace_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	__u16 dport = bpf_ntohs(ctx->user_port);
	if (target_port && dport != target_port)
		return 1;

	__u64 one = 1, *n = bpf_map_lookup_elem(&connects_by_port, &dport);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&connects_by_port, &dport, &one, BPF_NOEXIST);

	struct event *e = kbpf_reserve(events, sizeof(*e));
	if (!e)
		return 1;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__u32 daddr = ctx->user_ip4;
	__builtin_memcpy(e->daddr, &daddr, 4);
	e->dport = dport;
	bpf_ringbuf_submit(e, 0);
	return 1; /* never block: this is an observer */
}

char LICENSE[] SEC("license") = "GPL";
