// Test package: a USDT probe of a real library named in its section, as libbpf-bootstrap's
// usdt example names libc's: libstdc++'s `throw` probe, which fires on every C++ throw.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} throws SEC(".maps");

SEC("usdt/libstdc++.so.6:libstdcxx:throw")
int BPF_USDT(on_throw, void *object, void *tinfo)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *n;

	if (!object || !tinfo || bpf_usdt_arg_cnt(ctx) != 2)
		return 0;
	n = bpf_map_lookup_elem(&throws, &pid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&throws, &pid, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
