// SPDX-License-Identifier: GPL-2.0
// Fixture for test/runtime/btf.test.ts: maps and globals whose BTF exercises every
// shape the codec handles. Nothing here is meant to run; the program only returns 0.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum kt_color { KT_RED = 1, KT_GREEN = 2, KT_BLUE = 300 };
enum kt_sign { KT_NEG = -5, KT_ZERO = 0, KT_POS = 5 };

struct kt_addr {
	__u32 ip;
	__u16 port;
	__u8 proto;
};

/* a:3 b:5 share the first byte, c:4 starts the second, big:40 crosses bytes. */
struct kt_bits {
	__u32 a : 3;
	__u32 b : 5;
	__s32 c : 4;
	__u64 big : 40;
	bool on : 1;
	enum kt_color col : 9;
};

union kt_raw {
	__u32 word;
	__u8 bytes[8];
};

struct kt_ints {
	__u8 u8;
	__u16 u16;
	__u32 u32;
	__u64 u64;
	__s8 s8;
	__s16 s16;
	__s32 s32;
	__s64 s64;
	bool ok;
};

struct kt_key {
	__u32 id;
	enum kt_color color;
};

struct kt_value {
	struct kt_addr addr;
	struct kt_addr peers[2];
	__u32 counts[4];
	char name[16];
	enum kt_color color;
	enum kt_sign sign;
	union kt_raw raw;
	struct kt_bits bits;
	struct kt_ints ints;
	union {
		__u32 anon_word;
		__u16 anon_half[2];
	};
	struct {
		__u16 inner_x;
		__u16 inner_y;
	};
	void *ptr;
	float f32;
	double f64;
	__u8 matrix[2][3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct kt_key);
	__type(value, struct kt_value);
} kt_values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kt_ints);
} kt_ints_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kt_bits);
} kt_bits_map SEC(".maps");

/* .rodata: config variables set before load */
const volatile __u32 cfg_port = 8080;
const volatile char cfg_name[16] = "kbpf";
const volatile enum kt_color cfg_color = KT_GREEN;

/* .data */
__u64 data_counter = 7;
struct kt_addr data_addr = { .ip = 1, .port = 2, .proto = 3 };

/* .bss */
__u32 bss_hits;
struct kt_bits bss_bits;

SEC("socket")
int kt_prog(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
