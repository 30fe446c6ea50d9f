// Test fixture: sock_ops puts established local TCP sockets of one server port into a sockhash
// keyed by their 4-tuple; sk_msg redirects every message to the peer socket's ingress queue
// (bypassing the TCP/IP stack) and counts what it redirected, per direction.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define LOCALHOST 0x7f000001

// the server's port (host order); 0 matches nothing
const volatile __u16 server_port = 0;

struct sock_key {
	__u32 sip; // network order
	__u32 dip; // network order
	__u32 sport; // host order
	__u32 dport; // host order
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__uint(key_size, sizeof(struct sock_key));
	__uint(value_size, sizeof(__u32));
} sock_pairs SEC(".maps");

enum {
	SM_ADDED_ACTIVE = 0,    // client sockets added by sock_ops
	SM_ADDED_PASSIVE = 1,   // server sockets added by sock_ops
	SM_TO_SERVER = 2, // messages the client sent, redirected to the server socket
	SM_TO_CLIENT = 3, // messages the server sent, redirected to the client socket
	SM_MISSED = 4,    // messages whose peer was not in the map (passed to TCP instead)
	SM_BYTES = 5,     // bytes redirected
	SOCKMAP_NR_STATS = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SOCKMAP_NR_STATS);
	__type(key, __u32);
	__type(value, __u64);
} sockmap_stats SEC(".maps");

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&sockmap_stats, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("sockops")
int sockops_add(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET || server_port == 0)
		return 1;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (skops->local_ip4 != bpf_htonl(LOCALHOST) || skops->remote_ip4 != bpf_htonl(LOCALHOST))
		return 1;
	__u32 lport = skops->local_port;
	__u32 rport = bpf_ntohl(skops->remote_port);
	if (lport != server_port && rport != server_port)
		return 1;
	struct sock_key key = {
		.sip = skops->local_ip4,
		.dip = skops->remote_ip4,
		.sport = lport,
		.dport = rport,
	};
	if (bpf_sock_hash_update(skops, &sock_pairs, &key, BPF_NOEXIST) == 0)
		add(skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ? SM_ADDED_ACTIVE : SM_ADDED_PASSIVE, 1);
	return 1;
}

SEC("sk_msg")
int msg_redirect(struct sk_msg_md *msg)
{
	// the peer's key: our 4-tuple seen from the other end
	struct sock_key peer = {
		.sip = msg->remote_ip4,
		.dip = msg->local_ip4,
		.sport = bpf_ntohl(msg->remote_port),
		.dport = msg->local_port,
	};
	__u64 size = msg->size;
	if (bpf_msg_redirect_hash(msg, &sock_pairs, &peer, BPF_F_INGRESS) != SK_PASS) {
		add(SM_MISSED, 1);
		return SK_PASS; // not redirected: let TCP carry it
	}
	add(msg->local_port == server_port ? SM_TO_CLIENT : SM_TO_SERVER, 1);
	add(SM_BYTES, size);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
