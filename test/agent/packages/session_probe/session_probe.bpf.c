// Test package: an fsession program (fentry and fexit of one function as one session), a
// section newer than libbpf 1.1 and than some kernels.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} session_hits SEC(".maps");

SEC("fsession/vfs_read")
int read_session(void *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&session_hits, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
