// service-lb north-south: NodePort and external (LoadBalancer) IPs on tc (tcx) of the node's
// interface, IPv4, TCP and UDP. See apps/service-lb/NODEPORT.md for the data path.
//
// ingress  (nodeport_ingress):  NODE_IP:NODEPORT or EXTERNAL_IP:PORT -> one backend, picked by a
//          hash of the flow's addresses and ports (every node computes the same pick from the
//          same backend list, so no flow table is needed to stay on one backend):
//            backend on this node        DNAT to it; its replies are translated back on egress
//            elsewhere, DSR (default)    the packet unchanged, in IPIP to the backend's node
//                                        (outer NODE -> BACKEND_NODE): the inner header carries
//                                        the service address there
//            elsewhere, SNAT             client -> NODE:port from the SNAT range, DNAT to the
//                                        backend; the reply comes back here and is translated
//          IPIP to this node: decapsulated, the inner packet picks the same backend (on this
//          node) and is DNATed to it.
// egress   (nodeport_egress): a backend's reply (backend -> client) leaves with the service address as
//          its source — straight to the client, also when the client came in through another node.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_HLEN 14

#define NP_LOCAL 1 /* externalTrafficPolicy: Local (the list holds this node's backends only) */
#define NP_SNAT 2  /* reach backends on other nodes through SNAT instead of DSR */

struct frontend_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct service {
	__u32 id;
	__u16 count; /* backends at indices 0..count-1 */
	__u8 flags;
	__u8 pad;
};

struct backend_key {
	__u32 service;
	__u32 index;
};

struct backend {
	__be32 addr;
	__be32 node; /* the address of the backend's node */
	__be16 port;
	__u16 pad;
};

struct np_settings {
	__be32 node;	  /* this node's address (outer source of IPIP, SNAT source) */
	__u16 snat_first; /* SNAT source ports, host order */
	__u16 snat_count;
};

struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct nat_addr {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct snat_flow {
	__be32 client;
	__be32 service;
	__be32 backend;
	__be16 client_port;
	__be16 service_port;
	__be16 backend_port;
	__be16 node_port; /* our SNAT source port */
};

enum np_counter {
	NP_LOCAL_DNAT,
	NP_DSR_ENCAP,
	NP_DSR_DECAP,
	NP_SNAT_OUT,
	NP_SNAT_REPLY,
	NP_REPLY_REVNAT,
	NP_NO_BACKEND,
	NP_FAILED,
	NP_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct frontend_key);
	__type(value, struct service);
} np_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct backend_key);
	__type(value, struct backend);
} np_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct np_settings);
} np_settings SEC(".maps");

/* backend -> client replies of flows DNATed here: the service address they leave with */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct nat_addr);
} np_revnat SEC(".maps");

/* SNAT flows by their client side (client -> service) and by their backend side (backend -> node:port) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct snat_flow);
} np_snat_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct snat_flow);
} np_snat_back SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NP_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} np_stats SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *n = bpf_map_lookup_elem(&np_stats, &c);
	if (n)
		*n += 1;
}

struct pkt {
	__u32 l4;      /* offset of the TCP/UDP header */
	__u32 csum;    /* offset of its checksum */
	__u8 proto;
	__be32 saddr, daddr;
	__be16 sport, dport;
};

/* Parses Ethernet + IPv4 + TCP/UDP at the packet's start; 0 on success. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5)
		return -1;
	p->proto = ip->protocol;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->l4 = ETH_HLEN + ip->ihl * 4;
	if (ip->frag_off & bpf_htons(0x3fff)) /* fragments carry no ports we can trust */
		return p->proto == IPPROTO_IPIP ? 0 : -1;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return p->proto == IPPROTO_IPIP ? 0 : -1;
	__be16 *ports = data + p->l4;
	if ((void *)(ports + 2) > end)
		return -1;
	p->sport = ports[0];
	p->dport = ports[1];
	p->csum = p->l4 + (p->proto == IPPROTO_TCP ? 16 : 6);
	return 0;
}

