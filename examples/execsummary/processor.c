// The event processor of execsummary (docs/wasm.md, "Event processors"): runs in the agent, in
// WebAssembly, on every exec event before it is logged. Execs of `true` are dropped; the others
// are counted per command, and once a second each command seen is logged as one summary,
// {"comm":"ls","execs":3}, instead of its events.
#include <stdio.h>
#include <string.h>
#include <kbpf-processor.h>

struct event {
	uint32_t pid;
	uint32_t uid;
	char comm[16];
};

#define MAX_COMMS 64

static struct {
	char comm[16];
	unsigned execs;
} seen[MAX_COMMS];
static int nseen;

KBPF_PROCESSOR_INPUT(sizeof(struct event));

KBPF_PROCESS(void *rec, unsigned size)
{
	const struct event *e = rec;
	if (size < sizeof(*e) || strncmp(e->comm, "true", sizeof(e->comm)) == 0)
		return KBPF_DROP;
	for (int i = 0; i < nseen; i++)
		if (strncmp(seen[i].comm, e->comm, sizeof(e->comm)) == 0) {
			seen[i].execs++;
			return KBPF_DROP;
		}
	if (nseen == MAX_COMMS)
		return KBPF_KEEP; /* no room to count it: log the event itself */
	memcpy(seen[nseen].comm, e->comm, sizeof(e->comm));
	seen[nseen].execs = 1;
	nseen++;
	return KBPF_DROP;
}

KBPF_FLUSH(long long now_ms)
{
	char line[96];
	for (int i = 0; i < nseen; i++) {
		int n = snprintf(line, sizeof(line), "{\"comm\":\"%.16s\",\"execs\":%u}", seen[i].comm, seen[i].execs);
		kbpf_emit_json(line, (unsigned)n);
	}
	nseen = 0;
}
