// Test package: a uprobe.session section (newer than Debian's libbpf 1.1): one program runs at
// the entry of each matching function and, because it returns 0 there, at its return too;
// bpf_session_is_return() tells the two apart. Entries whose argument is odd return 1, which
// asks the kernel not to run the program at that call's return.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} session_calls SEC(".maps"); /* 0: entries, 1: returns */

static __always_inline void count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&session_calls, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("uprobe.session")
int on_call(struct pt_regs *ctx)
{
	if (bpf_session_is_return()) {
		count(1);
		return 0;
	}
	count(0);
	return PT_REGS_PARM1(ctx) & 1;
}

char LICENSE[] SEC("license") = "GPL";
