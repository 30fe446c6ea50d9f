// netpol: Kubernetes NetworkPolicy (L3/L4, per pod, ingress and egress) as a kbpf package.
//
//   cgroup_skb/egress   every packet a pod's socket sends
//   cgroup_skb/ingress  every packet delivered to a pod's socket
//
// Both attach to the cgroup holding the pods; a pod is known by its own cgroup's id
// (bpf_skb_cgroup_id). The policies are compiled in user space (policy.ts, compile.ts) into one
// LPM trie, a whole generation: the pods (cgroup id -> their rule set per direction), the port
// classes of each rule set (set, protocol, port prefix -> a peer set), the peers of each class
// (peer set, IPv4 or IPv6 prefix -> allowed / excepted). The trie sits in slot 0 of the array of maps
// `policy`; a change builds a new trie and replaces that one slot, so a packet sees either the
// old generation or the new one, never a mix. Each packet looks the slot up once.
//
// A pod selected by no policy of a direction is unrestricted in it. A packet its direction's
// policy allows passes on that verdict (kept per pod, peer and port in `verdicts`, by generation:
// the trie's lookups cost more) when the pod's other direction is unrestricted: its replies need
// no record. Otherwise connections allowed in one direction have their replies allowed through a
// record of the flow: its generation and the direction it started in. A connected TCP socket
// (not a listener) keeps that record in its own socket storage (`sk_conns`, with the flow's key):
// every packet of a TCP connection goes through its socket, so its packets after the first are
// decided there, without a table lookup. A listener's handshakes are recorded in `handshakes`
// (LRU) until the new socket's first packet moves the record onto it; UDP and other protocols in
// the per-pod connection table `conns` (LRU). A connection recorded in an older generation is
// checked again against the current one.
// Drops go to the ring buffer `drops` (at most one record per flow and second, with the number
// of drops it stands for, and the policy's name) and are counted per policy in `drop_counts`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <kbpf.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define NP_KEY_BYTES 24
#define AF_INET 2
#define AF_INET6 10

/* kinds of entries in a policy generation (first byte of the key's data) */
#define NP_POD 1
#define NP_PORT 2
#define NP_PEER 3  /* IPv4 prefixes */
#define NP_PEER6 4 /* IPv6 prefixes */

/* pod flags */
#define NP_INGRESS_ISOLATED 1
#define NP_EGRESS_ISOLATED 2
/* port class flags */
#define NP_ANY_PEER 1

#define DIR_INGRESS 0
#define DIR_EGRESS 1

#define DROP_REPORT_NS 1000000000ULL
#define TCP_SYN 0x02
#define TCP_ACK 0x10

struct np_key {
	__u32 prefixlen;
	__u8 data[NP_KEY_BYTES];
};

/*
 * One value layout for every kind:
 *   pod:  a = ingress rule set, b = egress rule set, c = flags, d = ingress policy id,
 *         e = egress policy id (the policies named on a drop), f = generation
 *   port: a = peer set, b = flags (NP_ANY_PEER: every peer)
 *   peer, peer6: a = 1 allowed, 0 excepted
 */
struct np_value {
	__u32 a, b, c, d, e, f;
};

struct np_generation {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* sizes, not types: user space creates each generation's trie without BTF */
	__uint(key_size, sizeof(struct np_key));
	__uint(value_size, sizeof(struct np_value));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct np_generation);
} policy SEC(".maps");

/* a pod's view of a flow */
struct conn_key {
	__u64 cgroup;
	__u32 remote[4]; /* network order; IPv4 in [0], the rest 0 */
	__u32 local[4];
	__u16 rport; /* host order */
	__u16 lport;
	__u8 proto;
	__u8 dir; /* conns: 0; drop_seen: the direction of the drop */
	__u8 family; /* AF_INET, AF_INET6 */
	__u8 pad;
};

struct conn {
	__u32 gen;   /* generation that allowed it */
	__u8 origin; /* direction of its first packet */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn);
} conns SEC(".maps");

/*
 * TCP's flows while their socket has no record: a listener's handshakes, until the new socket's
 * first packet moves the record onto it (a new entry lives about one round trip)
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct conn_key);
	__type(value, struct conn);
} handshakes SEC(".maps");

/* TCP's flows in `handshakes`, the others in `conns` */
#define FLOWS(ck) ((ck)->proto == IPPROTO_TCP ? (void *)&handshakes : (void *)&conns)

