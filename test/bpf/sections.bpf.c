// Test fixture: sections newer than Debian's libbpf 1.1 knows.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tc/ingress")
int tc_in(struct __sk_buff *skb) { return 0; }

SEC("tcx/egress")
int tcx_out(struct __sk_buff *skb) { return 0; }

char LICENSE[] SEC("license") = "GPL";
