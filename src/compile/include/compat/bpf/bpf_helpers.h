/* kbpf compatibility wrapper for <bpf/bpf_helpers.h>: the installed libbpf header first, then
 * what newer libbpf releases added that it lacks (each only where it is not defined), and, when
 * `kbpf build` asks for it, bpf_printk routed into the instance's own log. */
#ifndef __KBPF_COMPAT_BPF_HELPERS_H
#define __KBPF_COMPAT_BPF_HELPERS_H

#include_next <bpf/bpf_helpers.h>

/* True when the weak extern `sym` (a kfunc or kernel variable) exists in the running kernel. */
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

/* BTF type tags of kernel pointers kept in maps. */
#ifndef __kptr_untrusted
#define __kptr_untrusted __attribute__((btf_type_tag("kptr_untrusted")))
#endif
#ifndef __percpu_kptr
#define __percpu_kptr __attribute__((btf_type_tag("percpu_kptr")))
#endif

/* Global-function argument annotations (BTF decl tags the verifier reads). */
#ifndef __arg_ctx
#define __arg_ctx __attribute__((btf_decl_tag("arg:ctx")))
#endif
#ifndef __arg_nonnull
#define __arg_nonnull __attribute__((btf_decl_tag("arg:nonnull")))
#endif
#ifndef __arg_nullable
#define __arg_nullable __attribute__((btf_decl_tag("arg:nullable")))
#endif
#ifndef __arg_trusted
#define __arg_trusted __attribute__((btf_decl_tag("arg:trusted")))
#endif
#ifndef __arg_arena
#define __arg_arena __attribute__((btf_decl_tag("arg:arena")))
#endif

/* A map attribute wider than an int (e.g. a map_extra), carried as an enum constant. */
#ifndef __ulong
#define __ulong(name, val) enum { ___bpf_concat(__unique_value, __COUNTER__) = val } name
#endif

/*
 * Bounded loops over the kernel's numbers iterator (kfuncs since Linux 6.4), as newer libbpf
 * headers give them: bpf_for(i, start, end) runs i over [start, end), bpf_repeat(n) runs n
 * times, bpf_for_each(type, cur, args...) walks a kernel iterator "bpf_iter_<type>". The
 * iterator is destroyed when the loop's scope ends (cleanup attribute), as the verifier asks;
 * the destroy function is also named outright, since clang emits no BTF for an extern that only
 * a cleanup attribute uses (and libbpf needs BTF for every kfunc it resolves).
 */
#ifndef bpf_for_each
struct bpf_iter_num;
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;

#define bpf_for_each(type, cur, args...)                                                \
	for (struct bpf_iter_##type ___kbpf_it                                          \
		     __attribute__((aligned(8), cleanup(bpf_iter_##type##_destroy))),   \
	     *___kbpf_once __attribute__((unused)) =                                    \
		     (bpf_iter_##type##_new(&___kbpf_it, ##args),                           \
		      (void)bpf_iter_##type##_destroy, (void *)0);                        \
	     ((cur) = bpf_iter_##type##_next(&___kbpf_it));)
#endif
#ifndef bpf_for
#define bpf_for(i, start, end)                                                          \
	for (struct bpf_iter_num ___kbpf_it                                             \
		     __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))),        \
	     *___kbpf_once __attribute__((unused)) =                                    \
		     (bpf_iter_num_new(&___kbpf_it, (start), (end)),                        \
		      (void)bpf_iter_num_destroy, (void *)0);                             \
	     ({                                                                         \
		     int *___kbpf_v = bpf_iter_num_next(&___kbpf_it);                   \
		     /* the bounds again, for the verifier: i is then known in range */ \
		     ___kbpf_v && ((i) = *___kbpf_v, (i) >= (start) && (i) < (end));    \
	     });)
#endif
#ifndef bpf_repeat
#define bpf_repeat(n)                                                                   \
	for (struct bpf_iter_num ___kbpf_it                                             \
		     __attribute__((aligned(8), cleanup(bpf_iter_num_destroy))),        \
	     *___kbpf_once __attribute__((unused)) =                                    \
		     (bpf_iter_num_new(&___kbpf_it, 0, (n)),                                \
		      (void)bpf_iter_num_destroy, (void *)0);                             \
	     bpf_iter_num_next(&___kbpf_it);)
#endif

#ifdef KBPF_PRINTK_MAP
/*
 * bpf_printk writes into this object's ring buffer KBPF_PRINTK_MAP instead of the kernel's
 * global trace pipe: the line is formatted in the kernel by bpf_snprintf (the same format rules
 * as bpf_printk), and the agent appends it to the instance's log. A program that calls
 * bpf_trace_printk itself still writes to the trace pipe.
 */
#ifndef KBPF_PRINTK_LINE_SIZE
#define KBPF_PRINTK_LINE_SIZE 256
#endif
struct kbpf_printk_line {
	char line[KBPF_PRINTK_LINE_SIZE];
};
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} KBPF_PRINTK_MAP SEC(".maps");
/* keeps the record type in the object's BTF, so kbpf decodes the lines */
struct kbpf_printk_line *__kbpf_printk_type __attribute__((section(".kbpf.types"), used));

#undef bpf_printk
#define bpf_printk(fmt, args...)                                                        \
	({                                                                              \
		long ___kbpf_len = -1;                                                  \
		struct kbpf_printk_line *___kbpf_rec =                                  \
			bpf_ringbuf_reserve(&KBPF_PRINTK_MAP, sizeof(struct kbpf_printk_line), 0); \
		if (___kbpf_rec) {                                                      \
			___kbpf_len = BPF_SNPRINTF(___kbpf_rec->line, sizeof(___kbpf_rec->line), \
						   fmt, ##args);                        \
			bpf_ringbuf_submit(___kbpf_rec, 0);                             \
		}                                                                       \
		___kbpf_len;                                                            \
	})
#endif

#endif
