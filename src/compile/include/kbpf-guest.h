/* kbpf's guest SDK: the wasm-bpf host ABI for guests built for wasm32-wasi.
 *
 * A guest embeds its BPF object (kbpf build generates NAME.bpf.o.h with the bytes), loads it,
 * attaches its programs, polls its ring or perf buffer with a callback and reads and writes
 * its maps. Answers are 0 (or a count) on success and a negative errno on failure; -EPERM
 * (-1) when the guest's capability manifest does not allow what it asked.
 */
#ifndef KBPF_GUEST_H
#define KBPF_GUEST_H

#include <stdint.h>

#define KBPF_IMPORT(name) __attribute__((import_module("wasm_bpf"), import_name(#name)))

KBPF_IMPORT(wasm_load_bpf_object) uint64_t wasm_load_bpf_object(const void *obj, int size);
KBPF_IMPORT(wasm_attach_bpf_program) int wasm_attach_bpf_program(uint64_t obj, const char *name, const char *target);
KBPF_IMPORT(wasm_bpf_buffer_poll)
int wasm_bpf_buffer_poll(uint64_t obj, int fd, int (*sample)(void *ctx, void *data, unsigned int size), void *ctx,
			 void *data, int max_size, int timeout_ms);
KBPF_IMPORT(wasm_bpf_map_fd_by_name) int wasm_bpf_map_fd_by_name(uint64_t obj, const char *name);
KBPF_IMPORT(wasm_bpf_map_operate)
int wasm_bpf_map_operate(int fd, int cmd, void *key, void *value, void *next_key, uint64_t flags);
KBPF_IMPORT(wasm_close_bpf_object) int wasm_close_bpf_object(uint64_t obj);

/* bpf(2) map commands, as wasm_bpf_map_operate takes them */
enum { KBPF_MAP_LOOKUP = 1, KBPF_MAP_UPDATE = 2, KBPF_MAP_DELETE = 3, KBPF_MAP_NEXT_KEY = 4 };
/* update flags */
enum { KBPF_ANY = 0, KBPF_NOEXIST = 1, KBPF_EXIST = 2 };

typedef int (*kbpf_sample_fn)(void *ctx, void *data, unsigned int size);

/* A loaded object and what a guest does with it, in the shape of a libbpf skeleton. */
struct kbpf_guest_object {
	uint64_t handle;
};

static inline int kbpf_guest_load(struct kbpf_guest_object *o, const void *bytes, int size)
{
	o->handle = wasm_load_bpf_object(bytes, size);
	return o->handle ? 0 : -1;
}

static inline int kbpf_guest_attach(struct kbpf_guest_object *o, const char *program, const char *target)
{
	return wasm_attach_bpf_program(o->handle, program, target);
}

static inline int kbpf_guest_map_fd(struct kbpf_guest_object *o, const char *map)
{
	return wasm_bpf_map_fd_by_name(o->handle, map);
}

static inline int kbpf_guest_poll(struct kbpf_guest_object *o, int fd, kbpf_sample_fn fn, void *ctx, void *buf,
				  int size, int timeout_ms)
{
	return wasm_bpf_buffer_poll(o->handle, fd, fn, ctx, buf, size, timeout_ms);
}

static inline int kbpf_guest_lookup(int fd, void *key, void *value)
{
	return wasm_bpf_map_operate(fd, KBPF_MAP_LOOKUP, key, value, 0, 0);
}

static inline int kbpf_guest_update(int fd, void *key, void *value, uint64_t flags)
{
	return wasm_bpf_map_operate(fd, KBPF_MAP_UPDATE, key, value, 0, flags);
}

static inline int kbpf_guest_delete(int fd, void *key)
{
	return wasm_bpf_map_operate(fd, KBPF_MAP_DELETE, key, 0, 0, 0);
}

static inline int kbpf_guest_next_key(int fd, void *key, void *next)
{
	return wasm_bpf_map_operate(fd, KBPF_MAP_NEXT_KEY, key, 0, next, 0);
}

static inline void kbpf_guest_close(struct kbpf_guest_object *o)
{
	if (o->handle)
		wasm_close_bpf_object(o->handle);
	o->handle = 0;
}

#endif
