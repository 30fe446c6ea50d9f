// mesh-accel: sidecar acceleration (the Merbridge data path) as a kbpf package.
//
//   cgroup/connect4     app TCP -> the pod's own sidecar (pod IP : outbound port); sidecar TCP to
//                       another local mesh pod -> that pod's inbound port; port 53 (UDP, TCP) -> DNS proxy
//   cgroup/connect6     the same for IPv6 TCP (pod IPv6 : outbound port, peers by pods_by_ip6);
//                       v4-mapped destinations on AF_INET6 sockets take the IPv4 path
//   sockops             remembers the original destination per 4-tuple; puts local mesh sockets
//                       into the sockhash (mesh_socks; pure IPv6 sockets into mesh_socks6)
//   sk_msg              moves bytes between the two ends of a local connection (never drops);
//                       mesh_msg on mesh_socks, mesh_msg6 on mesh_socks6
//   cgroup/getsockopt   answers SO_ORIGINAL_DST (SOL_IP) and IP6T_SO_ORIGINAL_DST (SOL_IPV6) from
//                       what sockops remembered
//   cgroup/getpeername4/6 the app sees the address it connected to, not the sidecar's
//   cgroup/bind4/6      linkerd: the proxy's 127.0.0.1 / [::1]:outbound listener becomes 0.0.0.0 / [::]
//   cgroup/sendmsg4/6   DNS capture (unconnected UDP 53 -> 127.0.0.1:dns port, IPv6 -> [::1]:dns port)
//   cgroup/recvmsg4/6   DNS replies show the original server as their source
//
// Which pods are in the mesh and how (ports, sidecar uid, exclusions) is in two maps the agent
// side fills before a pod's first connection: pods_by_cgroup (cgroup id -> settings) and
// pods_by_ip (pod IP -> settings), pods_by_ip6 (pod IPv6 -> settings). See README.md and mesh.ts.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80
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

/* an IPv6 prefix: four u32 words as in memory (network byte order) */
struct cidr6 {
	__u32 addr[4];
	__u32 mask[4]; /* all zero = unused slot */
};

struct ip6_key {
	__u32 a[4]; /* network order */
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
	struct cidr include_out_cidrs[MESH_MAX_CIDRS]; /* all unused (both families) = everywhere */
	/* IPv6 (appended, so the IPv4 fields keep their offsets) */
	__u32 ip6[4];        /* pod IPv6 address, network order; all zero = the pod has none */
	struct cidr6 exclude_out_cidrs6[MESH_MAX_CIDRS];
	struct cidr6 include_out_cidrs6[MESH_MAX_CIDRS];
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

struct orig_dst6 {
	__u32 ip[4]; /* network order */
	__u16 port;  /* host order */
	__u16 pad;
};

struct tuple6 {
	__u32 sip[4]; /* network order */
	__u32 dip[4];
	__u16 sport;  /* host order */
	__u16 dport;
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ip6_key);
	__type(value, struct pod_settings);
} pods_by_ip6 SEC(".maps");

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

