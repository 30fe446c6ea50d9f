// Test package: records sent cut to their filled prefix, as sslsniff sends its TLS data: a
// per-CPU scratch struct with a large trailing buffer, output with the header's size plus the
// bytes used (a size the compiler cannot know) or the header alone.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "cut_records.h"

#define HEAD_SIZE ((__u64) & ((struct cut_rec *)0)->buf)

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cut_rec);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} cut_events SEC(".maps");

__u64 calls = 0;

SEC("tracepoint/syscalls/sys_enter_getgid")
int on_getgid(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 != target_tgid)
		return 0;
	__u32 zero = 0;
	struct cut_rec *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	__u64 n = __sync_fetch_and_add(&calls, 1);
	r->pid = target_tgid;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	__builtin_memcpy(r->data, "kbpf-bytes-here!", 16);
	r->data_len = 10;
	if (n & 1) { /* the header only */
		r->len = 0;
		bpf_perf_event_output(ctx, &cut_events, BPF_F_CURRENT_CPU, r, HEAD_SIZE);
		return 0;
	}
	__u32 len = 5 + (n & 6); /* 5, 7, 9 or 11 bytes of "cut-record!" */
	r->len = len;
	__builtin_memcpy(r->buf, "cut-record!", 12);
	r->buf[len] = 0;
	if (len < CUT_BUF)
		bpf_perf_event_output(ctx, &cut_events, BPF_F_CURRENT_CPU, r, HEAD_SIZE + (len & 0xff));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
