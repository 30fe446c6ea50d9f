// flow-monitor: per-connection flow records (TCP, UDP, ICMP) in the kernel, reported through a ring
// buffer periodically while a flow is open and once when it closes.
//
//   tp_btf sock_send_length, cgroup/sendmsg4/6
//                             UDP / ICMP sent, per send call: where to (the call's address, from
//                             the sendmsg hooks, or the connected peer), the socket and the size;
//                             an ICMP socket's sends join the flow its first reply names
//   tp_btf skb_copy_datagram_iovec, cgroup/recvmsg4/6, tp_btf sock_recv_length
//                             UDP / ICMP received, per receive call: the packet (ICMP, raw, a UDP
//                             skb in fragments) or the sender (UDP), then the socket and the size.
//                             Where this kernel lacks the send / receive tracepoints, the cgroup's
//                             egress / ingress hooks count every packet instead (kbpf.yaml: groups
//                             datagram_tx, datagram_rx): each costs every TCP segment ~2-5% of the
//                             connection rate with nothing on it, and TCP needs nothing from them
//   a datagram socket is tracked when its cgroup is the instance's or below (kbpf_btf_sock_in_cgroup:
//                             the tracepoints see every socket of the node), marked by its storage
//   tp_btf inet_sock_set_state TCP: a flow starts when a socket below the cgroup enters SYN_SENT
//                             (the connecting end) or ESTABLISHED from SYN_RECV (an accepted one);
//                             the change to TCP_CLOSE writes its last report with the socket's own
//                             counters (bytes, segments, RTT, retransmits) and the TCP flags its
//                             states imply
//   tp_btf sock_send_length, sock_recv_length (TCP)
//                             a periodic report is checked each time a socket's bytes sent or read
//                             cross a multiple of 16 KiB (no map access between)
//   tp_btf tcp_retransmit_skb retransmits (also read from the socket at reports)
//   tp_btf kfree_skb          drops of a flow's packets, with the kernel's reason
//   cgroup/sock_release       connected UDP / ICMP sockets: the flow's last report; so too for a
//                             TCP socket in a sockmap (below)
//   the same two tracepoints, for a TCP socket in a sockmap (mesh-accel's sk_msg moves its bytes socket
//                             to socket, as no segments): its application's bytes per call; its
//                             last report waits for its release, when every read is done
//   mesh-accel's orig_by_cookie / orig6_by_cookie (shared): a connection it sent to a sidecar is
//                             REDIRECTED, with where the application was connecting
//
// No sock_ops program: the kernel calls one about 13 times a connection (connect, RTO and window
// init, ECN, established, and each state change), and that dispatch alone cost ~2% of the
// connection rate; the BTF tracepoint of state changes runs for every TCP socket of the node but
// costs a fraction of it, and does nothing but a switch unless the socket closes.
// TCP has no packet hook at all (the dispatch of a cgroup's egress hook alone cost ~2% of the
// connection rate and ~3% of the request rate) and no map access per packet: the
// kernel's socket keeps the counters (tcp_sock: segs_in/out, bytes_acked/received/sent,
// total_retrans, srtt, rtt_min), read at each report, and the flags seen follow from how far the
// connection got (its states, its error at close, SOCK_DONE for a FIN received). IP bytes of TCP
// are estimated: payload + segments x (IP + TCP header length).
// A TCP flow is keyed by its socket's address (a socket cookie would have to be made for every
// connection; the tracepoints have the socket itself); what users see as its id is the socket's
// cookie when service-lb made one, else a random number. UDP / ICMP flows are keyed by the
// socket's cookie plus the peer (their sockets may talk to many), so the counters of every hook
// join to the same record. A connection whose two ends are both below the cgroup is reported once,
// by the end that connected: the connecting end writes a 64-bit tag of its tuple into a slot of
// local_conns (groups of 4 slots chosen by the tag, no lock or allocation), the accepting end finds
// it there and is not tracked.
// The table of flows is an LRU (`flows`, size it with --map-size flows=N): an insert that pushes a
// flow out is counted in flow_stats[FS_EVICTED] (by the map's element count, kernel 6.6+).
// The cgroup check is made once a connection (~0.2 µs through probe reads; kbpf_btf_sock_in_cgroup
// loads the socket's cgroup directly): where its flow starts; an accepted socket is looked for among
// the local peers first.
// Reports wake the agent only now and then (wake_flag: when 1 MiB waits, looked at every 32nd
// report of a CPU, or when the CPU's last wake-up is 250 ms old); the agent reads the ring every
// 50 ms besides (kbpf.yaml poll_ms). A wake-up per report cost the connecting CPU more than the
// report. (A BPF timer that woke it every 2 ms was tried earlier: its map is held by no file, so
// the kernel refuses bpf_timer_init; pinned, it woke the agent about nine times as often for no
// gain.)
// Service fields: when service-lb runs, share its `svc_origin` map (run --share-map
// svc_origin=INSTANCE); the translation it recorded under the socket's cookie is copied in (not
// looked up while the map is empty).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include <kbpf.h>
#include <kbpf_cgroup.h> /* kbpf_btf_sock_in_cgroup: the tracepoints keep to the instance's cgroup */

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_STATE_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_CLOSING 11
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_ECE 0x40
#define TH_CWR 0x80
#define EPIPE 32
#define ECONNABORTED 103
#define ECONNRESET 104
#define ECONNREFUSED 111
#define SOCK_DONE_BIT 1 /* enum sock_flags: SOCK_DONE, set by tcp_fin() when the peer's FIN arrives */
#define TCP_ECN_OK 1
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
/* struct flow.sock_wait: a TCP socket in a sockmap, whose application's bytes are counted per call */
#define SOCK_MARKED 1     /* its storage (flow_socks) names the flow: its release closes it */
#define SOCK_TCP_CLOSED 2 /* the connection closed; the last report waits for the release */
#define SOCK_RELEASED 4   /* released first: the connection's close reports */
/* a TCP flow's periodic report is checked each time its application's bytes sent or received
 * cross a multiple of 2^REPORT_CHECK_SHIFT */
#define REPORT_CHECK_SHIFT 14
/* where the egress hook runs instead (no send tracepoint): checked every 2^EGRESS_CHECK_SHIFT segments sent */
#define EGRESS_CHECK_SHIFT 4

/* config: how often an open flow with traffic is reported again (ms) */
const volatile __u32 report_interval_ms = 5000;
/* config: 1 = UDP and ICMP flows too */
const volatile __u8 datagram_flows = 1;


#include "flow_report.h"

