// Test package: counters and histograms kept in global variables, the way bcc's libbpf-tools
// keep theirs (runqlen, softirqs): a .bss array of log2 histograms, a .bss counter array, a
// .data variable with an initial value, a large .bss buffer, and a .rodata config. Counts the getgid calls of one
// process: counts[1] and calls go up by one per call, hists[2] gets the log2 of the new count.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NSLOTS 16

struct hist {
	__u32 slots[NSLOTS];
};

const volatile __u32 target_tgid = 0;

struct hist hists[4] = {};
__u64 counts[4] = {};
__u64 calls = 7;
/* too large to show: listed without its value */
__u8 scratch[128 * 1024] = {};

static __always_inline __u32 log2_of(__u64 v)
{
	__u32 r = 0;

#pragma unroll
	for (int i = 1; i < 64; i++)
		if (v >> i)
			r = i;
	return r;
}

SEC("tracepoint/syscalls/sys_enter_getgid")
int on_getgid(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 != target_tgid)
		return 0;
	__u64 n = __sync_fetch_and_add(&counts[1], 1) + 1;
	__u32 slot = log2_of(n);

	if (slot >= NSLOTS)
		slot = NSLOTS - 1;
	__sync_fetch_and_add(&hists[2].slots[slot], 1);
	__sync_fetch_and_add(&calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
