// execcount: a Wasm guest (wasm32-wasi) on kbpf's guest SDK. It loads the BPF object it embeds,
// attaches its program, prints each exec() it is told about and keeps the count in the
// guest_stats map (see it with: kbpf maps NAME).
//
//   execcount [-n N]       stop after N events (default: never)
//   execcount --loop       spin without returning to the host (stopped by its CPU budget)
//   execcount --trap       trap at once (reported as failed)
//   execcount --elsewhere  also try attaching to a target outside its capability manifest
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <kbpf-guest.h>
#include "execcount.bpf.o.h"

struct event {
	uint32_t pid;
	uint32_t uid;
	char comm[16];
};

static int stats_fd = -1;
static uint64_t seen;

static int on_event(void *ctx, void *data, unsigned int size)
{
	const struct event *e = data;
	if (size < sizeof(*e))
		return 0;
	seen++;
	printf("exec pid=%u uid=%u comm=%.16s\n", e->pid, e->uid, e->comm);
	uint32_t key = 0;
	int err = kbpf_guest_update(stats_fd, &key, &seen, KBPF_ANY);
	if (err)
		fprintf(stderr, "update guest_stats: %d\n", err);
	return 0;
}

int main(int argc, char **argv)
{
	long limit = -1;
	int elsewhere = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			limit = atol(argv[++i]);
		else if (!strcmp(argv[i], "--loop")) {
			volatile unsigned long x = 0;
			for (;;)
				x++;
		} else if (!strcmp(argv[i], "--trap"))
			__builtin_trap();
		else if (!strcmp(argv[i], "--elsewhere"))
			elsewhere = 1;
	}
	struct kbpf_guest_object obj;
	if (kbpf_guest_load(&obj, execcount_bpf_o, sizeof(execcount_bpf_o))) {
		fprintf(stderr, "cannot load the BPF object\n");
		return 1;
	}
	int err = kbpf_guest_attach(&obj, "trace_exec", "");
	if (err) {
		fprintf(stderr, "attach trace_exec: %d\n", err);
		return 1;
	}
	if (elsewhere)
		printf("attach elsewhere: %d\n", kbpf_guest_attach(&obj, "trace_exec", "sched/sched_process_fork"));
	stats_fd = kbpf_guest_map_fd(&obj, "guest_stats");
	int events = kbpf_guest_map_fd(&obj, "events");
	printf("attached; waiting for exec()\n");
	char buf[sizeof(struct event)];
	while (limit < 0 || (long)seen < limit) {
		err = kbpf_guest_poll(&obj, events, on_event, NULL, buf, sizeof(buf), 100);
		if (err < 0) {
			fprintf(stderr, "poll: %d\n", err);
			break;
		}
	}
	kbpf_guest_close(&obj);
	return 0;
}
