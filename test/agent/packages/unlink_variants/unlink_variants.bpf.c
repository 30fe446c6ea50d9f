// Test package: one probe of do_unlinkat in two variants, fentry and kprobe, as tools ship it
// (their loader keeps the one the kernel supports).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} unlink_hits SEC(".maps");

static void hit(__u32 variant)
{
	__u64 *n = bpf_map_lookup_elem(&unlink_hits, &variant);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("fentry/do_unlinkat")
int BPF_PROG(unlink_fentry, int dfd, struct filename *name)
{
	hit(0);
	return 0;
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(unlink_kprobe, int dfd, struct filename *name)
{
	hit(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
