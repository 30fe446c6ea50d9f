// flow-monitor's records: the key and state of a flow in the LRU, service-lb's svc_origin, and the
// report written into the ring buffer flow_events (what apps/flow-monitor/collector.ts reads).
// Shared with bench/flows_producer.bpf.c, which writes synthetic reports into the same ring.
#ifndef FLOW_REPORT_H
#define FLOW_REPORT_H

struct flow_key {
	__u64 cookie;
	__u8 raddr[16]; /* UDP / ICMP: the peer (TCP: zero, the cookie is the connection) */
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

struct flow {
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
	__u8 pad[3];
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
	struct svc_origin svc;
};

struct flow_report {
	__u64 cookie;
	__u64 duration_ns;
	__u8 closed; /* 0: a periodic report of an open flow; 1: its last */
	__u8 pad[7];
	struct flow flow;
};

#endif