static __always_inline int set_addr(struct __sk_buff *skb, struct pkt *p, int src, __be32 from, __be32 to)
{
	__u64 udp0 = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	if (bpf_l4_csum_replace(skb, p->csum, from, to, BPF_F_PSEUDO_HDR | udp0 | 4) ||
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), from, to, 4))
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr)),
				   &to, 4, 0);
}

static __always_inline int set_port(struct __sk_buff *skb, struct pkt *p, int src, __be16 from, __be16 to)
{
	__u64 udp0 = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	if (bpf_l4_csum_replace(skb, p->csum, from, to, udp0 | 2))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4 + (src ? 0 : 2), &to, 2, 0);
}

static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The same pick on every node: a hash of the flow (murmur3's finaliser) over the service's backends. */
static __always_inline struct backend *pick(struct service *svc, struct pkt *p)
{
	__u32 h = fmix32(p->saddr ^ fmix32(p->daddr ^ fmix32((__u32)p->sport << 16 | p->dport)));
	struct backend_key k = { .service = svc->id, .index = h % svc->count };
	return bpf_map_lookup_elem(&np_backends, &k);
}

/* DNAT to a backend on this node; its reply is translated back by nodeport_egress. */
static __always_inline int dnat_local(struct __sk_buff *skb, struct pkt *p, struct backend *b)
{
	struct flow_key rk = { .saddr = b->addr, .daddr = p->saddr, .sport = b->port, .dport = p->sport, .proto = p->proto };
	struct nat_addr orig = { .addr = p->daddr, .port = p->dport };
	if (bpf_map_update_elem(&np_revnat, &rk, &orig, BPF_ANY) || set_addr(skb, p, 0, p->daddr, b->addr) ||
	    set_port(skb, p, 0, p->dport, b->port)) {
		count(NP_FAILED);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

static __always_inline __u16 ip_checksum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < (int)sizeof(*ip) / 2; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* DSR: the packet as it came, in IPIP from this node to the backend's node. */
static __always_inline int dsr_encap(struct __sk_buff *skb, struct np_settings *cfg, struct backend *b)
{
	struct iphdr outer = {
		.version = 4,
		.ihl = 5,
		.ttl = 64,
		.protocol = IPPROTO_IPIP,
		.saddr = cfg->node,
		.daddr = b->node,
		.tot_len = bpf_htons(skb->len - ETH_HLEN + sizeof(struct iphdr)),
	};
	outer.check = ip_checksum(&outer);
	if (bpf_skb_adjust_room(skb, sizeof(outer), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0)) {
		count(NP_FAILED);
		return TC_ACT_SHOT;
	}
	count(NP_DSR_ENCAP);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

/* SNAT: client -> service becomes node:port -> backend; the port is the flow's for its life. */
static __always_inline int snat_out(struct __sk_buff *skb, struct np_settings *cfg, struct pkt *p, struct backend *b)
{
	struct flow_key ok = { .saddr = p->saddr, .daddr = p->daddr, .sport = p->sport, .dport = p->dport, .proto = p->proto };
	struct snat_flow *f = bpf_map_lookup_elem(&np_snat_out, &ok);
	struct snat_flow nf;
	if (!f || f->backend != b->addr || f->backend_port != b->port) {
		if (!cfg->snat_count)
			goto fail;
		nf = (struct snat_flow){ .client = p->saddr, .service = p->daddr, .backend = b->addr,
					 .client_port = p->sport, .service_port = p->dport, .backend_port = b->port };
		__u32 start = bpf_get_prandom_u32();
		int i;
		for (i = 0; i < 8; i++) {
			nf.node_port = bpf_htons(cfg->snat_first + (start + i) % cfg->snat_count);
			struct flow_key bk = { .saddr = b->addr, .daddr = cfg->node, .sport = b->port,
					       .dport = nf.node_port, .proto = p->proto };
			if (bpf_map_update_elem(&np_snat_back, &bk, &nf, BPF_NOEXIST) == 0)
				break;
		}
		if (i == 8 || bpf_map_update_elem(&np_snat_out, &ok, &nf, BPF_ANY))
			goto fail;
		f = &nf;
	}
	__be16 port = f->node_port;
	if (set_addr(skb, p, 1, p->saddr, cfg->node) || set_port(skb, p, 1, p->sport, port) ||
	    set_addr(skb, p, 0, p->daddr, b->addr) || set_port(skb, p, 0, p->dport, b->port))
		goto fail;
	count(NP_SNAT_OUT);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
fail:
	count(NP_FAILED);
	return TC_ACT_SHOT;
}

/* A backend's reply to a SNAT flow: back to the client, from the service address. */
static __always_inline int snat_reply(struct __sk_buff *skb, struct pkt *p, struct snat_flow *f)
{
	if (set_addr(skb, p, 1, p->saddr, f->service) || set_port(skb, p, 1, p->sport, f->service_port) ||
	    set_addr(skb, p, 0, p->daddr, f->client) || set_port(skb, p, 0, p->dport, f->client_port)) {
		count(NP_FAILED);
		return TC_ACT_SHOT;
	}
	count(NP_SNAT_REPLY);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

SEC("tcx/ingress")
int nodeport_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct np_settings *cfg = bpf_map_lookup_elem(&np_settings, &zero);
	struct pkt p = {};
	if (!cfg || !cfg->node || parse(skb, &p))
		return TC_ACT_OK;
	int decapped = 0;
	if (p.proto == IPPROTO_IPIP) {
		if (p.daddr != cfg->node || p.l4 != ETH_HLEN + sizeof(struct iphdr))
			return TC_ACT_OK;
		if (bpf_skb_adjust_room(skb, -(int)sizeof(struct iphdr), BPF_ADJ_ROOM_MAC, 0) || parse(skb, &p) ||
		    p.proto == IPPROTO_IPIP) {
			count(NP_FAILED);
			return TC_ACT_SHOT;
		}
		decapped = 1;
	}
	if (!decapped && p.daddr == cfg->node) {
		struct flow_key bk = { .saddr = p.saddr, .daddr = p.daddr, .sport = p.sport, .dport = p.dport, .proto = p.proto };
		struct snat_flow *f = bpf_map_lookup_elem(&np_snat_back, &bk);
		if (f)
			return snat_reply(skb, &p, f);
	}
	struct frontend_key fk = { .addr = p.daddr, .port = p.dport, .proto = p.proto };
	struct service *svc = bpf_map_lookup_elem(&np_frontends, &fk);
	if (!svc) {
		if (decapped)
			count(NP_FAILED);
		return decapped ? TC_ACT_SHOT : TC_ACT_OK;
	}
	struct backend *b = svc->count ? pick(svc, &p) : NULL;
	if (!b) {
		count(NP_NO_BACKEND);
		return TC_ACT_SHOT;
	}
	if (b->node == cfg->node) {
		count(decapped ? NP_DSR_DECAP : NP_LOCAL_DNAT);
		return dnat_local(skb, &p, b);
	}
	if (decapped || (svc->flags & NP_LOCAL)) { /* tunnelled here for a backend that is not here */
		count(NP_NO_BACKEND);
		return TC_ACT_SHOT;
	}
	if (svc->flags & NP_SNAT)
		return snat_out(skb, cfg, &p, b);
	return dsr_encap(skb, cfg, b);
}

SEC("tcx/egress")
int nodeport_egress(struct __sk_buff *skb)
{
	struct pkt p = {};
	if (parse(skb, &p) || p.proto == IPPROTO_IPIP)
		return TC_ACT_OK;
	struct flow_key k = { .saddr = p.saddr, .daddr = p.daddr, .sport = p.sport, .dport = p.dport, .proto = p.proto };
	struct nat_addr *orig = bpf_map_lookup_elem(&np_revnat, &k);
	if (!orig)
		return TC_ACT_OK;
	struct nat_addr o = *orig;
	if (set_addr(skb, &p, 1, p.saddr, o.addr) || set_port(skb, &p, 1, p.sport, o.port)) {
		count(NP_FAILED);
		return TC_ACT_SHOT;
	}
	count(NP_REPLY_REVNAT);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
