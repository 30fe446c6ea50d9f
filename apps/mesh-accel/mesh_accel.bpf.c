// mesh-accel: sidecar acceleration (the Merbridge data path) as a kbpf package.
//
//   cgroup/connect4     app TCP -> the pod's own sidecar (pod IP : outbound port); sidecar TCP to
//                       another local mesh pod -> that pod's inbound port; port 53 (UDP, TCP) -> DNS proxy
//   sockops             remembers the original destination per 4-tuple; puts local mesh sockets
//                       into the sockhash
//   sk_msg              moves bytes between the two ends of a local connection (never drops)
//   cgroup/getsockopt   answers SO_ORIGINAL_DST from what sockops remembered
//   cgroup/getpeername4 the app sees the address it connected to, not the sidecar's
//   cgroup/bind4        linkerd: the proxy's 127.0.0.1:outbound listener becomes 0.0.0.0
//   cgroup/sendmsg4     DNS capture (unconnected UDP 53 -> 127.0.0.1:dns port)
//   cgroup/recvmsg4     DNS replies show the original server as their source
//
// Which pods are in the mesh and how (ports, sidecar uid, exclusions) is in two maps the agent
// side fills before a pod's first connection: pods_by_cgroup (cgroup id -> settings) and
// pods_by_ip (pod IP -> settings). See README.md and mesh.ts.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define SOL_IP 0
#define SO_ORIGINAL_DST 80
#define PAGE_SIZE 4096
#define LOCALHOST_NET 0x0100007f /* 127.0.0.1 in network order, read as a little-endian u32 */

#define MESH_MAX_PORTS 8
#define MESH_MAX_CIDRS 4
#define MESH_CGROUP_LEVELS 8

/* config: 0 = sockops does not fill the sockhash (connect-time redirection only; for comparison) */
const volatile __u8 redirect_msgs = 1;

/* pod_settings.flags */
#define MESH_F_BIND_REWRITE 1 /* linkerd: proxy's 127.0.0.1:outbound bind -> 0.0.0.0 */

struct cidr {
	__u32 addr; /* network order */
	__u32 mask; /* network order; 0 (with addr 0) = unused slot */
};

struct pod_settings {
	__u32 ip;            /* pod IP, network order */
	__u32 sidecar_uid;   /* the sidecar's uid: its connections are not sent to itself */
	__u16 outbound_port; /* sidecar's outbound listener (host order); 0 = no outbound capture */
	__u16 inbound_port;  /* sidecar's inbound listener; 0 = peers connect to the app directly */
	__u16 dns_port;      /* DNS proxy on 127.0.0.1; 0 = no DNS capture */
	__u16 flags;
	__u16 exclude_out_ports[MESH_MAX_PORTS]; /* 0 = unused */
	__u16 include_out_ports[MESH_MAX_PORTS]; /* all unused = every port */
	__u16 exclude_in_ports[MESH_MAX_PORTS];  /* peers' sidecars go straight to the app */
	__u16 include_in_ports[MESH_MAX_PORTS];  /* all unused = every port goes to the inbound sidecar */
	struct cidr exclude_out_cidrs[MESH_MAX_CIDRS];
	struct cidr include_out_cidrs[MESH_MAX_CIDRS]; /* all unused = everywhere */
};

struct orig_dst {
	__u32 ip;   /* network order */
	__u16 port; /* host order */
	__u16 pad;
};

struct tuple {
	__u32 sip;   /* network order */
	__u32 dip;   /* network order */
	__u16 sport; /* host order */
	__u16 dport; /* host order */
};

enum mesh_stat {
	ST_CONNECT_OUT = 0,     /* app connections sent to the local sidecar */
	ST_CONNECT_PEER = 1,    /* sidecar connections sent to a local peer's inbound port */
	ST_CONNECT_EXCLUDED = 2,/* app connections left alone by an exclude/include rule */
	ST_SOCK_ADDED = 3,      /* sockets put into the sockhash */
	ST_MSG_REDIRECT = 4,    /* messages moved socket to socket */
	ST_MSG_REDIRECT_PEER = 5, /* ... of them between two different pods (sidecar to sidecar) */
	ST_MSG_PASS = 6,        /* messages with no peer in the sockhash (went through TCP) */
	ST_MSG_BYTES = 7,       /* bytes moved socket to socket */
	ST_ORIGDST = 8,         /* SO_ORIGINAL_DST answered */
	ST_DNS_REDIRECT = 9,    /* DNS datagrams / connections sent to the DNS proxy */
	ST_DNS_RESTORE = 10,    /* DNS replies given their original source */
	ST_BIND_REWRITE = 11,   /* linkerd proxy binds rewritten */
	ST_PEERNAME = 12,       /* getpeername answered with the original destination */
	ST_ORIGDST_MISS = 13,   /* SO_ORIGINAL_DST asked for a socket we know nothing about */
	MESH_NR_STATS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pod_settings);
} pods_by_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pod_settings);
} pods_by_ip SEC(".maps");

/* socket cookie of a redirected socket -> where it was going */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct orig_dst);
} orig_by_cookie SEC(".maps");

