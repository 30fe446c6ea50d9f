// service-lb: east-west service load balancing at the socket (Kmesh / Cilium socket LB) as a kbpf
// package.
//
//   cgroup/connect4/6     a connection (TCP, connected UDP) to a service VIP:port is rewritten to one
//                         backend, once per connection; a service with no backend to choose fails
//                         connect() with ECONNREFUSED (bpf_set_retval) and never reaches the VIP
//   cgroup/sendmsg4/6     the same per datagram for unconnected UDP, remembering backend -> VIP
//   cgroup/recvmsg4/6     replies from a backend show the VIP as their source
//   cgroup/getpeername4/6 a translated socket reports the VIP as its peer
//   cgroup/sock_release   forgets the socket's reverse translations
//   sockops               active connections per backend (least-connections): +1 when a
//                         translated connection is established, -1 when it leaves ESTABLISHED
//   iter/tcp, iter/udp    ends translated sockets whose backend was removed (bpf_sock_destroy)
//   sk_msg                a connection sent to a service's waypoint carries the original
//                         destination as a TLV (Kmesh's format) in front of its first message
//
// A service (services: VIP, port, protocol -> struct service) points at a range of slots in
// backends, sorted by locality level. User space writes a changed backend set into a free range
// first and then replaces the service entry in one map update, so a connection sees the old set or
// the new one, never a half-written one. See README.md and services.ts.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ECONNREFUSED 111

#define SVC_LEVELS 7        /* failover priority levels (as Kmesh) */
#define SVC_MAX_BACKENDS 256 /* per service */
#define SVC_REV_SLOTS 4      /* reverse translations remembered per unconnected UDP socket */

/* policy */
#define POL_RANDOM 0
#define POL_ROUND_ROBIN 1
#define POL_WEIGHTED 2
#define POL_LEAST_CONN 3

/* service flags */
#define SVC_F_WAYPOINT 1 /* TCP connections go to the waypoint, the original destination in a TLV */

/* svc_origin.level of a connection sent to the service's waypoint (not a backend) */
#define LEVEL_WAYPOINT 255

/* locality */
#define LOC_ANY 0
#define LOC_STRICT 1   /* only levels <= strict_level; none there: fail */
#define LOC_FAILOVER 2 /* the lowest level that has a backend */

struct svc_key {
	__u32 addr[4]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 pad;
};

struct service {
	__u32 id;    /* 1..65535: round-robin counter, affinity, flow records */
	__u32 base;  /* first slot in backends */
	__u16 count; /* backends in the set (0: connect fails) */
	__u8 policy;
	__u8 locality;
	__u8 strict_level;
	__u8 flags;
	__u16 level_end[SVC_LEVELS]; /* backends sorted by level: level l is [level_end[l-1], level_end[l]) */
	__u32 affinity_timeout_s;    /* 0: no session affinity */
	__u32 waypoint[4];           /* SVC_F_WAYPOINT: its address (network order; IPv4 as ::ffff:a.b.c.d) */
	__u16 waypoint_port;         /* network order */
	__u16 pad2;
};

struct backend {
	__u32 addr[4]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;    /* network order */
	__u8 level;
	__u8 pad;
	__u32 weight;
	__u32 cum; /* weights of the set's slots 0..this one, summed (weighted policy) */
};

struct backend_key {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
};

/* the contract with flow-monitor: one per translated socket (README.md) */
struct svc_origin {
	__u32 vip[4];     /* AF_INET: vip[0], rest 0 */
	__u32 backend[4]; /* AF_INET: backend[0], rest 0 */
	__u16 vip_port;   /* network order */
	__u16 backend_port;
	__u8 family;
	__u8 policy;
	__u8 level;
	__u8 affinity_hit;
	__u32 service_id;
};

struct affinity_key {
	__u64 client; /* the client's network namespace cookie: one per pod */
	__u32 service_id;
	__u32 pad;
};

struct affinity_val {
	struct backend_key backend;
	__u64 last_ns;
};

struct rev_ent {
	__u32 backend[4];
	__u32 vip[4];
	__u16 backend_port;
	__u16 vip_port;
};

struct rev_set {
	struct rev_ent e[SVC_REV_SLOTS];
	__u32 next;
};

/* a connection redirected to a waypoint, until its first message carried the TLV */
struct waypoint_dst {
	__u32 addr[4]; /* the original destination (the VIP); AF_INET: addr[0], rest 0 */
	__u16 port;    /* network order */
	__u8 family;
	__u8 pad;
};

