/* kbpf.h: annotations and helpers for a kbpf package's BPF C. #include <kbpf.h> after
 * <bpf/bpf_helpers.h>. */
#ifndef __KBPF_H__
#define __KBPF_H__

/*
 * KBPF_EVENT(map, type): records in ring buffer / perf event array `map` are `type` (a struct).
 * The struct then stays in the object's BTF (a type only used through a local pointer would
 * not), and `kbpf build` knows how to decode and show the events without a manifest entry.
 */
#define KBPF_EVENT(map, type) type *__kbpf_event_##map __attribute__((unused))

/*
 * KBPF_RINGBUF(name, bytes, type): a ring buffer of `type` records, with the per-CPU counter
 * `name_lost` the agent reads as the instance's lost events (reservations that found no room).
 */
#define KBPF_RINGBUF(_name, _bytes, _type)                      \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_RINGBUF);             \
		__uint(max_entries, _bytes);                    \
	} _name SEC(".maps");                                   \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);        \
		__uint(max_entries, 1);                         \
		__type(key, __u32);                             \
		__type(value, __u64);                           \
	} _name##_lost SEC(".maps");                            \
	KBPF_EVENT(_name, _type)

/* Reserves a record of `size` bytes in ring buffer `name`, counting a failure in name_lost. */
#define kbpf_reserve(_name, _size)                                              \
	({                                                                      \
		void *__rec = bpf_ringbuf_reserve(&_name, _size, 0);            \
		if (!__rec) {                                                   \
			__u32 __zero = 0;                                       \
			__u64 *__lost = bpf_map_lookup_elem(&_name##_lost, &__zero); \
			if (__lost)                                             \
				(*__lost)++;                                    \
		}                                                               \
		__rec;                                                          \
	})

#endif