/* IPv6: the same three (v4-mapped sockets use the IPv4 maps, keyed by their IPv4 ends) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct orig_dst6);
} orig6_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple6);
	__type(value, struct orig_dst6);
} orig_by_tuple6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple6);
	__type(value, __u32);
} mesh_socks6 SEC(".maps");

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

/* 1 if ip is in a used slot, 0 if not, -1 if every slot is unused (ip NULL: only whether any is used) */
static __always_inline int cidr6_match(const struct cidr6 *c, const __u32 *ip)
{
	int used = 0;
#pragma unroll
	for (int i = 0; i < MESH_MAX_CIDRS; i++) {
		if (!(c[i].mask[0] | c[i].mask[1] | c[i].mask[2] | c[i].mask[3]))
			continue;
		used = 1;
		if (ip && (ip[0] & c[i].mask[0]) == c[i].addr[0] && (ip[1] & c[i].mask[1]) == c[i].addr[1] &&
		    (ip[2] & c[i].mask[2]) == c[i].addr[2] && (ip[3] & c[i].mask[3]) == c[i].addr[3])
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

/* The pod whose DNS query (to port 53) this is, if its DNS is captured; NULL otherwise. */
static __always_inline struct pod_settings *dns_pod(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port != bpf_htons(53))
		return NULL;
	struct pod_settings *pod = current_pod();
	if (!pod || !pod->dns_port)
		return NULL;
	if ((__u32)bpf_get_current_uid_gid() == pod->sidecar_uid)
		return NULL; /* the DNS proxy's own upstream queries */
	return pod;
}

static __always_inline int dns_capture(struct bpf_sock_addr *ctx)
{
	struct pod_settings *pod = dns_pod(ctx);
	if (!pod)
		return 1;
	if (ctx->user_ip4 == LOCALHOST_NET && ctx->user_port == bpf_htons(pod->dns_port))
		return 1;
	remember(ctx, ctx->user_ip4, 53);
	ctx->user_ip4 = LOCALHOST_NET;
	ctx->user_port = bpf_htons(pod->dns_port);
	stat_add(ST_DNS_REDIRECT, 1);
	return 1;
}

/*
 * What connect() does with a TCP connection to dst:dport, IPv4 (connect4) or v4-mapped on an
 * AF_INET6 socket (connect6). 1 = send it to *ip:*port instead (its original destination is
 * remembered under the socket's cookie), 0 = leave it alone.
 */
static __always_inline int connect_tcp4(void *ctx, __u32 dst, __u16 dport, __u32 *ip, __u16 *port)
{
	struct pod_settings *pod = current_pod();
	if (!pod)
		return 0;
	__u32 uid = (__u32)bpf_get_current_uid_gid();

	if (dport == 53 && pod->dns_port) {
		/* DNS over TCP goes to the DNS proxy too */
		if (uid == pod->sidecar_uid || (dst == LOCALHOST_NET && dport == pod->dns_port))
			return 0;
		remember(ctx, dst, 53);
		*ip = LOCALHOST_NET;
		*port = pod->dns_port;
		stat_add(ST_DNS_REDIRECT, 1);
		return 1;
	}

	if (uid == pod->sidecar_uid) {
		/* the sidecar's own connection: only a shortcut to a local peer's inbound port */
		if (dst == pod->ip || is_loopback(dst))
			return 0;
		struct pod_settings *peer = bpf_map_lookup_elem(&pods_by_ip, &dst);
		if (!peer || !peer->inbound_port || dport == peer->inbound_port)
			return 0;
		if (port_listed(peer->exclude_in_ports, dport) ||
		    (!no_ports(peer->include_in_ports) && !port_listed(peer->include_in_ports, dport)))
			return 0;
		remember(ctx, dst, dport);
		*ip = dst;
		*port = peer->inbound_port;
		stat_add(ST_CONNECT_PEER, 1);
		return 1;
	}

	/* (an IPv6-only pod, ip 0, has no IPv4 address for the sidecar's listener) */
	if (!pod->outbound_port || !pod->ip || is_loopback(dst) || dst == pod->ip)
		return 0;
	int inc = cidr_match(pod->include_out_cidrs, dst);
	if (port_listed(pod->exclude_out_ports, dport) ||
	    (!no_ports(pod->include_out_ports) && !port_listed(pod->include_out_ports, dport)) ||
	    cidr_match(pod->exclude_out_cidrs, dst) == 1 || inc == 0 ||
	    (inc == -1 && cidr6_match(pod->include_out_cidrs6, NULL) != -1)) {
		/* (an include list of IPv6 ranges only captures no IPv4 destination, as istio's) */
		stat_add(ST_CONNECT_EXCLUDED, 1);
		return 0;
	}
	remember(ctx, dst, dport);
	/* to the pod's own IP, not 127.0.0.1: the source becomes the pod IP too, so the 4-tuple
	 * is unique on the node (pod IPs are) — see README.md */
	*ip = pod->ip;
	*port = pod->outbound_port;
	stat_add(ST_CONNECT_OUT, 1);
	return 1;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_UDP)
		return dns_capture(ctx);
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	__u32 ip;
	__u16 port;
	if (connect_tcp4(ctx, ctx->user_ip4, bpf_ntohs(ctx->user_port), &ip, &port)) {
		ctx->user_ip4 = ip;
		ctx->user_port = bpf_htons(port);
	}
	return 1;
}

static __always_inline int is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

static __always_inline int is_loopback6(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1);
}

static __always_inline int is_linklocal6(const __u32 *a)
{
	return (a[0] & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000);
}

static __always_inline int ip6_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int ip6_zero(const __u32 *a)
{
	return !(a[0] | a[1] | a[2] | a[3]);
}

static __always_inline void remember6(void *ctx, const __u32 *ip, __u16 port)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst6 o = { .ip = { ip[0], ip[1], ip[2], ip[3] }, .port = port };
	bpf_map_update_elem(&orig6_by_cookie, &cookie, &o, BPF_ANY);
}