enum svc_stat {
	ST_TRANSLATED = 0,     /* connect: rewritten to a backend */
	ST_NO_BACKEND = 1,     /* connect / sendmsg refused: no backend to choose */
	ST_AFFINITY_HIT = 2,   /* the client's previous backend chosen again */
	ST_DATAGRAM = 3,       /* sendmsg: datagrams rewritten */
	ST_REV = 4,            /* recvmsg: replies given the VIP as source */
	ST_PEERNAME = 5,       /* getpeername answered with the VIP */
	ST_CONN_OPEN = 6,      /* sockops: translated connections established */
	ST_CONN_CLOSE = 7,     /* sockops: ... that left ESTABLISHED */
	ST_DESTROYED = 8,      /* iterators: sockets of removed backends ended */
	ST_RELEASED = 9,       /* sock_release: reverse translations forgotten */
	ST_WAYPOINT = 10,      /* connect: sent to the service's waypoint */
	ST_WAYPOINT_SELF = 11, /* connect: the waypoint's own connection to the service, balanced */
	ST_TLV = 12,           /* sk_msg: first messages given the original destination TLV */
	SVC_NR_STATS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* an update swaps the element; readers see old or new */
	__type(key, struct svc_key);
	__type(value, struct service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} svc_rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct backend_key);
	__type(value, __s64);
} backend_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct affinity_key);
	__type(value, struct affinity_val);
} affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, struct svc_origin);
} svc_origin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rev_set);
} svc_rev SEC(".maps");

/* a socket's two ends as sockops and sk_msg both see them (sk_msg has no socket cookie) */
struct sock_tuple_key {
	__u32 local[4]; /* AF_INET: local[0], rest 0 */
	__u32 remote[4];
	__u32 local_port;  /* as the ctx gives them */
	__u32 remote_port;
	__u32 family;
};

/* fills tuple key `t` (its family set) from a context with the socket's addresses and ports —
 * struct bpf_sock_ops and struct sk_msg_md name them alike; a macro, as each program type must
 * read its own context's fields directly */
#define SOCK_TUPLE_OF(t, ctx)                                  \
	do {                                                   \
		if ((t).family == AF_INET) {                   \
			(t).local[0] = (ctx)->local_ip4;       \
			(t).remote[0] = (ctx)->remote_ip4;     \
		} else {                                       \
			(t).local[0] = (ctx)->local_ip6[0];    \
			(t).local[1] = (ctx)->local_ip6[1];    \
			(t).local[2] = (ctx)->local_ip6[2];    \
			(t).local[3] = (ctx)->local_ip6[3];    \
			(t).remote[0] = (ctx)->remote_ip6[0];  \
			(t).remote[1] = (ctx)->remote_ip6[1];  \
			(t).remote[2] = (ctx)->remote_ip6[2];  \
			(t).remote[3] = (ctx)->remote_ip6[3];  \
		}                                              \
		(t).local_port = (ctx)->local_port;            \
		(t).remote_port = (ctx)->remote_port;          \
	} while (0)

/* connections redirected to a waypoint whose first message has not been sent yet (sockops puts
 * them here when they are established) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_tuple_key);
	__type(value, struct waypoint_dst);
} waypoint_dst SEC(".maps");

/* those sockets once established (sockops): svc_waypoint_msg runs on their messages */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} waypoint_socks SEC(".maps");

/* backends being removed from a service: the sockets translated to them are ended by the iterators */
struct doomed_key {
	struct backend_key backend;
	__u32 service_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct doomed_key);
	__type(value, __u8);
} doomed SEC(".maps");

struct svc_counters {
	__u64 c[SVC_NR_STATS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct svc_counters);
} svc_stats SEC(".maps");

static __always_inline void stat_add(__u32 slot, __u64 n)
{
	__u32 zero = 0;
	struct svc_counters *v = bpf_map_lookup_elem(&svc_stats, &zero);
	if (v && slot < SVC_NR_STATS)
		v->c[slot] += n;
}

static __always_inline struct backend *slot(__u32 i)
{
	return bpf_map_lookup_elem(&backends, &i);
}

/* ---- choosing a backend ------------------------------------------------------------------- */

