// flow-monitor's records: the key and state of a flow in the LRU, service-lb's svc_origin,
// mesh-accel's original destinations, and the report written into the ring buffer flow_events
// (what apps/flow-monitor/collector.ts reads).
// Shared with bench/flows_producer.bpf.c, which writes synthetic reports into the same ring.
#ifndef FLOW_REPORT_H
#define FLOW_REPORT_H

struct flow_key {
	__u64 cookie;   /* TCP: the socket's address; UDP / ICMP: the socket's cookie */
	__u8 raddr[16]; /* UDP / ICMP: the peer (TCP: zero, the socket is the connection) */
	__u16 rport;    /* UDP: the peer's port; ICMP: the echo id */
	__u8 proto;
	__u8 pad[5];
};

/* service-lb's record of a socket-LB translation, under the socket's cookie (its layout) */
struct svc_origin {
	__u32 vip[4];
	__u32 backend[4];
	__u16 vip_port; /* network order */
	__u16 backend_port;
	__u8 family;
	__u8 policy;
	__u8 level;
	__u8 affinity_hit;
	__u32 service_id;
};

/* mesh-accel's record of a connection it sent to a sidecar (or a peer's inbound port), under the
 * socket's cookie: where the application was connecting (its layouts: orig_by_cookie,
 * orig6_by_cookie) */
struct orig_dst {
	__u32 ip;   /* network order */
	__u16 port; /* host order */
	__u16 pad;
};
struct orig_dst6 {
	__u32 ip[4]; /* network order */
	__u16 port;  /* host order */
	__u16 pad;
};

struct flow {
	__u64 id; /* what the report calls the flow (its cookie): TCP: the socket's cookie or a random
		   * number; UDP / ICMP: the socket's cookie */
	__u64 start_ns;
	__u64 last_report_ns;
	__u64 cgroup_id; /* the local socket's cgroup */
	__u8 laddr[16];  /* IPv4 as ::ffff:a.b.c.d */
	__u8 raddr[16];
	__u16 lport; /* host order */
	__u16 rport;
	__u8 family;
	__u8 proto;
	__u8 active; /* 1: the local socket connected (or sent first); 0: it accepted */
	__u8 tcp_state;
	__u8 flags_tx; /* TCP flags seen, OR-ed, each way */
	__u8 flags_rx;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 has_svc;
	__u8 redirected; /* mesh-accel sent the connection elsewhere: orig_addr:orig_port is where to */
	__u8 sock_wait;  /* a TCP socket in a sockmap: SOCK_* (flow_monitor.bpf.c), its last report waits */
	__u16 orig_port;
	__u8 orig_addr[16];
	__u32 srtt_us;
	__u32 min_rtt_us;
	__u32 retransmits;
	__u32 drops;
	__u32 drop_reason; /* enum skb_drop_reason of the last drop */
	__u32 pad2;
	__u64 bytes_tx; /* payload: TCP bytes acked / received; UDP payload; ICMP message */
	__u64 bytes_rx;
	__u64 packets_tx; /* segments (GSO counted as what goes on the wire) */
	__u64 packets_rx;
	__u64 ip_bytes_tx; /* IP packet bytes */
	__u64 ip_bytes_rx;
	__u64 sock_bytes_tx; /* a TCP socket in a sockmap (mesh-accel): what the application sent /
			      * received, per call (sk_msg moves it socket to socket, not as segments);
			      * reported as bytes_tx / bytes_rx */
	__u64 sock_bytes_rx;
	struct svc_origin svc;
};

/* 16 address bytes; the log shows a union as one hex string (32 characters, not 16 numbers) */
union addr16 {
	__u8 b[16];
	__u32 w[4];
};

/* svc_origin as hex in the log too (the collector reads its fields from the bytes); a connection
 * mesh-accel redirected and service-lb did not translate carries where the application was
 * connecting there instead (one of them at most gives the address the application asked for:
 * mesh-accel redirecting after service-lb sees the backend, before it no service address) */
union svc_bytes {
	struct svc_origin o;
	struct {
		__u8 addr[16]; /* IPv4 as ::ffff:a.b.c.d */
		__u16 port;    /* host order */
	} orig;
	__u8 b[sizeof(struct svc_origin)];
};

/* What goes into the ring: a flow's counters, flat, no padding, addresses as bytes — about 500
 * bytes a log line (the map's struct flow, copied field by field, was 800). */
struct flow_report {
	__u64 cookie;
	__u64 duration_ns;
	__u64 cgroup_id;
	__u64 bytes_tx; /* payload: TCP bytes acked / received; UDP payload; ICMP message */
	__u64 bytes_rx;
	__u64 packets_tx;
	__u64 packets_rx;
	__u64 ip_bytes_tx;
	__u64 ip_bytes_rx;
	union addr16 laddr; /* IPv4 as ::ffff:a.b.c.d */
	union addr16 raddr;
	union svc_bytes svc; /* when has_svc; else when redirected: svc.orig */
	__u32 srtt_us;
	__u32 min_rtt_us;
	__u32 retransmits;
	__u32 drops;
	__u32 drop_reason;
	__u16 lport; /* host order */
	__u16 rport;
	__u8 family;
	__u8 proto;
	__u8 active;
	__u8 tcp_state;
	__u8 flags_tx;
	__u8 flags_rx;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 closed; /* 0: a periodic report of an open flow; 1: its last */
	__u8 has_svc;
	__u8 redirected; /* 1: mesh-accel sent the connection elsewhere (REDIRECTED); where the application
			  * was connecting is in svc.orig, or, with has_svc, the backend service-lb chose */
};

/* a flow's state -> its report */
static __always_inline void fill_report(struct flow_report *r, __u64 cookie, const struct flow *f, __u8 closed,
					__u64 now)
{
	r->cookie = cookie;
	r->duration_ns = now - f->start_ns;
	r->cgroup_id = f->cgroup_id;
	r->bytes_tx = f->bytes_tx;
	r->bytes_rx = f->bytes_rx;
	r->packets_tx = f->packets_tx;
	r->packets_rx = f->packets_rx;
	r->ip_bytes_tx = f->ip_bytes_tx;
	r->ip_bytes_rx = f->ip_bytes_rx;
	__builtin_memcpy(r->laddr.b, f->laddr, 16);
	__builtin_memcpy(r->raddr.b, f->raddr, 16);
	__builtin_memcpy(&r->svc.o, &f->svc, sizeof(f->svc)); /* zero without has_svc */
	if (!f->has_svc && f->redirected) {
		__builtin_memcpy(r->svc.orig.addr, f->orig_addr, 16);
		r->svc.orig.port = f->orig_port;
	}
	r->srtt_us = f->srtt_us;
	r->min_rtt_us = f->min_rtt_us;
	r->retransmits = f->retransmits;
	r->drops = f->drops;
	r->drop_reason = f->drop_reason;
	r->lport = f->lport;
	r->rport = f->rport;
	r->family = f->family;
	r->proto = f->proto;
	r->active = f->active;
	r->tcp_state = f->tcp_state;
	r->flags_tx = f->flags_tx;
	r->flags_rx = f->flags_rx;
	r->icmp_type = f->icmp_type;
	r->icmp_code = f->icmp_code;
	r->closed = closed;
	r->has_svc = f->has_svc;
	r->redirected = f->redirected;
}

#endif
