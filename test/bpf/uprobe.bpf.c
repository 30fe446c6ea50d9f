// SPDX-License-Identifier: GPL-2.0
// Fixture for uprobe.test.ts: a uprobe and a uretprobe on kbpf_target(int) of a test binary,
// recording per process the argument and the return value.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct call {
	__s32 arg;
	__s32 ret;
	__u32 entries;
	__u32 returns;
};

/* tgid of the calling process -> what it passed and got back */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(on_enter, int x)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct call zero = {};
	bpf_map_update_elem(&calls, &pid, &zero, BPF_NOEXIST);
	struct call *c = bpf_map_lookup_elem(&calls, &pid);
	if (!c)
		return 0;
	c->arg = x;
	__sync_fetch_and_add(&c->entries, 1);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_return, int ret)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct call *c = bpf_map_lookup_elem(&calls, &pid);
	if (!c)
		return 0;
	c->ret = ret;
	__sync_fetch_and_add(&c->returns, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