/*
 * DNS to port 53 from an AF_INET6 socket (UDP sendmsg / connect, TCP connect) -> the DNS proxy:
 * [::1]:dns_port for an IPv6 server, ::ffff:127.0.0.1:dns_port for a v4-mapped one (the proxy's
 * IPv4 listener). The original server is remembered under the socket's cookie (orig6_by_cookie,
 * or orig_by_cookie for v4-mapped) for recvmsg6 / getpeername6. 1 = rewritten.
 */
static __always_inline int dns_capture6(struct bpf_sock_addr *ctx)
{
	struct pod_settings *pod = dns_pod(ctx);
	if (!pod)
		return 0;
	__u32 d[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	if (is_v4mapped(d)) {
		remember(ctx, d[3], 53);
		ctx->user_ip6[3] = LOCALHOST_NET;
	} else {
		remember6(ctx, d, 53);
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(pod->dns_port);
	stat_add(ST_DNS_REDIRECT, 1);
	return 1;
}

SEC("cgroup/connect6")
int mesh_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_UDP) {
		dns_capture6(ctx);
		return 1;
	}
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	struct ip6_key d = { .a = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] } };
	__u16 dport = bpf_ntohs(ctx->user_port);
	if (dport == 53 && !is_v4mapped(d.a) && dns_capture6(ctx))
		return 1; /* DNS over TCP to an IPv6 server (v4-mapped: connect_tcp4 below) */

	if (is_v4mapped(d.a)) {
		/* an IPv4 peer through an AF_INET6 socket: the IPv4 rules, answered v4-mapped */
		__u32 ip;
		__u16 port;
		if (connect_tcp4(ctx, d.a[3], dport, &ip, &port)) {
			ctx->user_ip6[3] = ip;
			ctx->user_port = bpf_htons(port);
		}
		return 1;
	}

	struct pod_settings *pod = current_pod();
	if (!pod || ip6_zero(pod->ip6))
		return 1;
	if (is_loopback6(d.a) || is_linklocal6(d.a) || ip6_eq(d.a, pod->ip6))
		return 1;

	if ((__u32)bpf_get_current_uid_gid() == pod->sidecar_uid) {
		struct pod_settings *peer = bpf_map_lookup_elem(&pods_by_ip6, &d);
		if (!peer || !peer->inbound_port || dport == peer->inbound_port)
			return 1;
		if (port_listed(peer->exclude_in_ports, dport) ||
		    (!no_ports(peer->include_in_ports) && !port_listed(peer->include_in_ports, dport)))
			return 1;
		remember6(ctx, d.a, dport);
		ctx->user_port = bpf_htons(peer->inbound_port);
		stat_add(ST_CONNECT_PEER, 1);
		return 1;
	}

	if (!pod->outbound_port)
		return 1;
	int inc = cidr6_match(pod->include_out_cidrs6, d.a);
	if (port_listed(pod->exclude_out_ports, dport) ||
	    (!no_ports(pod->include_out_ports) && !port_listed(pod->include_out_ports, dport)) ||
	    cidr6_match(pod->exclude_out_cidrs6, d.a) == 1 || inc == 0 ||
	    (inc == -1 && cidr_match(pod->include_out_cidrs, 0) != -1)) {
		stat_add(ST_CONNECT_EXCLUDED, 1);
		return 1;
	}
	remember6(ctx, d.a, dport);
	/* the pod's own IPv6 address: the source becomes it too, so the 4-tuple is unique */
	ctx->user_ip6[0] = pod->ip6[0];
	ctx->user_ip6[1] = pod->ip6[1];
	ctx->user_ip6[2] = pod->ip6[2];
	ctx->user_ip6[3] = pod->ip6[3];
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

