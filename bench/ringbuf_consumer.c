// SPDX-License-Identifier: Apache-2.0
// The C side of the ring buffer benchmark (bench/ringbuf.ts builds it with `cc ... -lbpf` into
// a temporary directory and runs it): loads the same producer object as the TypeScript side,
// runs the producer with BPF_PROG_TEST_RUN on a second thread, and consumes the ring with
// libbpf's ring_buffer__poll, reading every field of every record.
//
//   ringbuf_consumer <producer.bpf.o> <warmup_ms> <duration_ms> <repeat_per_test_run> [<log>]
//
// With <log>, each record is also written to that file as a text line — the line kbpf's log
// store writes for it: {"ts":<ISO time>,"seq":<n>,"source":"events","event":{...every field}} —
// through a user-space buffer written out after each ring_buffer__poll (as the agent writes its
// log after each batch), the file rotated like the log store's (4 MiB, 2 kept: <log>.1, <log>.2).
//
// Prints one line: events=<consumed in the window> seconds=<window> produced=<records written
// by the producer over the whole run> lost=<failed reservations> consumed_total=<all consumed>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct bench_event {
	uint64_t seq;
	uint64_t ts;
	uint32_t pid;
	uint32_t cpu;
	uint32_t kind;
	uint32_t len;
	char comm[16];
};

static volatile int stop;
static uint64_t consumed; /* written by the consumer thread only */
static uint64_t sink;
static int prog_fd;
static int repeat;
static int warmup_ms, duration_ms;
static uint64_t window_events;
static double window_s;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* the text log (with <log>): a buffer written out after each poll, rotated like the log store */
#define LOG_MAX_BYTES (4 << 20)
#define LOG_KEEP 2
#define LOG_BUF (1 << 20)
static const char *log_path;
static int log_fd = -1;
static size_t log_size; /* bytes in the current file */
static char log_buf[LOG_BUF];
static size_t log_len;
static uint64_t log_seq;
static int64_t last_ms = -1;
static char iso[32];

static void log_open(void)
{
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		fprintf(stderr, "ringbuf_consumer: open %s: %s\n", log_path, strerror(errno));
		exit(1);
	}
	log_size = 0;
}

static void log_write_out(void)
{
	size_t off = 0;
	while (off < log_len) {
		ssize_t n = write(log_fd, log_buf + off, log_len - off);
		if (n < 0) {
			fprintf(stderr, "ringbuf_consumer: write %s: %s\n", log_path, strerror(errno));
			exit(1);
		}
		off += n;
	}
	log_size += log_len;
	log_len = 0;
}

static void log_rotate(void)
{
	char from[4096], to[4096];
	close(log_fd);
	for (int i = LOG_KEEP; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", log_path);
		else
			snprintf(from, sizeof(from), "%s.%d", log_path, i - 1);
		snprintf(to, sizeof(to), "%s.%d", log_path, i);
		rename(from, to);
	}
	log_open();
}

static void log_record(const struct bench_event *e)
{
	struct timeval tv;
	char line[512];
	char comm[16 * 6 + 1];
	size_t c = 0;

	gettimeofday(&tv, NULL);
	int64_t ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
	if (ms != last_ms) {
		struct tm tm;
		time_t secs = tv.tv_sec;
		gmtime_r(&secs, &tm);
		size_t k = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(iso + k, sizeof(iso) - k, ".%03dZ", (int)(tv.tv_usec / 1000));
		last_ms = ms;
	}
	/* comm as a JSON string: up to the NUL, escaped */
	for (size_t i = 0; i < sizeof(e->comm) && e->comm[i]; i++) {
		unsigned char ch = e->comm[i];
		if (ch == '"' || ch == '\\') {
			comm[c++] = '\\';
			comm[c++] = ch;
		} else if (ch < 0x20) {
			c += sprintf(comm + c, "\\u%04x", ch);
		} else {
			comm[c++] = ch;
		}
	}
	comm[c] = 0;
	int n = snprintf(line, sizeof(line),
			 "{\"ts\":\"%s\",\"seq\":%llu,\"source\":\"events\",\"event\":{\"seq\":%llu,\"ts\":%llu,"
			 "\"pid\":%u,\"cpu\":%u,\"kind\":%u,\"len\":%u,\"comm\":\"%s\"}}\n",
			 iso, (unsigned long long)++log_seq, (unsigned long long)e->seq, (unsigned long long)e->ts,
			 e->pid, e->cpu, e->kind, e->len, comm);
	if (log_size + log_len + n > LOG_MAX_BYTES && log_size + log_len > 0) {
		log_write_out();
		log_rotate();
	}
	if (log_len + n > sizeof(log_buf))
		log_write_out();
	memcpy(log_buf + log_len, line, n);
	log_len += n;
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct bench_event *e = data;
	char comm[16];

	(void)ctx;
	(void)size;
	memcpy(comm, e->comm, sizeof(comm));
	sink += e->seq + e->ts + e->pid + e->cpu + e->kind + e->len + strnlen(comm, sizeof(comm));
	if (log_path)
		log_record(e);
	__atomic_store_n(&consumed, consumed + 1, __ATOMIC_RELAXED);
	return 0;
}

