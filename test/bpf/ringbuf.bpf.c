// SPDX-License-Identifier: GPL-2.0
// Fixture for test/runtime/ringbuf.test.ts: XDP programs run with BPF_PROG_TEST_RUN (repeat = N)
// that emit one struct event per run into a ring buffer, numbered in order. A failed reservation
// is counted in a per-CPU lost counter (the convention RingBufferReader's lostCounter reads).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum rb_kind { RB_OPEN = 1, RB_CLOSE = 2, RB_EXEC = 3 };

struct event {
	__u64 seq;
	__u32 pid;
	char comm[16];
	enum rb_kind kind;
	__s32 neg;
	__u16 pkt_len;
	__u8 flags;
};

/* Only used through pointers: a global makes clang keep struct event in the object's BTF,
 * where the reader finds it by name (ring buffers have no value type). */
struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* The smallest ring there is (one page): a burst overruns it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} small_lost SEC(".maps");

/* Every discard_every-th event is reserved and then discarded (0: never). */
const volatile __u32 discard_every = 0;

__u64 seq = 0;
__u64 small_seq = 0;

static __always_inline int emit(struct xdp_md *ctx, void *ring, void *lost, __u64 *counter)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 n = __sync_fetch_and_add(counter, 1);
	__u32 zero = 0;
	struct event *e;

	e = bpf_ringbuf_reserve(ring, sizeof(*e), 0);
	if (!e) {
		__u64 *cnt = bpf_map_lookup_elem(lost, &zero);
		if (cnt)
			(*cnt)++;
		return XDP_PASS;
	}
	e->seq = n;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	/* comm: the 16 bytes after the Ethernet header of the test packet */
	if (data + 14 + 16 <= data_end)
		__builtin_memcpy(e->comm, data + 14, 16);
	else
		__builtin_memset(e->comm, 0, 16);
	e->kind = (n % 3) + 1;
	e->neg = -(__s32)n;
	e->pkt_len = data_end - data;
	e->flags = n & 0xff;
	if (discard_every && n % discard_every == 0) {
		bpf_ringbuf_discard(e, 0);
		return XDP_PASS;
	}
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

SEC("xdp")
int emit_event(struct xdp_md *ctx)
{
	return emit(ctx, &events, &events_lost, &seq);
}

SEC("xdp")
int emit_small(struct xdp_md *ctx)
{
	return emit(ctx, &small, &small_lost, &small_seq);
}

char LICENSE[] SEC("license") = "GPL";