/* a pod's verdict on a peer and port in one direction (what check() decides from the trie) */
struct verdict_key {
	__u64 cgroup;
	__u32 remote[4];
	__u16 port;
	__u8 proto;
	__u8 dir;
	__u8 family;
	__u8 pad[3];
};

struct verdict {
	__u32 gen; /* the pod's generation it was decided in */
	__u32 allowed;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct verdict_key);
	__type(value, struct verdict);
} verdicts SEC(".maps");

/* a connected TCP socket's flow (its key: the socket may connect again) and its record */
struct sk_conn {
	struct conn_key key; /* key.cgroup 0: none */
	struct conn c;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sk_conn);
} sk_conns SEC(".maps");

struct drop_seen {
	__u64 reported_ns;
	__u32 count; /* drops since the last record */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, struct drop_seen);
} drop_seen SEC(".maps");

#define NP_NAME_LEN 256

/* policy id -> namespace/name, written by user space (the ids of drop events and drop_counts) */
struct policy_name {
	char name[NP_NAME_LEN];
};

/* A drop, complete on its own: `kbpf flows` shows it without the instance's maps. */
struct drop_event {
	__u64 cgroup_id; /* the pod's cgroup */
	__u8 saddr[16];  /* as on the wire; IPv4 as ::ffff:a.b.c.d */
	__u8 daddr[16];
	__u16 sport; /* host order */
	__u16 dport;
	__u32 policy_id; /* the policy (id in policy_names) that selects the pod in that direction */
	__u32 count;     /* drops this record stands for (the first and those of the second after it) */
	__u8 proto;
	__u8 direction; /* 0 ingress, 1 egress */
	__u8 tcp_flags;
	__u8 family; /* AF_INET, AF_INET6 */
	char policy[NP_NAME_LEN]; /* the policy's namespace/name (policy_names) */
};

KBPF_RINGBUF(drops, 1024 * 1024, struct drop_event);

/* drops per policy id */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} drop_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct policy_name);
} policy_names SEC(".maps");

/* the generation applied last (user space: what `declare list` shows) */
struct np_meta {
	__u64 applied_ns;
	__u32 gen;
	__u32 policies;
	__u32 pods;
	__u32 entries;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_meta);
} meta SEC(".maps");

enum np_stat {
	ST_ALLOWED = 0,   /* first packets allowed by a policy */
	ST_CONN = 1,      /* packets of known connections (replies included) */
	ST_DROPPED = 2,   /* packets dropped */
	ST_RECHECKED = 3, /* connections checked again after a change */
	ST_UNTRACKED = 4, /* packets of pods whose both directions are unrestricted */
	ST_NOT_IP = 5,    /* packets neither IPv4 nor IPv6 dropped in an isolated direction */
	ST_SOCKET = 6,    /* packets of known connections decided by their socket's record (in ST_CONN too) */
	NP_NR_STATS = 8,
};

struct np_stats {
	__u64 c[NP_NR_STATS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_stats);
} stats SEC(".maps");

static __always_inline void count(int which)
{
	__u32 zero = 0;
	struct np_stats *s = bpf_map_lookup_elem(&stats, &zero);
	if (s && which < NP_NR_STATS)
		s->c[which]++;
}

/*
 * The TCP socket of a packet, where all the packets of its flow go through it (not a listener;
 * *listener says whether the packet's socket is one).
 */
static __always_inline struct bpf_sock *conn_socket(struct __sk_buff *skb, int *listener)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return NULL;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return NULL;
	if (sk->state == BPF_TCP_LISTEN) {
		*listener = 1;
		return NULL;
	}
	return sk;
}

static __always_inline int same_key(struct conn_key *a, struct conn_key *b)
{
	__u64 *x = (__u64 *)a, *y = (__u64 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4] && x[5] == y[5];
}

/* Keeps the flow's record on its socket (0: no storage). */
static __always_inline int keep(struct bpf_sock *sk, struct sk_conn *sc, struct conn_key *ck, __u32 gen, __u8 origin)
{
	if (!sc)
		sc = bpf_sk_storage_get(&sk_conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sc)
		return 0;
	sc->key = *ck;
	sc->c.gen = gen;
	sc->c.origin = origin;
	return 1;
}