struct scan {
	__u32 base;
	__u32 lo;
	__u32 n;
	__u32 start;
	/* weighted */
	__u32 target;
	/* least-conn */
	__s64 best_conns;
	/* affinity */
	struct backend_key want;
	/* result: offset from base, or -1 */
	__s32 found;
};

static __always_inline void key_of(struct backend_key *k, const struct backend *b)
{
	k->addr[0] = b->addr[0];
	k->addr[1] = b->addr[1];
	k->addr[2] = b->addr[2];
	k->addr[3] = b->addr[3];
	k->port = b->port;
	k->pad = 0;
}

static long weighted_step(__u64 i, void *data)
{
	struct scan *s = data;
	struct backend *b = slot(s->base + s->lo + (__u32)i);
	if (!b)
		return 1;
	if (b->cum > s->target) {
		s->found = s->lo + (__u32)i;
		return 1;
	}
	return 0;
}

static long least_conn_step(__u64 i, void *data)
{
	struct scan *s = data;
	if (!s->n)
		return 1;
	__u32 off = s->lo + (s->start + (__u32)i) % s->n;
	struct backend *b = slot(s->base + off);
	if (!b)
		return 1;
	struct backend_key k;
	key_of(&k, b);
	__s64 *c = bpf_map_lookup_elem(&backend_conns, &k);
	__s64 conns = c ? *c : 0;
	if (s->found < 0 || conns < s->best_conns) {
		s->best_conns = conns;
		s->found = off;
	}
	return 0;
}

static long member_step(__u64 i, void *data)
{
	struct scan *s = data;
	struct backend *b = slot(s->base + s->lo + (__u32)i);
	if (!b)
		return 1;
	if (b->port == s->want.port && b->addr[0] == s->want.addr[0] && b->addr[1] == s->want.addr[1] &&
	    b->addr[2] == s->want.addr[2] && b->addr[3] == s->want.addr[3]) {
		s->found = s->lo + (__u32)i;
		return 1;
	}
	return 0;
}

/* The range [lo, hi) of the set this connection may use, by locality; false: none. */
static __always_inline bool level_range(const struct service *svc, __u32 *lo, __u32 *hi)
{
	if (svc->locality == LOC_STRICT) {
		__u32 l = svc->strict_level;
		if (l >= SVC_LEVELS)
			l = SVC_LEVELS - 1;
		*lo = 0;
		*hi = svc->level_end[l];
		return *hi > 0;
	}
	if (svc->locality == LOC_FAILOVER) {
		__u32 start = 0;
#pragma unroll
		for (int l = 0; l < SVC_LEVELS; l++) {
			__u32 end = svc->level_end[l];
			if (end > start) {
				*lo = start;
				*hi = end;
				return true;
			}
			start = end;
		}
		return false;
	}
	*lo = 0;
	*hi = svc->count;
	return svc->count > 0;
}

struct choice {
	struct backend be;
	__u8 affinity_hit;
};

static __always_inline bool choose(struct bpf_sock_addr *ctx, const struct service *svc, struct choice *out)
{
	__u32 lo, hi;
	if (!level_range(svc, &lo, &hi) || hi > svc->count || hi > SVC_MAX_BACKENDS)
		return false;
	__u32 n = hi - lo;
	struct scan s = { .base = svc->base, .lo = lo, .n = n, .found = -1 };
	struct affinity_key ak = { .service_id = svc->id };
	__u64 now = 0;

	if (svc->affinity_timeout_s) {
		ak.client = bpf_get_netns_cookie(ctx); /* only affinity needs the client */
		now = bpf_ktime_get_ns();
		struct affinity_val *a = bpf_map_lookup_elem(&affinity, &ak);
		if (a && now - a->last_ns < (__u64)svc->affinity_timeout_s * 1000000000ULL) {
			s.want = a->backend;
			bpf_loop(n, member_step, &s, 0);
			if (s.found >= 0) {
				struct backend *b = slot(svc->base + (__u32)s.found);
				if (b) {
					out->be = *b;
					out->affinity_hit = 1;
					a->last_ns = now;
					stat_add(ST_AFFINITY_HIT, 1);
					return true;
				}
			}
			s.found = -1;
		}
	}

	__u32 off = 0;
	switch (svc->policy) {
	case POL_ROUND_ROBIN: {
		__u32 id = svc->id;
		__u32 *rr = bpf_map_lookup_elem(&svc_rr, &id);
		__u32 c = bpf_get_prandom_u32();
		if (rr) { /* two connects at the same instant may share a turn (no fetch-and-add result before -mcpu=v3) */
			c = *rr;
			__sync_fetch_and_add(rr, 1);
		}
		off = lo + c % n;
		break;
	}
	case POL_WEIGHTED: {
		struct backend *first = slot(svc->base + lo);
		struct backend *last = slot(svc->base + hi - 1);
		if (!first || !last)
			return false;
		__u32 before = first->cum - first->weight;
		__u32 total = last->cum - before;
		if (!total)
			return false;
		s.target = before + bpf_get_prandom_u32() % total;
		bpf_loop(n, weighted_step, &s, 0);
		if (s.found < 0)
			return false;
		off = (__u32)s.found;
		break;
	}
	case POL_LEAST_CONN:
		s.start = bpf_get_prandom_u32() % n; /* ties broken at random */
		bpf_loop(n, least_conn_step, &s, 0);
		if (s.found < 0)
			return false;
		off = (__u32)s.found;
		break;
	default:
		off = lo + bpf_get_prandom_u32() % n;
	}
	struct backend *b = slot(svc->base + off);
	if (!b)
		return false;
	out->be = *b;
	out->affinity_hit = 0;
	if (svc->affinity_timeout_s) {
		struct affinity_val v = { .last_ns = now };
		key_of(&v.backend, b);
		bpf_map_update_elem(&affinity, &ak, &v, BPF_ANY);
	}
	return true;
}

