// SPDX-License-Identifier: GPL-2.0
// Fixture for pin.test.ts: a tracepoint on getppid() calls of one process that counts them in a
// map whose value also carries what the loading process wrote (magic, note, mode).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum pin_mode { PIN_MODE_A = 1, PIN_MODE_B = 2 };

struct pin_state {
	__u64 calls;
	__u32 magic;
	char note[16];
	enum pin_mode mode;
	struct {
		__u16 lo;
		__u16 hi;
	} pair;
};

const volatile __u32 watched_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pin_state);
} pin_state SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != watched_tgid)
		return 0;
	__u32 zero = 0;
	struct pin_state *s = bpf_map_lookup_elem(&pin_state, &zero);
	if (s)
		__sync_fetch_and_add(&s->calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