/* Is the peer on `port` allowed by rule set `set`? (the port class, then the peer prefix) */
static __always_inline int allowed(void *gen, __u32 set, __u16 port, struct conn_key *ck)
{
	__u8 proto = ck->proto;
	struct np_key k = {};
	k.prefixlen = 64; /* kind, set, protocol, port */
	k.data[0] = NP_PORT;
	__builtin_memcpy(&k.data[1], &set, 4);
	k.data[5] = proto;
	k.data[6] = port >> 8;
	k.data[7] = port & 0xff;
	struct np_value *cls = bpf_map_lookup_elem(gen, &k);
	if (!cls)
		return 0;
	if (cls->b & NP_ANY_PEER)
		return 1;
	struct np_key p = {};
	__builtin_memcpy(&p.data[1], &cls->a, 4);
	if (ck->family == AF_INET6) {
		p.prefixlen = 168; /* kind, peer set, address */
		p.data[0] = NP_PEER6;
		__builtin_memcpy(&p.data[5], ck->remote, 16);
	} else {
		p.prefixlen = 72;
		p.data[0] = NP_PEER;
		__builtin_memcpy(&p.data[5], ck->remote, 4);
	}
	struct np_value *v = bpf_map_lookup_elem(gen, &p);
	return v && v->a;
}

/* The verdict of a flow's first packet in direction `dir` (1 = pass). */
static __always_inline int check(void *gen, struct np_value *pod, int dir, struct conn_key *ck)
{
	if (!(pod->c & (dir == DIR_INGRESS ? NP_INGRESS_ISOLATED : NP_EGRESS_ISOLATED)))
		return 1;
	/* the peer and port decided before in this generation (the trie's two lookups cost more) */
	struct verdict_key vk = {
		.cgroup = ck->cgroup,
		.port = dir == DIR_INGRESS ? ck->lport : ck->rport,
		.proto = ck->proto,
		.dir = dir,
		.family = ck->family,
	};
	__builtin_memcpy(vk.remote, ck->remote, 16);
	struct verdict *v = bpf_map_lookup_elem(&verdicts, &vk);
	if (v && v->gen == pod->f)
		return v->allowed;
	struct verdict fresh = { .gen = pod->f };
	fresh.allowed = allowed(gen, dir == DIR_INGRESS ? pod->a : pod->b, vk.port, ck);
	bpf_map_update_elem(&verdicts, &vk, &fresh, BPF_ANY);
	return fresh.allowed;
}

static __always_inline void report_drop(struct conn_key *ck, __u32 policy_id, int dir, __u8 flags)
{
	__u64 *n = bpf_map_lookup_elem(&drop_counts, &policy_id);
	if (n) {
		(*n)++;
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&drop_counts, &policy_id, &one, BPF_NOEXIST);
	}
	count(ST_DROPPED);

	struct conn_key dk = *ck;
	dk.dir = dir;
	__u64 now = bpf_ktime_get_ns();
	__u32 n_drops = 1;
	struct drop_seen *seen = bpf_map_lookup_elem(&drop_seen, &dk);
	if (seen) {
		if (now - seen->reported_ns < DROP_REPORT_NS) {
			__sync_fetch_and_add(&seen->count, 1);
			return;
		}
		n_drops = seen->count + 1;
		seen->count = 0;
		seen->reported_ns = now;
	} else {
		struct drop_seen fresh = { .reported_ns = now };
		bpf_map_update_elem(&drop_seen, &dk, &fresh, BPF_ANY);
	}
	struct drop_event *e = kbpf_reserve(drops, sizeof(*e));
	if (!e)
		return;
	e->cgroup_id = ck->cgroup;
	__u32 *src = dir == DIR_EGRESS ? ck->local : ck->remote;
	__u32 *dst = dir == DIR_EGRESS ? ck->remote : ck->local;
	if (ck->family == AF_INET6) {
		__builtin_memcpy(e->saddr, src, 16);
		__builtin_memcpy(e->daddr, dst, 16);
	} else {
		__u32 mapped[4] = { 0, 0, bpf_htonl(0xffff), src[0] };
		__builtin_memcpy(e->saddr, mapped, 16);
		mapped[3] = dst[0];
		__builtin_memcpy(e->daddr, mapped, 16);
	}
	e->sport = dir == DIR_EGRESS ? ck->lport : ck->rport;
	e->dport = dir == DIR_EGRESS ? ck->rport : ck->lport;
	e->policy_id = policy_id;
	e->count = n_drops;
	e->proto = ck->proto;
	e->direction = dir;
	e->tcp_flags = flags;
	e->family = ck->family;
	struct policy_name *pn = bpf_map_lookup_elem(&policy_names, &policy_id);
	if (pn)
		__builtin_memcpy(e->policy, pn->name, NP_NAME_LEN);
	else
		e->policy[0] = 0;
	bpf_ringbuf_submit(e, 0);
}