enum flow_stat {
	FS_CREATED = 0, /* flows started */
	FS_CLOSED = 1,  /* flows reported closed */
	FS_EVICTED = 2, /* flows pushed out of the LRU by an insert */
	FS_REPORTS = 3, /* reports written (open and closed) */
	FS_LOCAL_PEER = 4, /* accepted connections not tracked: their other end is tracked here */
	FS_DROPS = 5,   /* drops of tracked flows' packets */
	FS_WAKEUPS = 6, /* reports that woke the agent (the rest wait for its next look at the ring) */
	FS_WOKEN_NS = 7, /* not a count: when this CPU last woke the agent (bpf_ktime_get_ns) */
	FS_NR = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

/* service-lb's translations; shared with its instance when it runs (empty otherwise) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, struct svc_origin);
} svc_origin SEC(".maps");

/* mesh-accel's original destinations; shared with its instance when it runs (run --share-map
 * orig_by_cookie=MESH --share-map orig6_by_cookie=MESH; empty otherwise). The definitions are
 * mesh-accel's, so that its pinned maps can be used in their place. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct orig_dst);
} orig_by_cookie SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct orig_dst6);
} orig6_by_cookie SEC(".maps");

struct conn_tuple {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
};

/* connections made by tracked sockets, as 64-bit tags of their tuples in a group of 4 slots chosen
 * by the tag: the accepting end of one finds its tag there at its first segment sent and is not
 * tracked again (and clears the slot). A connection's tag takes an empty slot of its group, else
 * one the tag picks (connections to the world are never cleared): five local connections made in
 * one group (of 4,096) before the first of them sends from its accepting end could have it
 * reported by both. A tag, not the tuple (36 bytes): a group is 32 bytes, one or two cache lines
 * (the tuples' buckets were three, most of this check's cost). */
#define LOCAL_SLOTS 16384
#define LOCAL_WAYS 4
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LOCAL_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} local_conns SEC(".maps");

/* Sockets whose release closes a flow: UDP / ICMP sockets below the cgroup (marked when made, or at
 * their first datagram sent: the flow they last sent or received on, and their cgroup), and TCP
 * sockets in a sockmap whose application's bytes are counted per call (count_sock_bytes: their
 * flow, whose last report waits for the release, when every read is done) */
struct flow_sock {
	struct flow_key last;
	__u64 cgroup_id;
	/* an ICMP socket's messages sent before its flow is known (its first reply names the peer) */
	__u32 pending_packets;
	__u32 pending_bytes;
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct flow_sock);
} flow_socks SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_NR);
	__type(key, __u32);
	__type(value, __u64);
} flow_stats SEC(".maps");

#define FLOW_RING_BYTES (16 * 1024 * 1024)
KBPF_RINGBUF(flow_events, FLOW_RING_BYTES, struct flow_report);

/* adds n to this CPU's count i; returns the count before */
static __always_inline __u64 stat_add(__u32 i, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&flow_stats, &i);
	if (!v)
		return 0;
	__u64 before = *v;
	*v = before + n;
	return before;
}

/* Wake-ups. A ring wakes its reader for each record while the reader keeps up: at tens of thousands
 * of flows a second that wake-up (and the agent's read of one record at a time) cost the connecting
 * CPU ~4% of the connection rate, more than writing the record (docs/benchmarks.md). The agent reads
 * flow_events every poll_ms (kbpf.yaml) whatever happens, so a report wakes it only when
 * WAKE_BYTES wait in the ring (the agent is behind a burst: it must not let the ring fill), or
 * when this CPU last woke it WAKE_INTERVAL_NS ago or more: an agent that unmapped the ring after
 * 2 s of quiet watches its fd only, and the first report after the quiet must wake it. */
#define WAKE_BYTES (1024 * 1024)
#define WAKE_INTERVAL_NS (250 * 1000000ULL)
/* what waits in the ring is looked at every 2^WAKE_QUERY_SHIFT reports of a CPU: the query reads
 * the consumer's position, which the agent writes from another CPU (a cache miss each time); a
 * burst is then seen at most 32 reports (~6 KiB) late, against 1 MiB */
#define WAKE_QUERY_SHIFT 5

static __always_inline __u64 wake_flag(__u64 now, __u64 reports)
{
	if ((reports & ((1 << WAKE_QUERY_SHIFT) - 1)) == 0 &&
	    bpf_ringbuf_query(&flow_events, BPF_RB_AVAIL_DATA) >= WAKE_BYTES)
		return BPF_RB_FORCE_WAKEUP;
	__u32 i = FS_WOKEN_NS;
	__u64 *woken = bpf_map_lookup_elem(&flow_stats, &i);
	if (woken && now - *woken < WAKE_INTERVAL_NS)
		return BPF_RB_NO_WAKEUP;
	if (woken)
		*woken = now;
	stat_add(FS_WAKEUPS, 1);
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void report(const struct flow_key *k, struct flow *f, __u8 closed, __u64 now)
{
	struct flow_report *r = kbpf_reserve(flow_events, sizeof(*r));
	if (!r)
		return;
	fill_report(r, f->id, f, closed, now);
	bpf_ringbuf_submit(r, wake_flag(now, stat_add(FS_REPORTS, 1)));
	if (closed)
		stat_add(FS_CLOSED, 1);
}

/* a flow's last report, and its end in the LRU */
static __always_inline void close_flow(const struct flow_key *k, struct flow *f)
{
	report(k, f, 1, bpf_ktime_get_ns());
	bpf_map_delete_elem(&flows, k);
}

static __always_inline void report_if_due(const struct flow_key *k, struct flow *f, __u64 now)
{
	if (now - f->last_report_ns < (__u64)report_interval_ms * 1000000ULL)
		return;
	f->last_report_ns = now;
	report(k, f, 0, now);
}

/* IPv4 (network order) as ::ffff:a.b.c.d */
static __always_inline void mapped4(__u8 *out, __u32 ip4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip4, 4);
}

/* the elements of a map, summed over CPUs (kernel 6.6+; hash maps keep the count) */
extern s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym __weak;

/* 1 for a map known to be empty (its element count, kernel 6.6+), which is then not looked up */
static __always_inline int map_empty(const void *map)
{
	return bpf_ksym_exists(bpf_map_sum_elem_count) && bpf_map_sum_elem_count((const struct bpf_map *)map) <= 0;
}

static __always_inline void copy_svc(struct flow *f, __u64 cookie)
{
	/* an empty svc_origin (service-lb not running, or not shared) is not looked up: a lookup in
	 * its 262,144 buckets is a cache and TLB miss, ~0.5 µs a connection on this VM */
	if (map_empty(&svc_origin))
		return;
	struct svc_origin *o = bpf_map_lookup_elem(&svc_origin, &cookie);
	if (!o)
		return;
	__builtin_memcpy(&f->svc, o, sizeof(*o));
	f->has_svc = 1;
}