/* ---- the hooks ---------------------------------------------------------------------------- */

static __always_inline void key_from_ctx(struct bpf_sock_addr *ctx, struct svc_key *k, int family)
{
	if (family == AF_INET) {
		k->addr[0] = 0;
		k->addr[1] = 0;
		k->addr[2] = bpf_htonl(0xffff);
		k->addr[3] = ctx->user_ip4;
	} else {
		k->addr[0] = ctx->user_ip6[0];
		k->addr[1] = ctx->user_ip6[1];
		k->addr[2] = ctx->user_ip6[2];
		k->addr[3] = ctx->user_ip6[3];
	}
	k->port = (__u16)ctx->user_port;
	k->proto = (__u8)ctx->protocol;
	k->pad = 0;
}

/* v4-mapped? (so an AF_INET6 socket reaching an IPv4 service) */
static __always_inline bool mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

static __always_inline void write_ctx(struct bpf_sock_addr *ctx, int family, const __u32 *addr, __u16 port)
{
	if (family == AF_INET) {
		ctx->user_ip4 = addr[3];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = port;
}

/* addresses as flow-monitor reads them: IPv4 in word 0 */
static __always_inline void origin_addr(__u32 *dst, const __u32 *a)
{
	if (mapped(a)) {
		dst[0] = a[3];
		dst[1] = 0;
		dst[2] = 0;
		dst[3] = 0;
	} else {
		dst[0] = a[0];
		dst[1] = a[1];
		dst[2] = a[2];
		dst[3] = a[3];
	}
}

static __always_inline void remember_reverse(__u64 cookie, const struct svc_key *k, const struct backend *b)
{
	struct rev_set *rs = bpf_map_lookup_elem(&svc_rev, &cookie);
	if (!rs) {
		/* the socket's first datagram: one update with its first pair (no second lookup) */
		struct rev_set first = { .next = 1 };
		__builtin_memcpy(first.e[0].backend, b->addr, sizeof(first.e[0].backend));
		__builtin_memcpy(first.e[0].vip, k->addr, sizeof(first.e[0].vip));
		first.e[0].backend_port = b->port;
		first.e[0].vip_port = k->port;
		bpf_map_update_elem(&svc_rev, &cookie, &first, BPF_NOEXIST);
		return;
	}
	__u32 i;
	for (i = 0; i < SVC_REV_SLOTS; i++) {
		struct rev_ent *e = &rs->e[i];
		if (e->backend_port == b->port && e->backend[3] == b->addr[3] && e->backend[2] == b->addr[2] &&
		    e->backend[1] == b->addr[1] && e->backend[0] == b->addr[0])
			break;
	}
	if (i >= SVC_REV_SLOTS)
		i = rs->next++ % SVC_REV_SLOTS;
	if (i >= SVC_REV_SLOTS)
		return;
	struct rev_ent *e = &rs->e[i];
	__builtin_memcpy(e->backend, b->addr, sizeof(e->backend));
	__builtin_memcpy(e->vip, k->addr, sizeof(e->vip));
	e->backend_port = b->port;
	e->vip_port = k->port;
}

static __always_inline void record_origin(__u64 cookie, const struct svc_key *k, const __u32 *to, __u16 to_port,
					  const struct service *svc, __u8 level, __u8 affinity_hit)
{
	struct svc_origin o = {
		.vip_port = k->port,
		.backend_port = to_port,
		.family = mapped(k->addr) ? AF_INET : AF_INET6,
		.policy = svc->policy,
		.level = level,
		.affinity_hit = affinity_hit,
		.service_id = svc->id,
	};
	origin_addr(o.vip, k->addr);
	origin_addr(o.backend, to);
	bpf_map_update_elem(&svc_origin, &cookie, &o, BPF_ANY);
}

static __always_inline int refuse(void)
{
	stat_add(ST_NO_BACKEND, 1);
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* The caller is the waypoint itself (the waypoint's listening socket is in the caller's network
 * namespace): its own connection to the service is balanced, not sent back to it. */
static __always_inline bool in_waypoint(struct bpf_sock_addr *ctx, const struct service *svc, bool v4)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	if (v4) {
		t.ipv4.daddr = svc->waypoint[3];
		t.ipv4.dport = svc->waypoint_port;
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.daddr, svc->waypoint, sizeof(t.ipv6.daddr));
		t.ipv6.dport = svc->waypoint_port;
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/* A TCP connection to a service with a waypoint goes to the waypoint; svc_origin (level
 * LEVEL_WAYPOINT) keeps its original destination for sockops and the first message (sk_msg). 1 = go on, 0 = refused, -1 = balance it. */
static __always_inline int to_waypoint(struct bpf_sock_addr *ctx, int family, const struct svc_key *k,
				       const struct service *svc)
{
	bool v4 = mapped(k->addr);
	if (mapped(svc->waypoint) != v4)
		return refuse();
	if (in_waypoint(ctx, svc, v4)) {
		stat_add(ST_WAYPOINT_SELF, 1);
		return -1;
	}
	write_ctx(ctx, family, svc->waypoint, svc->waypoint_port);
	__u64 cookie = bpf_get_socket_cookie(ctx);
	record_origin(cookie, k, svc->waypoint, svc->waypoint_port, svc, LEVEL_WAYPOINT, 0);
	stat_add(ST_WAYPOINT, 1);
	return 1;
}

/* connect / sendmsg: 1 = go on (translated or not a service), 0 = refused (retval set). */
static __always_inline int translate(struct bpf_sock_addr *ctx, int family, bool datagram)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	struct svc_key k;
	key_from_ctx(ctx, &k, family);
	struct service *svc = bpf_map_lookup_elem(&services, &k);
	if (!svc)
		return 1;
	if ((svc->flags & SVC_F_WAYPOINT) && proto == IPPROTO_TCP) {
		int r = to_waypoint(ctx, family, &k, svc);
		if (r >= 0)
			return r;
	}
	struct choice c = {};
	if (!choose(ctx, svc, &c))
		return refuse();
	/* an IPv6 backend cannot be reached from an AF_INET socket, nor v4 from a v6 service */
	if (mapped(c.be.addr) != mapped(k.addr))
		return refuse();
	write_ctx(ctx, family, c.be.addr, c.be.port);
	__u64 cookie = bpf_get_socket_cookie(ctx);
	record_origin(cookie, &k, c.be.addr, c.be.port, svc, c.be.level, c.affinity_hit);
	if (proto == IPPROTO_UDP)
		remember_reverse(cookie, &k, &c.be);
	stat_add(datagram ? ST_DATAGRAM : ST_TRANSLATED, 1);
	return 1;
}

SEC("cgroup/connect4")
int svc_connect4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, AF_INET, false);
}

