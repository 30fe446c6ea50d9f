// Feature probe: can this kernel load and attach an fentry program? (BPF trampolines)
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(probe_fentry, int a)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
