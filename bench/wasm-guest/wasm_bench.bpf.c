// SPDX-License-Identifier: GPL-2.0
// Producer of the Wasm guest benchmark (bench/wasm.ts): each getppid() of the trigger process
// writes `batch` 48-byte records into the ring buffer with bpf_loop. The guest (main.c) embeds
// this object and reads the ring through wasm_bpf_buffer_poll; the native TypeScript reader
// loads the same object, so ring size and producer are identical.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct bench_event {
	__u64 seq;
	__u64 ts;
	__u32 pid;
	__u32 cpu;
	__u32 kind;
	__u32 len;
	char comm[16];
};

struct bench_event *unused_bench_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* the trigger process (0: any) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} trigger SEC(".maps");

__u64 seq = 0;

struct loop_ctx {
	__u64 ts;
	__u32 pid;
};

static long write_one(__u64 i, struct loop_ctx *lc)
{
	struct bench_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->ts = lc->ts;
	e->pid = lc->pid;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = i & 3;
	e->len = sizeof(*e);
	__builtin_memcpy(e->comm, "kbpf-bench\0\0\0\0\0", 16);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	__u32 zero = 0;
	__u32 *want = bpf_map_lookup_elem(&trigger, &zero);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (!want || (*want && *want != pid))
		return 0;
	struct loop_ctx lc = { .ts = bpf_ktime_get_ns(), .pid = pid };
	bpf_loop(64, write_one, &lc, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