SEC("cgroup/connect6")
int svc_connect6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, AF_INET6, false);
}

SEC("cgroup/sendmsg4")
int svc_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, AF_INET, true);
}

SEC("cgroup/sendmsg6")
int svc_sendmsg6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, AF_INET6, true);
}

/* a datagram from a backend this socket sent to: its source becomes the VIP */
static __always_inline int reverse(struct bpf_sock_addr *ctx, int family)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct rev_set *rs = bpf_map_lookup_elem(&svc_rev, &cookie);
	if (!rs)
		return 1;
	struct svc_key from;
	key_from_ctx(ctx, &from, family);
	for (__u32 i = 0; i < SVC_REV_SLOTS; i++) {
		struct rev_ent *e = &rs->e[i];
		if (e->backend_port == from.port && e->backend[3] == from.addr[3] && e->backend[2] == from.addr[2] &&
		    e->backend[1] == from.addr[1] && e->backend[0] == from.addr[0]) {
			write_ctx(ctx, family, e->vip, e->vip_port);
			stat_add(ST_REV, 1);
			return 1;
		}
	}
	return 1;
}

SEC("cgroup/recvmsg4")
int svc_recvmsg4(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, AF_INET);
}

SEC("cgroup/recvmsg6")
int svc_recvmsg6(struct bpf_sock_addr *ctx)
{
	return reverse(ctx, AF_INET6);
}