/* A connection mesh-accel's connect hook sent elsewhere (to the pod's sidecar, or a peer's inbound
 * port): where the application was connecting, remembered under the socket's cookie. Not looked
 * up while mesh-accel's maps are empty (not running, or not shared). */
static __always_inline void copy_orig(struct flow *f, __u64 cookie, int v6)
{
	if (v6) {
		if (map_empty(&orig6_by_cookie))
			return;
		struct orig_dst6 *o = bpf_map_lookup_elem(&orig6_by_cookie, &cookie);
		if (!o)
			return;
		__builtin_memcpy(f->orig_addr, o->ip, 16);
		f->orig_port = o->port;
	} else {
		if (map_empty(&orig_by_cookie))
			return;
		struct orig_dst *o = bpf_map_lookup_elem(&orig_by_cookie, &cookie);
		if (!o)
			return;
		mapped4(f->orig_addr, o->ip);
		f->orig_port = o->port;
	}
	f->redirected = 1;
}

/* A new flow into the LRU. The flows an insert pushed out are counted: the table's element count
 * (kernel 6.6+) grew by less than one (the LRU frees several at a time when it has to). A flow
 * closed on another CPU during the insert counts as pushed out too (a window of ~0.2 µs). An LRU
 * pushes flows out only when it is about full (its free nodes are gone), so below half full the
 * count after the insert is not taken (each count is ~0.1 µs a connection). */
static __always_inline int insert_flow(const struct flow_key *k, const struct flow *f, __u64 flags)
{
	int counted = bpf_ksym_exists(bpf_map_sum_elem_count);
	s64 before = counted ? bpf_map_sum_elem_count((const struct bpf_map *)&flows) : 0;
	int half_full = counted && before >= (s64)(((const struct bpf_map *)&flows)->max_entries / 2);
	if (bpf_map_update_elem(&flows, k, f, flags) != 0)
		return -1;
	stat_add(FS_CREATED, 1);
	if (half_full) {
		s64 pushed = before + 1 - bpf_map_sum_elem_count((const struct bpf_map *)&flows);
		if (pushed > 0)
			stat_add(FS_EVICTED, pushed);
	}
	return 0;
}

static __always_inline void tuple_of(struct conn_tuple *t, const struct flow *f, int reversed)
{
	__builtin_memcpy(t->laddr, reversed ? f->raddr : f->laddr, 16);
	__builtin_memcpy(t->raddr, reversed ? f->laddr : f->raddr, 16);
	t->lport = reversed ? f->rport : f->lport;
	t->rport = reversed ? f->lport : f->rport;
}

/* a connection's tuple as 64 bits, never 0 (an empty slot) */
static __always_inline __u64 tuple_tag(const struct conn_tuple *t)
{
	const __u32 *w = (const __u32 *)t;
	__u64 h = 0x9e3779b97f4a7c15ULL;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*t) / 4); i++) {
		h = (h ^ w[i]) * 0xff51afd7ed558ccdULL;
		h ^= h >> 29;
	}
	return h | 1;
}

/* The TCP flags the flow has seen each way, from how far it got: `state` is the socket's state (at
 * close: the one before TCP_CLOSE). Exact for SYN, ACK, FIN (sent: a state past the FIN; received:
 * SOCK_DONE, which only tcp_fin() sets) and RST received (the error tcp_reset() gives); RST sent
 * when a synchronized connection went straight to TCP_CLOSE without an error of its own (an
 * abort: close with unread data, SO_LINGER 0, too many orphans — the kernel resets those); PSH:
 * the socket sent / received data segments; ECE and CWR: ECN negotiated (the handshake's). */
static __always_inline void tcp_flags(struct flow *f, const struct tcp_sock *tp, __u32 state, int closing)
{
	const struct sock *sk = &tp->inet_conn.icsk_inet.sk;
	__u8 tx = TH_SYN, rx = 0;
	int opened = !f->active || state != TCP_SYN_SENT;
	if (opened) {
		tx |= TH_ACK;
		rx |= TH_SYN | TH_ACK;
	}
	if (state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING || state == TCP_LAST_ACK ||
	    state == TCP_TIME_WAIT)
		tx |= TH_FIN;
	if (sk->__sk_common.skc_flags & (1UL << SOCK_DONE_BIT))
		rx |= TH_FIN;
	if (tp->data_segs_out)
		tx |= TH_PSH;
	if (tp->data_segs_in)
		rx |= TH_PSH;
	if (tp->ecn_flags & TCP_ECN_OK) {
		tx |= f->active ? TH_ECE | TH_CWR : TH_ECE;
		rx |= f->active ? TH_ECE : TH_ECE | TH_CWR;
	}
	if (closing) {
		int err = sk->sk_err;
		if (err == ECONNREFUSED || err == ECONNRESET || err == EPIPE)
			rx |= TH_RST | TH_ACK; /* a RST accepted in SYN_SENT carries an ACK */
		else if ((err == 0 || err == ECONNABORTED) &&
			 (state == TCP_ESTABLISHED || state == TCP_SYN_RECV || state == TCP_FIN_WAIT1 ||
			  state == TCP_CLOSE_WAIT))
			tx |= TH_RST;
	}
	f->flags_tx |= tx;
	f->flags_rx |= rx;
}

/* A socket in a sockmap: what its application sent / received per call (sk_msg moved those bytes
 * socket to socket, which the socket's counters miss) as its bytes, in the socket's sequence space
 * (the SYN of a connecting end, a FIN each way), which the collector takes off again. */
static __always_inline void fold_sock_bytes(struct flow *f)
{
	if (f->sock_bytes_tx)
		f->bytes_tx = f->sock_bytes_tx + (f->active ? 1 : 0) + (f->flags_tx & TH_FIN ? 1 : 0);
	if (f->sock_bytes_rx)
		f->bytes_rx = f->sock_bytes_rx + (f->flags_rx & TH_FIN ? 1 : 0);
}

/* A TCP flow's counters from its socket, for a report: payload bytes acknowledged / received,
 * segments each way (GSO counted as on the wire, retransmits included), IP bytes estimated as
 * payload sent / received + segments x (IP header + the connection's TCP header length), RTT,
 * retransmits, state and flags. */
