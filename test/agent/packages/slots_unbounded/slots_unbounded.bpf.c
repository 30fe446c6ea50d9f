// Test package: indexes a global array with a system call number it never bounds, which the
// verifier refuses in every instruction set: both builds kbpf makes of it fail to load.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 by_number[64] = {};

SEC("raw_tp/sys_enter")
int BPF_PROG(unbounded_enter, struct pt_regs *regs, long id)
{
	unsigned int slot = id;

	__sync_fetch_and_add(&by_number[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