/* a translated, connected socket: the peer is the VIP (only while the kernel's peer is the backend) */
static __always_inline int peername(struct bpf_sock_addr *ctx, int family)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct svc_origin *o = bpf_map_lookup_elem(&svc_origin, &cookie);
	if (!o)
		return 1;
	struct svc_key peer;
	key_from_ctx(ctx, &peer, family);
	__u32 b[4];
	origin_addr(b, peer.addr);
	if (peer.port != o->backend_port || b[0] != o->backend[0] || b[1] != o->backend[1] || b[2] != o->backend[2] ||
	    b[3] != o->backend[3])
		return 1;
	__u32 vip[4];
	if (o->family == AF_INET) {
		vip[0] = 0;
		vip[1] = 0;
		vip[2] = bpf_htonl(0xffff);
		vip[3] = o->vip[0];
	} else {
		vip[0] = o->vip[0];
		vip[1] = o->vip[1];
		vip[2] = o->vip[2];
		vip[3] = o->vip[3];
	}
	write_ctx(ctx, family, vip, o->vip_port);
	stat_add(ST_PEERNAME, 1);
	return 1;
}

SEC("cgroup/getpeername4")
int svc_getpeername4(struct bpf_sock_addr *ctx)
{
	return peername(ctx, AF_INET);
}

SEC("cgroup/getpeername6")
int svc_getpeername6(struct bpf_sock_addr *ctx)
{
	return peername(ctx, AF_INET6);
}

SEC("cgroup/sock_release")
int svc_release(struct bpf_sock *sk)
{
	if (sk->protocol != IPPROTO_UDP)
		return 1; /* only UDP sockets have reverse translations: TCP closes cost no map operation */
	__u64 cookie = bpf_get_socket_cookie(sk);
	if (bpf_map_delete_elem(&svc_rev, &cookie) == 0)
		stat_add(ST_RELEASED, 1);
	return 1;
}

/* ---- active connections per backend (least-connections) ---------------------------------- */

static __always_inline void origin_backend_key(struct backend_key *k, const struct svc_origin *o)
{
	if (o->family == AF_INET) {
		k->addr[0] = 0;
		k->addr[1] = 0;
		k->addr[2] = bpf_htonl(0xffff);
		k->addr[3] = o->backend[0];
	} else {
		k->addr[0] = o->backend[0];
		k->addr[1] = o->backend[1];
		k->addr[2] = o->backend[2];
		k->addr[3] = o->backend[3];
	}
	k->port = o->backend_port;
	k->pad = 0;
}

SEC("sockops")
int svc_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	if (op == BPF_SOCK_OPS_STATE_CB && skops->args[0] != BPF_TCP_ESTABLISHED)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct svc_origin *o = bpf_map_lookup_elem(&svc_origin, &cookie);
	if (!o)
		return 1;
	if (o->level == LEVEL_WAYPOINT) {
		/* to a waypoint: its messages go through svc_waypoint_msg (the first carries the TLV) */
		if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
			return 1;
		struct sock_tuple_key t = { .family = skops->family };
		SOCK_TUPLE_OF(t, skops);
		struct waypoint_dst d = { .port = o->vip_port, .family = o->family };
		__builtin_memcpy(d.addr, o->vip, sizeof(d.addr));
		bpf_map_update_elem(&waypoint_dst, &t, &d, BPF_ANY);
		bpf_sock_hash_update(skops, &waypoint_socks, &cookie, BPF_NOEXIST);
		return 1;
	}
	/* only least-connections reads the counts: other policies' connections cost one lookup here.
	 * (The state callback flag is per socket and another package may have set it: the policy is
	 * checked on both sides so that only counted connections are uncounted.) */
	if (o->policy != POL_LEAST_CONN)
		return 1;
	struct backend_key k;
	origin_backend_key(&k, o);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__s64 zero = 0;
		bpf_map_update_elem(&backend_conns, &k, &zero, BPF_NOEXIST);
		__s64 *c = bpf_map_lookup_elem(&backend_conns, &k);
		if (c)
			__sync_fetch_and_add(c, 1);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		stat_add(ST_CONN_OPEN, 1);
	} else {
		__s64 *c = bpf_map_lookup_elem(&backend_conns, &k);
		if (c)
			__sync_fetch_and_add(c, -1);
		stat_add(ST_CONN_CLOSE, 1);
	}
	return 1;
}

