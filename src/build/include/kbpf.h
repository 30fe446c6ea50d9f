/* kbpf.h: annotations a kbpf package's BPF C can use. Included with #include <kbpf.h>. */
#ifndef __KBPF_H__
#define __KBPF_H__

/*
 * KBPF_EVENT(map, type): records in ring buffer / perf event array `map` are `type` (a struct).
 * The struct then stays in the object's BTF (a type only used through a local pointer would
 * not), and `kbpf build` knows how to decode and show the events without a manifest entry.
 */
#define KBPF_EVENT(map, type) type *__kbpf_event_##map __attribute__((unused))

#endif