static __always_inline void tcp_counters(struct flow *f, const struct tcp_sock *tp, __u32 state, int closing)
{
	/* the connecting end's port was chosen after its flow started (inet_sport: the bound port,
	 * skc_num, is 0 again by the time the close is traced) */
	__u16 sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	if (sport)
		f->lport = sport;
	f->bytes_tx = tp->bytes_acked;
	f->bytes_rx = tp->bytes_received;
	__u32 segs_out = tp->segs_out, segs_in = tp->segs_in;
	f->packets_tx = segs_out;
	f->packets_rx = segs_in;
	/* IPv4 (also on an IPv6 socket, as ::ffff:a.b.c.d) or IPv6 */
	__u32 hdr = (f->raddr[10] == 0xff && f->raddr[11] == 0xff && f->raddr[0] == 0 ? 20 : 40) + tp->tcp_header_len;
	f->ip_bytes_tx = tp->bytes_sent + (__u64)segs_out * hdr;
	f->ip_bytes_rx = tp->bytes_received + (__u64)segs_in * hdr;
	__u32 srtt = tp->srtt_us >> 3;
	__u32 minrtt = tp->rtt_min.s[0].v;
	if (srtt)
		f->srtt_us = srtt;
	if (minrtt && minrtt != ~0U)
		f->min_rtt_us = minrtt;
	if (tp->total_retrans > f->retransmits)
		f->retransmits = tp->total_retrans;
	f->tcp_state = closing ? TCP_STATE_CLOSE : state;
	tcp_flags(f, tp, state, closing);
	fold_sock_bytes(f);
}

/* an open TCP flow's periodic report, when it is due */
static __always_inline void tcp_report_if_due(const struct flow_key *k, struct flow *f, const struct tcp_sock *tp,
					      __u32 state, __u64 now)
{
	if (now - f->last_report_ns < (__u64)report_interval_ms * 1000000ULL)
		return;
	tcp_counters(f, tp, state, 0);
	f->last_report_ns = now;
	report(k, f, 0, now);
}

/* ---- packets ---------------------------------------------------------------------------- */

struct pkt {
	__u8 proto;
	__u8 family;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 sport; /* host order; ICMP echo: the id */
	__u16 dport;
	__u32 l4_off;
	__u32 ip_len; /* the IP header's length of the packet */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* A datagram being received, by thread, until the receive call returns (sock_recv_length, which
 * has the socket and the size): the packet, when it was copied through skb_copy_datagram_iovec
 * (ICMP, raw sockets, a UDP skb in fragments); else the sender's address, from cgroup/recvmsg4/6
 * (UDP, when the caller asks for the address; a linear UDP skb is copied without a tracepoint);
 * else nothing, and the peer of a connected socket is its own. */
#define RX_PACKET 1
#define RX_PEER 2
#define TX_DEST 3 /* a datagram sent: where to (p.daddr, p.dport), from (p.saddr, when the caller chose) */
struct dgram_rx {
	struct pkt p; /* RX_PEER: only the sender (saddr, sport), family and protocol */
	__u32 payload;
	__u8 kind;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct dgram_rx);
} dgram_call SEC(".maps");

/* Where a packet's bytes are read from: a cgroup_skb context (bpf_skb_load_bytes, offsets from
 * its network header), or a kernel sk_buff (tracepoints: its network header in its head). */
struct pkt_at {
	struct __sk_buff *ctx;
	const unsigned char *net; /* kernel: head + network_header */
};

static __always_inline int pkt_load(const struct pkt_at *at, __u32 off, void *to, __u32 len)
{
	if (at->ctx)
		return bpf_skb_load_bytes(at->ctx, off, to, len);
	return bpf_probe_read_kernel(to, len, at->net + off);
}

/* the packet's addresses, protocol, ports (ICMP: type, code, echo id) and IP length */
static __always_inline int parse(const struct pkt_at *at, __u16 eth_proto, struct pkt *p)
{
	if (eth_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (pkt_load(at, 0, &ip, sizeof(ip)) < 0)
			return -1;
		p->family = AF_INET;
		p->proto = ip.protocol;
		p->l4_off = ip.ihl * 4;
		p->ip_len = bpf_ntohs(ip.tot_len);
		mapped4(p->saddr, ip.saddr);
		mapped4(p->daddr, ip.daddr);
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (pkt_load(at, 0, &ip6, sizeof(ip6)) < 0)
			return -1;
		p->family = AF_INET6;
		p->proto = ip6.nexthdr;
		p->l4_off = sizeof(ip6);
		p->ip_len = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
	} else {
		return -1;
	}
	if (p->proto == PROTO_TCP) {
		__u8 hdr[14];
		if (pkt_load(at, p->l4_off, hdr, sizeof(hdr)) < 0)
			return -1;
		p->sport = (hdr[0] << 8) | hdr[1];
		p->dport = (hdr[2] << 8) | hdr[3];
		p->tcp_flags = hdr[13];
	} else if (p->proto == PROTO_UDP) {
		__u8 hdr[4];
		if (pkt_load(at, p->l4_off, hdr, sizeof(hdr)) < 0)
			return -1;
		p->sport = (hdr[0] << 8) | hdr[1];
		p->dport = (hdr[2] << 8) | hdr[3];
	} else if (p->proto == PROTO_ICMP || p->proto == PROTO_ICMPV6) {
		__u8 hdr[6];
		if (pkt_load(at, p->l4_off, hdr, sizeof(hdr)) < 0)
			return -1;
		p->icmp_type = hdr[0];
		p->icmp_code = hdr[1];
		p->sport = (hdr[4] << 8) | hdr[5];
		p->dport = p->sport;
	} else {
		return -1;
	}
	return 0;
}

/* :: or ::ffff:0.0.0.0 */
static __always_inline int unspecified(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == 0 && w[1] == 0 && (w[2] == 0 || w[2] == bpf_htonl(0xffff)) && w[3] == 0;
}

/* payload bytes of a datagram: the IP packet less the IP header (and UDP's) */
static __always_inline __u64 dgram_payload(const struct pkt *p, __u32 ip_len)
{
	__u32 hdr = p->l4_off + (p->proto == PROTO_UDP ? 8 : 0);
	return ip_len > hdr ? ip_len - hdr : 0;
}

/* A datagram's flow, when there is one (k: the socket's cookie and protocol; the peer is filled in) */
static __always_inline struct flow *datagram_flow(const struct pkt *p, struct flow_key *k, int egress)
{
	__builtin_memcpy(k->raddr, egress ? p->daddr : p->saddr, 16);
	k->rport = egress ? p->dport : p->sport;
	return bpf_map_lookup_elem(&flows, k);
}

/* A datagram's new flow under k (datagram_flow found none), with ds (the socket's storage)
 * keeping its key for the socket's release. */