/* Reads the packet's family, protocol, addresses and ports into ck, seen from the pod (0: no IP packet). */
static __always_inline int parse(struct __sk_buff *skb, int dir, struct conn_key *ck, __u8 *flags)
{
	__u32 l4;
	__u32 saddr[4] = {}, daddr[4] = {};
	__u16 sport = 0, dport = 0;
	/* the common case, read in place: IPv4 without options, TCP or UDP, its headers in the linear data */
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *iph = data;
	if (skb->protocol == bpf_htons(ETH_P_IP) && (void *)(iph + 1) <= end && iph->ihl == 5 &&
	    (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP)) {
		__u8 *th = (void *)(iph + 1);
		if ((void *)(th + 14) <= end) {
			ck->family = AF_INET;
			ck->proto = iph->protocol;
			saddr[0] = iph->saddr;
			daddr[0] = iph->daddr;
			sport = bpf_ntohs(*(__u16 *)th);
			dport = bpf_ntohs(*(__u16 *)(th + 2));
			if (ck->proto == IPPROTO_TCP)
				*flags = th[13];
			goto fill;
		}
	}
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 0;
		ck->family = AF_INET;
		ck->proto = ip.protocol;
		saddr[0] = ip.saddr;
		daddr[0] = ip.daddr;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 0;
		ck->family = AF_INET6;
		ck->proto = ip6.nexthdr; /* an extension header: its type, no ports */
		__builtin_memcpy(saddr, &ip6.saddr, 16);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
		l4 = sizeof(ip6);
	} else {
		return 0;
	}
	if (ck->proto == IPPROTO_TCP || ck->proto == IPPROTO_UDP || ck->proto == IPPROTO_SCTP) {
		__u16 ports[2];
		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return 0;
		sport = bpf_ntohs(ports[0]);
		dport = bpf_ntohs(ports[1]);
		if (ck->proto == IPPROTO_TCP)
			bpf_skb_load_bytes(skb, l4 + 13, flags, 1);
	}
fill:
	if (dir == DIR_EGRESS) {
		__builtin_memcpy(ck->local, saddr, 16);
		__builtin_memcpy(ck->remote, daddr, 16);
		ck->lport = sport, ck->rport = dport;
	} else {
		__builtin_memcpy(ck->local, daddr, 16);
		__builtin_memcpy(ck->remote, saddr, 16);
		ck->lport = dport, ck->rport = sport;
	}
	return 1;
}

/* The pod talking to itself (loopback, its own address) is not a network policy's business. */
static __always_inline int to_itself(struct conn_key *ck)
{
	if (ck->family == AF_INET)
		return (ck->remote[0] & 0xff) == 127 || ck->remote[0] == ck->local[0];
	if (ck->remote[0] == 0 && ck->remote[1] == 0 && ck->remote[2] == 0 && ck->remote[3] == bpf_htonl(1))
		return 1; /* ::1 */
	return ck->remote[0] == ck->local[0] && ck->remote[1] == ck->local[1] && ck->remote[2] == ck->local[2] &&
	       ck->remote[3] == ck->local[3];
}

