/* kbpf compatibility wrapper for <bpf/bpf_tracing.h>: the installed libbpf header first, then
 * the tracing macros of newer libbpf releases that it lacks, each only where it is not defined.
 * `kbpf build` puts this directory before the system's, so sources include it unchanged. */
#ifndef __KBPF_COMPAT_BPF_TRACING_H
#define __KBPF_COMPAT_BPF_TRACING_H

#include_next <bpf/bpf_tracing.h>

/* A uprobe or uretprobe takes its arguments exactly as a kprobe or kretprobe does; newer libbpf
 * names them separately for clarity. */
#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

#endif