static __always_inline struct flow *new_datagram_flow(const struct pkt *p, const struct flow_key *k, int egress,
						      __u64 now, __u64 cgroup_id, struct flow_sock *ds)
{
	struct flow n = {};
	n.start_ns = now;
	n.last_report_ns = now;
	n.family = p->family;
	n.proto = p->proto;
	n.active = egress;
	__builtin_memcpy(n.laddr, egress ? p->saddr : p->daddr, 16);
	__builtin_memcpy(n.raddr, k->raddr, 16);
	n.lport = egress ? p->sport : p->dport;
	n.rport = k->rport;
	n.icmp_type = p->icmp_type;
	n.icmp_code = p->icmp_code;
	n.cgroup_id = cgroup_id;
	n.id = k->cookie;
	if (!egress && ds && ds->pending_packets) {
		/* an ICMP socket that sent first (its sends name no peer): they were its flow's start */
		n.active = 1;
		n.packets_tx = ds->pending_packets;
		n.bytes_tx = ds->pending_bytes;
		n.ip_bytes_tx = ds->pending_bytes + (__u64)ds->pending_packets * (p->family == AF_INET ? 20 : 40);
		if (p->icmp_type == ICMP_ECHOREPLY || p->icmp_type == ICMPV6_ECHO_REPLY)
			n.icmp_type = p->icmp_type == ICMP_ECHOREPLY ? ICMP_ECHO : ICMPV6_ECHO_REQUEST;
		ds->pending_packets = 0;
		ds->pending_bytes = 0;
	}
	copy_svc(&n, k->cookie);
	insert_flow(k, &n, BPF_NOEXIST); /* another CPU's first datagram may have made it already */
	if (ds)
		__builtin_memcpy(&ds->last, k, sizeof(*k));
	return bpf_map_lookup_elem(&flows, k);
}

/* one datagram into its flow's counters: payload and IP bytes, packets (GSO: as on the wire) */
static __always_inline void count_datagram(struct flow *f, int egress, __u64 payload, __u64 ip_bytes, __u32 segs)
{
	if (egress) {
		__sync_fetch_and_add(&f->bytes_tx, payload);
		__sync_fetch_and_add(&f->packets_tx, segs);
		__sync_fetch_and_add(&f->ip_bytes_tx, ip_bytes);
	} else {
		__sync_fetch_and_add(&f->bytes_rx, payload);
		__sync_fetch_and_add(&f->packets_rx, segs);
		__sync_fetch_and_add(&f->ip_bytes_rx, ip_bytes);
	}
}

/* A connection through local_conns: its connecting end leaves its tuple's tag for the accepting
 * end (in an empty slot of the tag's group, else the one the tag picks); 1 for an accepting end
 * that finds it there (both ends are below the cgroup: the connecting end's flow is the
 * connection's), which clears it. */
static __always_inline int local_peer(const struct flow *f, __u8 active)
{
	struct conn_tuple t = {};
	tuple_of(&t, f, !active);
	__u64 tag = tuple_tag(&t);
	__u32 first = (__u32)(tag >> 32) & (LOCAL_SLOTS - LOCAL_WAYS);
	__u64 *slot[LOCAL_WAYS];
#pragma unroll
	for (int i = 0; i < LOCAL_WAYS; i++) {
		__u32 k = first + i;
		slot[i] = bpf_map_lookup_elem(&local_conns, &k);
		if (!slot[i])
			return 0;
	}
	if (active) {
		int w = (tag >> 8) & (LOCAL_WAYS - 1);
#pragma unroll
		for (int i = LOCAL_WAYS - 1; i >= 0; i--)
			if (*slot[i] == 0)
				w = i;
#pragma unroll
		for (int i = 0; i < LOCAL_WAYS; i++)
			if (i == w)
				*slot[i] = tag;
		return 0;
	}
#pragma unroll
	for (int i = 0; i < LOCAL_WAYS; i++) {
		if (*slot[i] == tag) {
			*slot[i] = 0;
			stat_add(FS_LOCAL_PEER, 1);
			return 1;
		}
	}
	return 0;
}

/* the socket's cgroup (v2), as bpf_skb_cgroup_id gives it for its packets (an accepted socket has
 * its listener's) */
static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	const struct cgroup *cg = sk->sk_cgrp_data.cgroup; /* a BTF pointer: read directly */
	return cg ? cg->kn->id : 0;
}