static __always_inline int handle(struct __sk_buff *skb, int dir)
{
	__u32 zero = 0;
	void *gen = bpf_map_lookup_elem(&policy, &zero);
	if (!gen)
		return 1; /* nothing applied yet */

	struct conn_key ck = {};
	ck.cgroup = bpf_skb_cgroup_id(skb);
	struct np_key pk = {};
	pk.prefixlen = 72; /* kind, cgroup id */
	pk.data[0] = NP_POD;
	__builtin_memcpy(&pk.data[1], &ck.cgroup, 8);
	struct np_value *pod = bpf_map_lookup_elem(gen, &pk);
	if (!pod || !(pod->c & (NP_INGRESS_ISOLATED | NP_EGRESS_ISOLATED))) {
		count(ST_UNTRACKED);
		return 1; /* not a pod, or a pod no policy selects */
	}
	__u32 isolated = pod->c & (dir == DIR_INGRESS ? NP_INGRESS_ISOLATED : NP_EGRESS_ISOLATED);

	__u8 flags = 0;
	if (!parse(skb, dir, &ck, &flags)) {
		if (!isolated)
			return 1;
		count(ST_NOT_IP); /* an isolated direction fails closed */
		return 0;
	}
	if (to_itself(&ck))
		return 1;

	/*
	 * An unrestricted direction only has to remember the flows that start in it (so that their
	 * replies pass the other direction's policy): for TCP that is a SYN without ACK, the rest of
	 * its packets pass without a lookup.
	 */
	if (!isolated && ck.proto == IPPROTO_TCP && (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return 1;

	/*
	 * The other direction unrestricted: replies need no record, and what this direction's policy
	 * allows passes on the policy's verdict alone.
	 */
	if (!(pod->c & (dir == DIR_INGRESS ? NP_EGRESS_ISOLATED : NP_INGRESS_ISOLATED)) && check(gen, pod, dir, &ck)) {
		count(ck.proto == IPPROTO_TCP && (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN ? ST_CONN : ST_ALLOWED);
		return 1;
	}

	/* a connected TCP socket: its flow's record is on it */
	struct sk_conn *sc = NULL;
	int listener = 0;
	struct bpf_sock *sk = conn_socket(skb, &listener);
	if (sk) {
		sc = bpf_sk_storage_get(&sk_conns, sk, 0, 0);
		if (sc && same_key(&sc->key, &ck)) {
			if (sc->c.gen == pod->f) {
				__u32 zero = 0;
				struct np_stats *s = bpf_map_lookup_elem(&stats, &zero);
				if (s) {
					s->c[ST_CONN]++;
					s->c[ST_SOCKET]++;
				}
				return 1;
			}
			count(ST_RECHECKED);
			if (check(gen, pod, sc->c.origin, &ck)) {
				sc->c.gen = pod->f;
				return 1;
			}
			sc->key.cgroup = 0;
			report_drop(&ck, sc->c.origin == DIR_INGRESS ? pod->d : pod->e, dir, flags);
			return 0;
		}
	}

	/*
	 * What arrives at a listener is its handshakes: a SYN is a new flow, the rest (the handshake's
	 * last ACK) of a flow that started in ingress — what the ingress policy allows now, as for a
	 * recorded flow checked again. The SYN's record is for the SYN-ACK (sent by the listener)
	 * and for the new socket's first packet, which moves it onto the socket.
	 */
	if (listener && dir == DIR_INGRESS) {
		if (!check(gen, pod, dir, &ck)) {
			report_drop(&ck, pod->d, dir, flags);
			return 0;
		}
		if ((flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
			count(ST_CONN);
			return 1;
		}
		struct conn hs = { .gen = pod->f, .origin = dir };
		bpf_map_update_elem(&handshakes, &ck, &hs, BPF_ANY);
		count(ST_ALLOWED);
		return 1;
	}

	/*
	 * The flow tables, but not for the SYN of a connecting socket: its flow is a new one (a
	 * record of the tuple's earlier connection is stale).
	 */
	struct conn *c = NULL;
	if (!sk || (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		c = bpf_map_lookup_elem(FLOWS(&ck), &ck);
	if (c) {
		if (c->gen == pod->f) {
			count(ST_CONN);
			/* a listener's connection, at its socket's first packet: moved onto the socket */
			if (sk && keep(sk, sc, &ck, c->gen, c->origin))
				bpf_map_delete_elem(FLOWS(&ck), &ck);
			return 1;
		}
		/* remembered from an older generation: is its first direction still allowed? */
		count(ST_RECHECKED);
		if (check(gen, pod, c->origin, &ck)) {
			c->gen = pod->f;
			if (sk && keep(sk, sc, &ck, c->gen, c->origin))
				bpf_map_delete_elem(FLOWS(&ck), &ck);
			return 1;
		}
		bpf_map_delete_elem(FLOWS(&ck), &ck);
		report_drop(&ck, c->origin == DIR_INGRESS ? pod->d : pod->e, dir, flags);
		return 0;
	}
	if (!check(gen, pod, dir, &ck)) {
		report_drop(&ck, dir == DIR_INGRESS ? pod->d : pod->e, dir, flags);
		return 0;
	}
	/* a new flow: remember it so that its replies pass the other direction's policy */
	count(ST_ALLOWED);
	if (sk && keep(sk, sc, &ck, pod->f, dir))
		return 1;
	struct conn fresh = { .gen = pod->f, .origin = dir };
	bpf_map_update_elem(FLOWS(&ck), &ck, &fresh, BPF_ANY);
	return 1;
}

SEC("cgroup_skb/ingress")
int netpol_ingress(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

SEC("cgroup_skb/egress")
int netpol_egress(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