/* 4-tuple of a redirected connection (as its client sees it) -> where it was going */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, struct orig_dst);
} orig_by_tuple SEC(".maps");

/* local mesh sockets, by their 4-tuple as they see it */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, __u32);
} mesh_socks SEC(".maps");

/* all counters in one per-CPU value: one map lookup per program run (sk_msg runs per message) */
struct mesh_counters {
	__u64 c[MESH_NR_STATS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mesh_counters);
} mesh_stats SEC(".maps");

static __always_inline struct mesh_counters *counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&mesh_stats, &zero);
}

static __always_inline void stat_add(__u32 slot, __u64 n)
{
	struct mesh_counters *v = counters();
	if (v && slot < MESH_NR_STATS)
		v->c[slot] += n;
}

/* The pod the current task belongs to: its own cgroup or the nearest declared ancestor. */
static __always_inline struct pod_settings *current_pod(void)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct pod_settings *pod = bpf_map_lookup_elem(&pods_by_cgroup, &id);
	if (pod)
		return pod;
	for (int level = MESH_CGROUP_LEVELS; level >= 1; level--) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			continue;
		pod = bpf_map_lookup_elem(&pods_by_cgroup, &id);
		if (pod)
			return pod;
	}
	return NULL;
}

static __always_inline int port_listed(const __u16 *ports, __u16 port)
{
#pragma unroll
	for (int i = 0; i < MESH_MAX_PORTS; i++)
		if (ports[i] && ports[i] == port)
			return 1;
	return 0;
}

static __always_inline int no_ports(const __u16 *ports)
{
#pragma unroll
	for (int i = 0; i < MESH_MAX_PORTS; i++)
		if (ports[i])
			return 0;
	return 1;
}

/* 1 if ip is in a used slot, 0 if not, -1 if every slot is unused */
static __always_inline int cidr_match(const struct cidr *c, __u32 ip)
{
	int used = 0;
#pragma unroll
	for (int i = 0; i < MESH_MAX_CIDRS; i++) {
		if (!c[i].addr && !c[i].mask)
			continue;
		used = 1;
		if ((ip & c[i].mask) == c[i].addr)
			return 1;
	}
	return used ? 0 : -1;
}

static __always_inline int is_loopback(__u32 ip_net)
{
	return (ip_net & 0xff) == 127;
}

static __always_inline void remember(void *ctx, __u32 ip, __u16 port)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst o = { .ip = ip, .port = port };
	bpf_map_update_elem(&orig_by_cookie, &cookie, &o, BPF_ANY);
}

static __always_inline int dns_capture(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port != bpf_htons(53))
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod || !pod->dns_port)
		return 1;
	if ((__u32)bpf_get_current_uid_gid() == pod->sidecar_uid)
		return 1; /* the DNS proxy's own upstream queries */
	if (ctx->user_ip4 == LOCALHOST_NET && ctx->user_port == bpf_htons(pod->dns_port))
		return 1;
	remember(ctx, ctx->user_ip4, 53);
	ctx->user_ip4 = LOCALHOST_NET;
	ctx->user_port = bpf_htons(pod->dns_port);
	stat_add(ST_DNS_REDIRECT, 1);
	return 1;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_UDP)
		return dns_capture(ctx);
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod)
		return 1;
	__u32 dst = ctx->user_ip4;
	__u16 dport = bpf_ntohs(ctx->user_port);
	__u32 uid = (__u32)bpf_get_current_uid_gid();

	if (dport == 53 && pod->dns_port)
		return dns_capture(ctx); /* DNS over TCP goes to the DNS proxy too */

	if (uid == pod->sidecar_uid) {
		/* the sidecar's own connection: only a shortcut to a local peer's inbound port */
		if (dst == pod->ip || is_loopback(dst))
			return 1;
		struct pod_settings *peer = bpf_map_lookup_elem(&pods_by_ip, &dst);
		if (!peer || !peer->inbound_port || dport == peer->inbound_port)
			return 1;
		if (port_listed(peer->exclude_in_ports, dport) ||
		    (!no_ports(peer->include_in_ports) && !port_listed(peer->include_in_ports, dport)))
			return 1;
		remember(ctx, dst, dport);
		ctx->user_port = bpf_htons(peer->inbound_port);
		stat_add(ST_CONNECT_PEER, 1);
		return 1;
	}

	if (!pod->outbound_port || is_loopback(dst) || dst == pod->ip)
		return 1;
	if (port_listed(pod->exclude_out_ports, dport) ||
	    (!no_ports(pod->include_out_ports) && !port_listed(pod->include_out_ports, dport)) ||
	    cidr_match(pod->exclude_out_cidrs, dst) == 1 ||
	    cidr_match(pod->include_out_cidrs, dst) == 0) {
		stat_add(ST_CONNECT_EXCLUDED, 1);
		return 1;
	}
	remember(ctx, dst, dport);
	/* to the pod's own IP, not 127.0.0.1: the source becomes the pod IP too, so the 4-tuple
	 * is unique on the node (pod IPs are) — see README.md */
	ctx->user_ip4 = pod->ip;
	ctx->user_port = bpf_htons(pod->outbound_port);
	stat_add(ST_CONNECT_OUT, 1);
	return 1;
}

