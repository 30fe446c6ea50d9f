// SPDX-License-Identifier: GPL-2.0
// Fixture for maps.test.ts: maps with BTF-typed keys and values (nested structs, arrays, enums),
// per-CPU maps, a map for batch operations, a map shared between objects, and a queue.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum shape { SHAPE_CIRCLE = 1, SHAPE_SQUARE = 2, SHAPE_TRIANGLE = 3 };

struct point {
	__s32 x;
	__s32 y;
};

struct item_key {
	__u32 id;
	enum shape shape;
};

struct item {
	struct point pos;
	struct point corners[2];
	__u16 tags[3];
	enum shape shape;
	char label[12];
	__u64 total;
	__s8 delta;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct item_key);
	__type(value, struct item);
} items SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct point);
} pcpu_points SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} batch_map SEC(".maps");

/* reused by a second object (object.reuseMap) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, struct point);
} points_queue SEC(".maps");

/* test-run target: shared[1] += 1, pcpu_counts[0] += 1 (on the running CPU) */
SEC("socket")
int bump(struct __sk_buff *skb)
{
	__u32 one = 1, zero = 0;
	__u64 init = 1;
	__u64 *v = bpf_map_lookup_elem(&shared, &one);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&shared, &one, &init, BPF_NOEXIST);
	__u64 *c = bpf_map_lookup_elem(&pcpu_counts, &zero);
	if (c)
		*c += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