/* the socket's addresses and ports into f */
static __always_inline int sock_tuple(struct flow *f, const struct sock *sk)
{
	const struct sock_common *c = &sk->__sk_common;
	f->family = c->skc_family;
	if (c->skc_family == AF_INET) {
		mapped4(f->laddr, c->skc_rcv_saddr);
		mapped4(f->raddr, c->skc_daddr);
	} else if (c->skc_family == AF_INET6) {
		__builtin_memcpy(f->laddr, &c->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(f->raddr, &c->skc_v6_daddr, 16);
		/* a dual-stack socket talking IPv4 (::ffff:a.b.c.d) sends IPv4 packets */
		const __u32 *r = (const __u32 *)f->raddr;
		if (r[0] == 0 && r[1] == 0 && r[2] == bpf_htonl(0xffff))
			f->family = AF_INET;
	} else {
		return -1;
	}
	f->lport = c->skc_num;                /* host order */
	f->rport = bpf_ntohs(c->skc_dport);   /* network order */
	return 0;
}

/* A TCP flow starts when its socket enters SYN_SENT (the connecting end: a refused or dropped
 * connection is a flow too; its local port is chosen after this, and read at each report) or,
 * for an accepted socket, ESTABLISHED (the handshake before was the request socket's): `f`
 * (zeroed, its tuple from sock_tuple) into the LRU. The caller found the socket below the cgroup,
 * and an accepted one's other end not tracked. */
static __always_inline void start_tcp_flow(const struct sock *sk, __u8 active, struct flow *f)
{
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	/* a cookie only if somebody made one (service-lb, for its translation) */
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	__u64 now = bpf_ktime_get_ns();
	/* below 2^53 (21 random bits over the clock's low 32): a JSON number, not a BigInt made and
	 * printed as a string for each report in the agent (and parsed again in each reader) */
	f->id = cookie ? cookie : ((__u64)(bpf_get_prandom_u32() & 0x1fffff) << 32 | (__u32)now);
	f->start_ns = now;
	f->last_report_ns = now;
	f->proto = PROTO_TCP;
	f->active = active;
	f->tcp_state = active ? TCP_SYN_SENT : TCP_ESTABLISHED;
	f->cgroup_id = sock_cgroup_id(sk);
	if (active && cookie) {
		copy_svc(f, cookie); /* service-lb translated the connecting socket */
		/* or mesh-accel redirected it: a v4-mapped socket's original is in the IPv4 map */
		copy_orig(f, cookie, sk->__sk_common.skc_family == AF_INET6 && f->family != AF_INET);
	}
	insert_flow(&k, f, BPF_ANY); /* a socket at this address before was closed */
}

static __always_inline void account(struct __sk_buff *skb, int egress)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return;
	if (sk->protocol == PROTO_TCP) {
		/* (a kernel without the send and receive tracepoints, where this program runs) every
		 * 16th segment sent checks whether the flow's periodic report is due */
		if (!egress)
			return;
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		if (!tp)
			return;
		__u32 after = tp->segs_out;
		__u32 before = after - (skb->gso_segs ? skb->gso_segs : 1);
		if ((before >> EGRESS_CHECK_SHIFT) == (after >> EGRESS_CHECK_SHIFT))
			return;
		struct flow_key k = {.cookie = (__u64)tp, .proto = PROTO_TCP};
		struct flow *f = bpf_map_lookup_elem(&flows, &k);
		if (f)
			tcp_report_if_due(&k, f, tp, sk->state, bpf_ktime_get_ns());
		return;
	}
	if (!datagram_flows)
		return;
	struct pkt_at at = {.ctx = skb};
	struct pkt p = {};
	if (parse(&at, skb->protocol, &p) < 0 || p.proto == PROTO_TCP)
		return;
	__u64 now = bpf_ktime_get_ns();
	struct flow_key k = {.cookie = bpf_get_socket_cookie(skb), .proto = p.proto};
	struct flow *f = datagram_flow(&p, &k, egress);
	if (!f) {
		/* the socket is marked (a socket made before flow-monitor started, at its first
		 * datagram), with its cgroup, when it starts a flow: not for every datagram */
		struct flow_sock *ds = bpf_sk_storage_get(&flow_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		__u64 cgroup_id = bpf_skb_cgroup_id(skb);
		if (ds && !ds->cgroup_id)
			ds->cgroup_id = cgroup_id;
		f = new_datagram_flow(&p, &k, egress, now, cgroup_id, ds);
		if (!f)
			return;
	}
	/* a flow a wildcard-bound socket received first has its local address from its first send */
	if (egress && unspecified(f->laddr))
		__builtin_memcpy(f->laddr, p.saddr, 16);
	count_datagram(f, egress, dgram_payload(&p, skb->len), skb->len, skb->gso_segs ? skb->gso_segs : 1);
	report_if_due(&k, f, now);
}

SEC("cgroup_skb/egress")
int flow_egress(struct __sk_buff *skb)
{
	account(skb, 1);
	return 1;
}

/* Where this kernel has the receive tracepoints below, this program is not loaded: the ingress
 * hook of a cgroup costs every TCP segment received ~5% of the connection rate even with nothing
 * on it (docs/benchmarks.md), and TCP needs nothing from it. */
SEC("cgroup_skb/ingress")
int flow_ingress(struct __sk_buff *skb)
{
	account(skb, 0);
	return 1;
}

/* ---- datagrams received (tracepoints: every socket of the node; ours by their storage) ---- */

/* a datagram copied to a receiver: its addresses and sizes, kept for the end of the receive call
 * (the socket is not known here: a UDP skb on the queue has no owner). TCP skbs have their
 * socket, and are left at once. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(flow_dgram_copy, const struct sk_buff *skb, int len)
{
	const struct sock *owner = skb->sk;
	if ((owner && owner->sk_protocol == PROTO_TCP) || !datagram_flows)
		return 0;
	struct pkt_at at = {.net = skb->head + skb->network_header};
	struct pkt p = {};
	if (parse(&at, skb->protocol, &p) < 0 || p.proto == PROTO_TCP)
		return 0;
	struct dgram_rx rx = {.p = p, .payload = dgram_payload(&p, p.ip_len), .kind = RX_PACKET};
	__u64 thread = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&dgram_call, &thread, &rx, BPF_ANY);
	return 0;
}

#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000

/* the address a sendmsg / recvmsg hook's call names (IPv4 as ::ffff:a.b.c.d) */
static __always_inline void user_addr(const struct bpf_sock_addr *ctx, int v6, __u8 *out)
{
	if (v6) {
		__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
		__builtin_memcpy(out, a, 16);
	} else {
		mapped4(out, ctx->user_ip4);
	}
}

/* the sender of a UDP datagram received by a process below the cgroup, when the caller asks */
static __always_inline void dgram_sender(struct bpf_sock_addr *ctx, int v6)
{
	if (!datagram_flows)
		return;
	struct dgram_rx rx = {.p = {.proto = PROTO_UDP, .family = v6 ? AF_INET6 : AF_INET}, .kind = RX_PEER};
	user_addr(ctx, v6, rx.p.saddr);
	rx.p.sport = bpf_ntohs(ctx->user_port);
	__u64 thread = bpf_get_current_pid_tgid();
	/* a packet copied in this call already says more */
	bpf_map_update_elem(&dgram_call, &thread, &rx, BPF_NOEXIST);
}

SEC("cgroup/recvmsg4")
int flow_recvmsg4(struct bpf_sock_addr *ctx)
{
	dgram_sender(ctx, 0);
	return 1;
}

SEC("cgroup/recvmsg6")
int flow_recvmsg6(struct bpf_sock_addr *ctx)
{
	dgram_sender(ctx, 1);
	return 1;
}


/* The storage of a UDP / ICMP socket below the cgroup (made at its first datagram; its cgroup),
 * or 0 for a socket of the node outside it. */
static __always_inline struct flow_sock *dgram_sock(struct sock *sk)
{
	struct flow_sock *ds = bpf_sk_storage_get(&flow_socks, sk, 0, 0);
	if (ds || !kbpf_btf_sock_in_cgroup(sk))
		return ds;
	ds = bpf_sk_storage_get(&flow_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (ds)
		ds->cgroup_id = sock_cgroup_id(sk);
	return ds;
}

/* where a UDP datagram sent by a process below the cgroup goes, when the call names it (sendto;
 * a connected socket's own peer otherwise), with the source the caller chose, if it did */
static __always_inline void dgram_dest(struct bpf_sock_addr *ctx, int v6)
{
	if (!datagram_flows)
		return;
	struct dgram_rx tx = {.p = {.proto = PROTO_UDP, .family = v6 ? AF_INET6 : AF_INET}, .kind = TX_DEST};
	user_addr(ctx, v6, tx.p.daddr);
	if (v6) {
		__u32 s[4] = {ctx->msg_src_ip6[0], ctx->msg_src_ip6[1], ctx->msg_src_ip6[2], ctx->msg_src_ip6[3]};
		__builtin_memcpy(tx.p.saddr, s, 16);
	} else if (ctx->msg_src_ip4) {
		mapped4(tx.p.saddr, ctx->msg_src_ip4);
	}
	tx.p.dport = bpf_ntohs(ctx->user_port);
	__u64 thread = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&dgram_call, &thread, &tx, BPF_ANY);
}

SEC("cgroup/sendmsg4")
int flow_sendmsg4(struct bpf_sock_addr *ctx)
{
	dgram_dest(ctx, 0);
	return 1;
}

SEC("cgroup/sendmsg6")
int flow_sendmsg6(struct bpf_sock_addr *ctx)
{
	dgram_dest(ctx, 1);
	return 1;
}

/* the socket's own addresses into p: the local end, and the peer of a connected socket */
static __always_inline void sock_addrs(const struct sock *sk, struct pkt *p, int peer)
{
	const struct sock_common *c = &sk->__sk_common;
	if (c->skc_family == AF_INET6) {
		__builtin_memcpy(p->daddr, &c->skc_v6_rcv_saddr, 16);
		if (peer)
			__builtin_memcpy(p->saddr, &c->skc_v6_daddr, 16);
	} else {
		mapped4(p->daddr, c->skc_rcv_saddr);
		if (peer)
			mapped4(p->saddr, c->skc_daddr);
	}
	p->dport = c->skc_num;
	if (peer)
		p->sport = bpf_ntohs(c->skc_dport);
}

/* What the application of a tracked TCP socket in a sockmap (sk_user_data: its psock; tcp_call
 * checks it) sent or received in one call (ret > 0): mesh-accel's sk_msg program moves those bytes socket to socket, so they
 * never become segments and the socket's own counters miss them. These sockets send no segments to check their periodic report at, so it is
 * checked here. */
static __always_inline void count_sock_bytes(struct sock *sk, int ret, int tx)
{
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return;
	__sync_fetch_and_add(tx ? &f->sock_bytes_tx : &f->sock_bytes_rx, ret);
	if (!(f->sock_wait & SOCK_MARKED)) {
		/* its application may still read after the connection closed: the flow's last report
		 * is the socket's release's (flow_release) */
		struct flow_sock *fs = bpf_sk_storage_get(&flow_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!fs)
			return;
		__builtin_memcpy(&fs->last, &k, sizeof(k));
		f->sock_wait |= SOCK_MARKED;
	}
	if (f->sock_wait & SOCK_TCP_CLOSED)
		return;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		tcp_report_if_due(&k, f, tp, sk->__sk_common.skc_state, bpf_ktime_get_ns());
}

/* A TCP send or receive call returned `ret` bytes (every TCP socket of the node): a socket in a
 * sockmap counts them; any other checks whether its periodic report is due each time its
 * application's bytes cross a multiple of 2^REPORT_CHECK_SHIFT in its sequence space (no map is
 * looked up between). */
static __always_inline void tcp_call(struct sock *sk, int ret, int tx)
{
	if (ret <= 0)
		return;
	if (sk->sk_user_data) {
		count_sock_bytes(sk, ret, tx);
		return;
	}
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	__u32 after = tx ? tp->write_seq : tp->copied_seq;
	__u32 before = after - (__u32)ret;
	if ((before >> REPORT_CHECK_SHIFT) == (after >> REPORT_CHECK_SHIFT))
		return;
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (f)
		tcp_report_if_due(&k, f, tp, sk->__sk_common.skc_state, bpf_ktime_get_ns());
}

/* A send call of a UDP / ICMP socket below the cgroup returned: a datagram into its flow. UDP: to
 * the address the call named (cgroup/sendmsg4/6), else the connected peer; from the socket's
 * address (a wildcard-bound socket's is left unspecified: the collector has it from the pod's
 * identity). ICMP (ping and raw sockets, whose peer no hook names): into the socket's last flow,
 * else held in its storage until its first reply names the peer. */
static __always_inline void dgram_sent(struct sock *sk, int ret)
{
	if (!datagram_flows)
		return;
	struct flow_sock *ds = dgram_sock(sk);
	if (!ds)
		return;
	__u64 thread = bpf_get_current_pid_tgid();
	struct dgram_rx *call = bpf_map_lookup_elem(&dgram_call, &thread);
	struct dgram_rx got = {};
	if (call) {
		__builtin_memcpy(&got, call, sizeof(got));
		bpf_map_delete_elem(&dgram_call, &thread);
	}
	if (ret < 0)
		return;
	__u8 proto = sk->sk_protocol;
	__u64 now = bpf_ktime_get_ns();
	if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		struct flow_key k;
		__builtin_memcpy(&k, &ds->last, sizeof(k));
		struct flow *f = k.cookie ? bpf_map_lookup_elem(&flows, &k) : 0;
		if (!f) {
			ds->pending_packets += 1;
			ds->pending_bytes += ret;
			return;
		}
		if (!f->active && !f->packets_tx && (f->icmp_type == ICMP_ECHOREPLY || f->icmp_type == ICMPV6_ECHO_REPLY)) {
			/* its reply came before its send call returned (a hook on the packet counted it):
			 * the socket sent first */
			f->active = 1;
			f->icmp_type = f->icmp_type == ICMP_ECHOREPLY ? ICMP_ECHO : ICMPV6_ECHO_REQUEST;
		}
		count_datagram(f, 1, ret, ret + (f->family == AF_INET ? 20 : 40), 1);
		report_if_due(&k, f, now);
		return;
	}
	if (proto != PROTO_UDP)
		return;
	struct pkt own = {};
	sock_addrs(sk, &own, 1); /* its address as own.daddr, its connected peer as own.saddr */
	struct pkt p = {.family = sk->__sk_common.skc_family, .proto = PROTO_UDP, .sport = own.dport};
	__builtin_memcpy(p.saddr, own.daddr, 16);
	if (got.kind == TX_DEST) {
		__builtin_memcpy(p.daddr, got.p.daddr, 16);
		p.dport = got.p.dport;
		p.family = got.p.family;
		if (!unspecified(got.p.saddr))
			__builtin_memcpy(p.saddr, got.p.saddr, 16);
	} else if (sk->__sk_common.skc_dport) {
		__builtin_memcpy(p.daddr, own.saddr, 16);
		p.dport = own.sport;
	} else {
		return;
	}
	/* a dual-stack socket's IPv4 peer (::ffff:a.b.c.d) is sent to in IPv4 */
	if (p.daddr[10] == 0xff && p.daddr[11] == 0xff && p.daddr[0] == 0)
		p.family = AF_INET;
	struct flow_key k = {.cookie = bpf_get_socket_cookie(sk), .proto = PROTO_UDP};
	struct flow *f = datagram_flow(&p, &k, 1);
	if (!f)
		f = new_datagram_flow(&p, &k, 1, now, ds->cgroup_id, ds);
	if (!f)
		return;
	if (unspecified(f->laddr) && !unspecified(p.saddr))
		__builtin_memcpy(f->laddr, p.saddr, 16);
	count_datagram(f, 1, ret, ret + 8 + (p.family == AF_INET ? 20 : 40), 1);
	report_if_due(&k, f, now);
}

