// Feature probes: can this kernel load (and attach) a program of each BTF-typed hook? Each
// program is loaded on its own; the lsm one needs BPF LSM, the tp_btf and iter ones only BTF,
// the netfilter one a kernel with BPF netfilter programs (6.4+).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	return 0;
}

SEC("iter/bpf_map")
int probe_iter(struct bpf_iter__bpf_map *ctx)
{
	return 0;
}

/* libbpf 1.1 cannot probe the netfilter program type (newer than it): this one is loaded instead */
SEC("netfilter")
int probe_netfilter(struct bpf_nf_ctx *ctx)
{
	return 1; /* NF_ACCEPT */
}

char LICENSE[] SEC("license") = "GPL";