SEC("cgroup/sendmsg4")
int mesh_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	return dns_capture(ctx);
}

SEC("cgroup/recvmsg4")
int mesh_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_UDP || ctx->user_ip4 != LOCALHOST_NET)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie);
	if (!o || o->port != 53)
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod || !pod->dns_port || ctx->user_port != bpf_htons(pod->dns_port))
		return 1;
	ctx->user_ip4 = o->ip;
	ctx->user_port = bpf_htons(o->port);
	stat_add(ST_DNS_RESTORE, 1);
	return 1;
}

SEC("cgroup/getpeername4")
int mesh_getpeername4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie);
	if (!o)
		return 1;
	ctx->user_ip4 = o->ip;
	ctx->user_port = bpf_htons(o->port);
	stat_add(ST_PEERNAME, 1);
	return 1;
}

SEC("cgroup/bind4")
int mesh_bind4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_TCP || ctx->user_ip4 != LOCALHOST_NET)
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod || !(pod->flags & MESH_F_BIND_REWRITE) || !pod->outbound_port)
		return 1;
	if ((__u32)bpf_get_current_uid_gid() != pod->sidecar_uid || ctx->user_port != bpf_htons(pod->outbound_port))
		return 1;
	/* app connections arrive at POD_IP:outbound, so the listener must not be loopback-only */
	ctx->user_ip4 = 0;
	stat_add(ST_BIND_REWRITE, 1);
	return 1;
}

static __always_inline int local_end(__u32 ip)
{
	return is_loopback(ip) || bpf_map_lookup_elem(&pods_by_ip, &ip) != NULL;
}

SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET)
		return 1;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct tuple t = {
		.sip = skops->local_ip4,
		.dip = skops->remote_ip4,
		.sport = (__u16)skops->local_port,
		.dport = (__u16)bpf_ntohl(skops->remote_port),
	};
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__u64 cookie = bpf_get_socket_cookie(skops);
		struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie);
		if (o) {
			struct orig_dst copy = *o;
			bpf_map_update_elem(&orig_by_tuple, &t, &copy, BPF_ANY);
		}
	}
	/* both ends on this node, at least one a mesh pod (two loopback ends could be any netns) */
	if (!redirect_msgs)
		return 1;
	if (is_loopback(t.sip) && is_loopback(t.dip))
		return 1;
	if (!local_end(t.sip) || !local_end(t.dip))
		return 1;
	if (bpf_sock_hash_update(skops, &mesh_socks, &t, BPF_ANY) == 0)
		stat_add(ST_SOCK_ADDED, 1);
	return 1;
}

SEC("sk_msg")
int mesh_msg(struct sk_msg_md *msg)
{
	/* per message: one sockhash lookup (the redirect) and one counter lookup, nothing else */
	struct tuple peer = {
		.sip = msg->remote_ip4,
		.dip = msg->local_ip4,
		.sport = (__u16)bpf_ntohl(msg->remote_port),
		.dport = (__u16)msg->local_port,
	};
	__u64 size = msg->size;
	long verdict = bpf_msg_redirect_hash(msg, &mesh_socks, &peer, BPF_F_INGRESS);
	struct mesh_counters *v = counters();
	if (verdict != SK_PASS) {
		if (v)
			v->c[ST_MSG_PASS]++;
		return SK_PASS; /* never drop: TCP carries what we cannot redirect */
	}
	if (v) {
		v->c[ST_MSG_REDIRECT]++;
		v->c[ST_MSG_BYTES] += size;
		if (peer.sip != peer.dip && !is_loopback(peer.sip) && !is_loopback(peer.dip))
			v->c[ST_MSG_REDIRECT_PEER]++;
	}
	return SK_PASS;
}

SEC("cgroup/getsockopt")
int mesh_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_IP || ctx->optname != SO_ORIGINAL_DST) {
		if (ctx->optlen > PAGE_SIZE)
			ctx->optlen = 0; /* leave the kernel's answer alone */
		return 1;
	}
	struct bpf_sock *sk = ctx->sk;
	if (!sk || sk->family != AF_INET)
		return 1;
	/* the server end of the connection: the key is the client's view of it */
	struct tuple t = {
		.sip = sk->dst_ip4,
		.dip = sk->src_ip4,
		.sport = bpf_ntohs(sk->dst_port),
		.dport = (__u16)sk->src_port,
	};
	struct orig_dst *o = bpf_map_lookup_elem(&orig_by_tuple, &t);
	if (!o) {
		stat_add(ST_ORIGDST_MISS, 1);
		return 1; /* the kernel's own answer (conntrack / iptables REDIRECT) stands */
	}
	struct sockaddr_in *sa = ctx->optval;
	if ((void *)(sa + 1) > ctx->optval_end)
		return 1;
	sa->sin_family = AF_INET;
	sa->sin_port = bpf_htons(o->port);
	sa->sin_addr.s_addr = o->ip;
	ctx->optlen = sizeof(*sa);
	ctx->retval = 0;
	stat_add(ST_ORIGDST, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