/* ---- the waypoint's TLV ------------------------------------------------------------------- */

/* Kmesh's format, in front of the first message: type 0x01, length (4 bytes, big endian) 6 or 18,
 * the original destination's address (4 or 16 bytes) and port (2 bytes, network order); then the
 * end marker: type 0xfe, length 0. 16 bytes for IPv4, 28 for IPv6. */
#define TLV_ORIG_DST 0x01
#define TLV_END 0xfe
#define TLV4_SIZE (1 + 4 + 4 + 2 + 1 + 4)
#define TLV6_SIZE (1 + 4 + 16 + 2 + 1 + 4)

static __always_inline void tlv_header(__u8 *p, __u8 type, __u32 len)
{
	p[0] = type;
	p[1] = (__u8)(len >> 24);
	p[2] = (__u8)(len >> 16);
	p[3] = (__u8)(len >> 8);
	p[4] = (__u8)len;
}

SEC("sk_msg")
int svc_waypoint_msg(struct sk_msg_md *msg)
{
	struct sock_tuple_key t = { .family = msg->family };
	SOCK_TUPLE_OF(t, msg);
	struct waypoint_dst *p = bpf_map_lookup_elem(&waypoint_dst, &t);
	if (!p)
		return SK_PASS; /* a later message: nothing to add */
	struct waypoint_dst d = *p;
	bpf_map_delete_elem(&waypoint_dst, &t);
	__u32 len = d.family == AF_INET ? TLV4_SIZE : TLV6_SIZE;
	/* no room for the TLV: the waypoint could not read the message, so it is not sent */
	if (bpf_msg_push_data(msg, 0, len, 0) || bpf_msg_pull_data(msg, 0, len, 0))
		return SK_DROP;
	__u8 *data = msg->data;
	__u8 *end = msg->data_end;
	if (d.family == AF_INET) {
		if (data + TLV4_SIZE > end)
			return SK_DROP;
		tlv_header(data, TLV_ORIG_DST, 6);
		__builtin_memcpy(data + 5, &d.addr[0], 4);
		__builtin_memcpy(data + 9, &d.port, 2);
		tlv_header(data + 11, TLV_END, 0);
	} else {
		if (data + TLV6_SIZE > end)
			return SK_DROP;
		tlv_header(data, TLV_ORIG_DST, 18);
		__builtin_memcpy(data + 5, d.addr, 16);
		__builtin_memcpy(data + 21, &d.port, 2);
		tlv_header(data + 23, TLV_END, 0);
	}
	stat_add(ST_TLV, 1);
	return SK_PASS;
}

/* ---- ending the connections of removed backends ------------------------------------------- */

extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

static __always_inline int destroy_if_doomed(struct sock_common *sk)
{
	if (!sk || !bpf_ksym_exists(bpf_sock_destroy))
		return 0;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct svc_origin *o = bpf_map_lookup_elem(&svc_origin, &cookie);
	if (!o)
		return 0;
	struct doomed_key k = { .service_id = o->service_id };
	origin_backend_key(&k.backend, o);
	if (!bpf_map_lookup_elem(&doomed, &k))
		return 0;
	if (bpf_sock_destroy(sk) == 0)
		stat_add(ST_DESTROYED, 1);
	return 0;
}

SEC("iter/tcp")
int svc_destroy_tcp(struct bpf_iter__tcp *ctx)
{
	return destroy_if_doomed(ctx->sk_common);
}

SEC("iter/udp")
int svc_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	if (!udp)
		return 0;
	return destroy_if_doomed(&udp->inet.sk.__sk_common);
}

char LICENSE[] SEC("license") = "GPL";