SEC("cgroup/sendmsg6")
int mesh_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_UDP)
		dns_capture6(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int mesh_recvmsg6(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	__u32 src[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	int mapped = is_v4mapped(src) && src[3] == LOCALHOST_NET;
	if (!mapped && !is_loopback6(src))
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod || !pod->dns_port || ctx->user_port != bpf_htons(pod->dns_port))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	if (mapped) {
		struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie);
		if (!o || o->port != 53)
			return 1;
		ctx->user_ip6[3] = o->ip;
	} else {
		struct orig_dst6 *o6 = bpf_map_lookup_elem(&orig6_by_cookie, &cookie);
		if (!o6 || o6->port != 53)
			return 1;
		ctx->user_ip6[0] = o6->ip[0];
		ctx->user_ip6[1] = o6->ip[1];
		ctx->user_ip6[2] = o6->ip[2];
		ctx->user_ip6[3] = o6->ip[3];
	}
	ctx->user_port = bpf_htons(53);
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

SEC("cgroup/getpeername6")
int mesh_getpeername6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst6 *o6 = bpf_map_lookup_elem(&orig6_by_cookie, &cookie);
	if (o6) {
		ctx->user_ip6[0] = o6->ip[0];
		ctx->user_ip6[1] = o6->ip[1];
		ctx->user_ip6[2] = o6->ip[2];
		ctx->user_ip6[3] = o6->ip[3];
		ctx->user_port = bpf_htons(o6->port);
		stat_add(ST_PEERNAME, 1);
		return 1;
	}
	struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie); /* v4-mapped */
	if (!o)
		return 1;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0xffff);
	ctx->user_ip6[3] = o->ip;
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

SEC("cgroup/bind6")
int mesh_bind6(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	if (!is_loopback6(a))
		return 1;
	struct pod_settings *pod = current_pod();
	if (!pod || !(pod->flags & MESH_F_BIND_REWRITE) || !pod->outbound_port)
		return 1;
	if ((__u32)bpf_get_current_uid_gid() != pod->sidecar_uid || ctx->user_port != bpf_htons(pod->outbound_port))
		return 1;
	/* [::1]:outbound -> [::]:outbound, as bind4 does for 127.0.0.1 */
	ctx->user_ip6[3] = 0;
	stat_add(ST_BIND_REWRITE, 1);
	return 1;
}

static __always_inline int local_end(__u32 ip)
{
	return is_loopback(ip) || bpf_map_lookup_elem(&pods_by_ip, &ip) != NULL;
}

static __always_inline int local_end6(const __u32 *ip)
{
	struct ip6_key k = { .a = { ip[0], ip[1], ip[2], ip[3] } };
	return is_loopback6(ip) || bpf_map_lookup_elem(&pods_by_ip6, &k) != NULL;
}

static __always_inline int sockops6(struct bpf_sock_ops *skops, const __u32 *lip, const __u32 *rip)
{
	struct tuple6 t = {
		.sip = { lip[0], lip[1], lip[2], lip[3] },
		.dip = { rip[0], rip[1], rip[2], rip[3] },
		.sport = (__u16)skops->local_port,
		.dport = (__u16)bpf_ntohl(skops->remote_port),
	};
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__u64 cookie = bpf_get_socket_cookie(skops);
		struct orig_dst6 *o = bpf_map_lookup_elem(&orig6_by_cookie, &cookie);
		if (o) {
			struct orig_dst6 copy = *o;
			bpf_map_update_elem(&orig_by_tuple6, &t, &copy, BPF_ANY);
		}
	}
	if (!redirect_msgs)
		return 1;
	if (is_loopback6(t.sip) && is_loopback6(t.dip))
		return 1;
	if (!local_end6(t.sip) || !local_end6(t.dip))
		return 1;
	if (bpf_sock_hash_update(skops, &mesh_socks6, &t, BPF_ANY) == 0)
		stat_add(ST_SOCK_ADDED, 1);
	return 1;
}

SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (skops->family == AF_INET6) {
		__u32 rip[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2], skops->remote_ip6[3] };
		if (!is_v4mapped(rip)) {
			__u32 lip[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] };
			return sockops6(skops, lip, rip);
		}
		/* v4-mapped: an IPv4 connection; local_ip4 / remote_ip4 hold its IPv4 ends */
	} else if (skops->family != AF_INET) {
		return 1;
	}
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

SEC("sk_msg")
int mesh_msg6(struct sk_msg_md *msg)
{
	struct tuple6 peer = {
		.sip = { msg->remote_ip6[0], msg->remote_ip6[1], msg->remote_ip6[2], msg->remote_ip6[3] },
		.dip = { msg->local_ip6[0], msg->local_ip6[1], msg->local_ip6[2], msg->local_ip6[3] },
		.sport = (__u16)bpf_ntohl(msg->remote_port),
		.dport = (__u16)msg->local_port,
	};
	__u64 size = msg->size;
	long verdict = bpf_msg_redirect_hash(msg, &mesh_socks6, &peer, BPF_F_INGRESS);
	struct mesh_counters *v = counters();
	if (verdict != SK_PASS) {
		if (v)
			v->c[ST_MSG_PASS]++;
		return SK_PASS; /* never drop */
	}
	if (v) {
		v->c[ST_MSG_REDIRECT]++;
		v->c[ST_MSG_BYTES] += size;
		if (!ip6_eq(peer.sip, peer.dip) && !is_loopback6(peer.sip) && !is_loopback6(peer.dip))
			v->c[ST_MSG_REDIRECT_PEER]++;
	}
	return SK_PASS;
}