/* a send call returns (every socket of the node) */
SEC("tp_btf/sock_send_length")
int BPF_PROG(flow_sock_send, struct sock *sk, int ret, int flags)
{
	if (sk->sk_protocol == PROTO_TCP)
		tcp_call(sk, ret, 1);
	else
		dgram_sent(sk, ret);
	return 0;
}

/* a receive call returns: a marked datagram socket's datagram (received in this call) into its
 * flow. Sizes: the packet's when it was seen, else the payload returned plus the headers. A TCP
 * socket in a sockmap counts what it read. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(flow_dgram_recv, struct sock *sk, int ret, int flags)
{
	if (sk->sk_protocol == PROTO_TCP) {
		if (!(flags & (MSG_PEEK | MSG_ERRQUEUE)))
			tcp_call(sk, ret, 0);
		return 0;
	}
	if (!datagram_flows)
		return 0;
	__u64 thread = bpf_get_current_pid_tgid();
	struct dgram_rx *rx = bpf_map_lookup_elem(&dgram_call, &thread);
	struct dgram_rx got = {};
	if (rx) {
		__builtin_memcpy(&got, rx, sizeof(got));
		bpf_map_delete_elem(&dgram_call, &thread);
	}
	if (ret < 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	struct flow_sock *ds = dgram_sock(sk);
	if (!ds)
		return 0; /* not a socket below the cgroup */
	struct pkt p = {.family = sk->__sk_common.skc_family, .proto = sk->sk_protocol};
	__u64 payload = ret, ip_len;
	if (got.kind == RX_PACKET) {
		p = got.p;
		payload = got.payload;
		ip_len = p.ip_len;
	} else {
		if (p.proto != PROTO_UDP)
			return 0; /* an ICMP message is always seen as a packet */
		if (got.kind == RX_PEER) {
			sock_addrs(sk, &p, 0);
			p.family = got.p.family;
			p.sport = got.p.sport;
			__builtin_memcpy(p.saddr, got.p.saddr, 16);
		} else if (sk->__sk_common.skc_dport) {
			sock_addrs(sk, &p, 1); /* connected: its peer */
		} else {
			return 0; /* from nobody it can name */
		}
		/* a dual-stack socket's IPv4 peer (::ffff:a.b.c.d) came in IPv4 */
		if (p.saddr[10] == 0xff && p.saddr[11] == 0xff && p.saddr[0] == 0)
			p.family = AF_INET;
		ip_len = payload + 8 + (p.family == AF_INET ? 20 : 40);
	}
	__u64 now = bpf_ktime_get_ns();
	struct flow_key k = {.cookie = bpf_get_socket_cookie(sk), .proto = p.proto};
	struct flow *f = datagram_flow(&p, &k, 0);
	if (!f)
		f = new_datagram_flow(&p, &k, 0, now, ds->cgroup_id, ds);
	if (!f)
		return 0;
	count_datagram(f, 0, payload, ip_len, 1);
	report_if_due(&k, f, now);
	return 0;
}