static void *producer(void *arg)
{
	unsigned char packet[64] = {0};
	(void)arg;
	while (!stop) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet, .data_size_in = sizeof(packet), .repeat = repeat);
		int err = bpf_prog_test_run_opts(prog_fd, &opts);
		if (err) {
			fprintf(stderr, "ringbuf_consumer: test run: %s\n", strerror(-err));
			stop = 1;
		}
	}
	return NULL;
}

static void *sampler(void *arg)
{
	(void)arg;
	usleep(warmup_ms * 1000);
	uint64_t c0 = __atomic_load_n(&consumed, __ATOMIC_RELAXED);
	double t0 = now_s();
	usleep(duration_ms * 1000);
	uint64_t c1 = __atomic_load_n(&consumed, __ATOMIC_RELAXED);
	double t1 = now_s();
	window_events = c1 - c0;
	window_s = t1 - t0;
	stop = 1;
	return NULL;
}

static uint64_t sum_percpu(int map_fd)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals = calloc(ncpu, sizeof(uint64_t)), sum = 0;
	uint32_t zero = 0;
	if (vals && bpf_map_lookup_elem(map_fd, &zero, vals) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: %s <producer.bpf.o> <warmup_ms> <duration_ms> <repeat> [<log>]\n", argv[0]);
		return 2;
	}
	if (argc == 6) {
		log_path = argv[5];
		log_open();
	}
	warmup_ms = atoi(argv[2]);
	duration_ms = atoi(argv[3]);
	repeat = atoi(argv[4]);

	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "ringbuf_consumer: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "ringbuf_consumer: load %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	prog_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "produce"));
	int map_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "events"));
	int lost_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "events_lost"));
	struct bpf_map *bss = NULL, *m;
	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".bss"))
			bss = m;

	struct ring_buffer *rb = ring_buffer__new(map_fd, on_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "ringbuf_consumer: ring_buffer__new: %s\n", strerror(errno));
		return 1;
	}

	pthread_t prod, samp;
	pthread_create(&prod, NULL, producer, NULL);
	pthread_create(&samp, NULL, sampler, NULL);
	while (!stop) {
		int n = ring_buffer__poll(rb, 100);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "ringbuf_consumer: ring_buffer__poll: %s\n", strerror(-n));
			stop = 1;
		}
		if (log_path && log_len)
			log_write_out();
	}
	pthread_join(samp, NULL);
	pthread_join(prod, NULL);
	ring_buffer__consume(rb);
	if (log_path) {
		log_write_out();
		close(log_fd);
	}

	uint64_t produced = 0;
	if (bss) {
		uint32_t zero = 0;
		size_t sz = bpf_map__value_size(bss);
		unsigned char *v = calloc(1, sz);
		if (v && bpf_map_lookup_elem(bpf_map__fd(bss), &zero, v) == 0)
			memcpy(&produced, v, sizeof(produced)); /* seq is the only .bss variable */
		free(v);
	}
	uint64_t lost = sum_percpu(lost_fd);
	printf("events=%llu seconds=%.6f produced=%llu lost=%llu consumed_total=%llu sink=%llu\n",
	       (unsigned long long)window_events, window_s, (unsigned long long)produced,
	       (unsigned long long)lost, (unsigned long long)consumed, (unsigned long long)(sink & 0xff));
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