SEC("cgroup/getsockopt")
int mesh_getsockopt(struct bpf_sockopt *ctx)
{
	int v6 = ctx->level == SOL_IPV6 && ctx->optname == IP6T_SO_ORIGINAL_DST;
	if (!v6 && (ctx->level != SOL_IP || ctx->optname != SO_ORIGINAL_DST)) {
		if (ctx->optlen > PAGE_SIZE)
			ctx->optlen = 0; /* leave the kernel's answer alone */
		return 1;
	}
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	/* the server end of the connection: the key is the client's view of it */
	struct tuple t;
	if (sk->family == AF_INET6) {
		__u32 rip[4] = { sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3] };
		__u32 lip[4] = { sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3] };
		if (!is_v4mapped(rip)) {
			if (!v6)
				return 1; /* SOL_IP on an IPv6 connection: the kernel's answer */
			struct tuple6 t6 = {
				.sip = { rip[0], rip[1], rip[2], rip[3] },
				.dip = { lip[0], lip[1], lip[2], lip[3] },
				.sport = bpf_ntohs(sk->dst_port),
				.dport = (__u16)sk->src_port,
			};
			struct orig_dst6 *o6 = bpf_map_lookup_elem(&orig_by_tuple6, &t6);
			if (!o6) {
				stat_add(ST_ORIGDST_MISS, 1);
				return 1; /* the kernel's own answer (conntrack / ip6tables REDIRECT) stands */
			}
			struct sockaddr_in6 *sa6 = ctx->optval;
			if ((void *)(sa6 + 1) > ctx->optval_end)
				return 1;
			__builtin_memset(sa6, 0, sizeof(*sa6));
			sa6->sin6_family = AF_INET6;
			sa6->sin6_port = bpf_htons(o6->port);
			sa6->sin6_addr.in6_u.u6_addr32[0] = o6->ip[0];
			sa6->sin6_addr.in6_u.u6_addr32[1] = o6->ip[1];
			sa6->sin6_addr.in6_u.u6_addr32[2] = o6->ip[2];
			sa6->sin6_addr.in6_u.u6_addr32[3] = o6->ip[3];
			ctx->optlen = sizeof(*sa6);
			ctx->retval = 0;
			stat_add(ST_ORIGDST, 1);
			return 1;
		}
		/* v4-mapped: an IPv4 connection on an AF_INET6 socket */
		t.sip = rip[3];
		t.dip = lip[3];
	} else if (sk->family == AF_INET) {
		if (v6)
			return 1;
		t.sip = sk->dst_ip4;
		t.dip = sk->src_ip4;
	} else {
		return 1;
	}
	t.sport = bpf_ntohs(sk->dst_port);
	t.dport = (__u16)sk->src_port;
	struct orig_dst *o = bpf_map_lookup_elem(&orig_by_tuple, &t);
	if (!o) {
		stat_add(ST_ORIGDST_MISS, 1);
		return 1; /* the kernel's own answer (conntrack / iptables REDIRECT) stands */
	}
	if (v6) {
		/* IP6T_SO_ORIGINAL_DST on a v4-mapped connection: the v4-mapped address */
		struct sockaddr_in6 *sa6 = ctx->optval;
		if ((void *)(sa6 + 1) > ctx->optval_end)
			return 1;
		__builtin_memset(sa6, 0, sizeof(*sa6));
		sa6->sin6_family = AF_INET6;
		sa6->sin6_port = bpf_htons(o->port);
		sa6->sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0xffff);
		sa6->sin6_addr.in6_u.u6_addr32[3] = o->ip;
		ctx->optlen = sizeof(*sa6);
	} else {
		struct sockaddr_in *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		sa->sin_family = AF_INET;
		sa->sin_port = bpf_htons(o->port);
		sa->sin_addr.s_addr = o->ip;
		ctx->optlen = sizeof(*sa);
	}
	ctx->retval = 0;
	stat_add(ST_ORIGDST, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