/* ---- retransmits, drops (tracepoints: every socket of the node; ours by cookie) ---- */

/* a TCP socket's state changes (every TCP socket of the node): at TCP_CLOSE, a tracked one's last
 * report, with the socket's final counters */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(flow_tcp_state, const struct sock *sk, int oldstate, int newstate)
{
	if (newstate == TCP_SYN_SENT || newstate == TCP_ESTABLISHED) {
		if (sk->sk_protocol != PROTO_TCP)
			return 0;
		/* the cgroup check (~0.2 µs: five reads along the socket's cgroup) once a connection:
		 * where the flow starts, and only for an accepted socket whose other end is not ours */
		struct flow t = {};
		if (newstate == TCP_SYN_SENT) {
			if (kbpf_btf_sock_in_cgroup(sk) && sock_tuple(&t, sk) == 0)
				start_tcp_flow(sk, 1, &t);
		} else if (oldstate == TCP_SYN_SENT) {
			/* connected (a flow of ours): its tuple is complete, for the accepting end to
			 * find (this runs before the handshake's last ACK is sent) */
			struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
			if (bpf_map_lookup_elem(&flows, &k) && sock_tuple(&t, sk) == 0)
				local_peer(&t, 1);
		} else if (oldstate == TCP_SYN_RECV) {
			if (sock_tuple(&t, sk) == 0 && !local_peer(&t, 0) && kbpf_btf_sock_in_cgroup(sk))
				start_tcp_flow(sk, 0, &t);
		}
		return 0;
	}
	if (newstate != TCP_STATE_CLOSE)
		return 0;
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	tcp_counters(f, tp, oldstate, 1);
	if ((f->sock_wait & (SOCK_MARKED | SOCK_RELEASED)) == SOCK_MARKED) {
		/* its application reads on: the release reports it */
		f->sock_wait |= SOCK_TCP_CLOSED;
		return 0;
	}
	close_flow(&k, f);
	return 0;
}

/* BTF tracepoints (raw, with typed arguments): no trace record is built for them, so they cost
 * less per event than the tracepoint/ sections (each kfree_skb of the node runs this) */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(flow_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (f)
		__sync_fetch_and_add(&f->retransmits, 1);
	return 0;
}

/* kfree_skb(skb, location, reason[, rx_sk]): rx_sk (kernel 6.12+, the receiving socket of an
 * skb not yet owned by one) is read only where the tracepoint has it */
SEC("tp_btf/kfree_skb")
int BPF_PROG(flow_drop, const struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	const struct sock *sk = skb->sk; /* a BTF pointer: read directly */
	if (!sk && bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		sk = (const struct sock *)ctx[3];
	if (!sk)
		return 0;
	struct flow_key k = {.cookie = (__u64)sk, .proto = PROTO_TCP};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return 0;
	__sync_fetch_and_add(&f->drops, 1);
	f->drop_reason = reason;
	stat_add(FS_DROPS, 1);
	return 0;
}

/* a UDP / ICMP socket goes away: the last report of the flow it used last */
SEC("cgroup/sock_release")
int flow_release(struct bpf_sock *sk)
{
	/* (a TCP socket in no sockmap has no storage: one load) */
	struct flow_sock *ds = bpf_sk_storage_get(&flow_socks, sk, 0, 0);
	if (!ds || !ds->last.cookie)
		return 1;
	struct flow_key k;
	__builtin_memcpy(&k, &ds->last, sizeof(k));
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return 1;
	if (sk->protocol == PROTO_TCP) {
		if (!(f->sock_wait & SOCK_TCP_CLOSED)) {
			f->sock_wait |= SOCK_RELEASED; /* the connection closes later: its close reports */
			return 1;
		}
		fold_sock_bytes(f); /* with what was read since the connection closed */
	}
	close_flow(&k, f);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
