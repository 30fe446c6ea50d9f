// The Wasm guest of the benchmark (bench/wasm.ts): loads the embedded producer, attaches it,
// and reads every record of the ring through wasm_bpf_buffer_poll, each field of each record,
// printing "count N" every 200 ms of polling (the benchmark reads the counts from its stdout).
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <kbpf-guest.h>
#include "wasm_bench.bpf.o.h"

struct bench_event {
	uint64_t seq;
	uint64_t ts;
	uint32_t pid;
	uint32_t cpu;
	uint32_t kind;
	uint32_t len;
	char comm[16];
};

static uint64_t count, checksum;

static int on_event(void *ctx, void *data, unsigned int size)
{
	const struct bench_event *e = data;
	if (size < sizeof(*e))
		return 0;
	count++;
	checksum += e->seq + e->ts + e->pid + e->cpu + e->kind + e->len + (unsigned char)e->comm[0];
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void)
{
	struct kbpf_guest_object obj;
	if (kbpf_guest_load(&obj, wasm_bench_bpf_o, sizeof(wasm_bench_bpf_o))) {
		fprintf(stderr, "cannot load the BPF object\n");
		return 1;
	}
	if (kbpf_guest_attach(&obj, "produce", "")) {
		fprintf(stderr, "attach failed\n");
		return 1;
	}
	int events = kbpf_guest_map_fd(&obj, "events");
	printf("attached\n");
	char buf[64];
	uint64_t last = now_ms();
	for (;;) {
		int err = kbpf_guest_poll(&obj, events, on_event, NULL, buf, sizeof(buf), 50);
		if (err < 0) {
			fprintf(stderr, "poll: %d\n", err);
			return 1;
		}
		uint64_t t = now_ms();
		if (t - last >= 200) {
			printf("count %llu %llu\n", (unsigned long long)count, (unsigned long long)checksum);
			last = t;
		}
	}
}
