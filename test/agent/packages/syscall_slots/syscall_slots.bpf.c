// Test package: counts one process's system calls by number (the first 64), entries and exits
// apart, in global arrays. The slot is a u32 argument of a function of its own (not inlined):
// clang 14's default (v1) code checks its bound on a copy and indexes with the unchecked
// register, which the verifier refuses ("unbounded memory access"); v3 code checks the register
// it indexes with, and loads. kbpf build carries both builds, the agent loads the one that passes.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define SLOTS 64

const volatile __u32 target_tgid = 0;

/* calls counted (both directions), read by the test through the map */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counted SEC(".maps");

__u64 entered[SLOTS] = {};
__u64 returned[SLOTS] = {};

static __noinline int tally(unsigned int slot, bool exit)
{
	__u32 zero = 0;
	__u64 *n;

	if (slot >= SLOTS)
		return 0;
	n = bpf_map_lookup_elem(&counted, &zero);
	if (!n)
		return 0;
	if (exit)
		__sync_fetch_and_add(&returned[slot], 1);
	else
		__sync_fetch_and_add(&entered[slot], 1);
	__sync_fetch_and_add(n, 1);
	return 0;
}

static bool watched(void)
{
	return target_tgid == 0 || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(slots_enter, struct pt_regs *regs, long id)
{
	return watched() ? tally(id, false) : 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(slots_exit, struct pt_regs *regs, long ret)
{
	return watched() ? tally(BPF_CORE_READ(regs, orig_ax), true) : 0;
}

char LICENSE[] SEC("license") = "GPL";
