/* kbpf event processor SDK: what a processor module exports and may import (docs/wasm.md,
 * "Event processors"). Build: kbpf build compiles the kbpf.yaml `processor:` source with clang for
 * wasm32-wasi as a reactor. A processor sees each record of its events before the agent logs it:
 *
 *   KBPF_PROCESSOR_INPUT(64);                      room for one record of up to 64 bytes
 *   int kbpf_process(void *rec, unsigned size)     KBPF_DROP or KBPF_KEEP (rewrite in place)
 *   void kbpf_flush(long long now_ms)              optional, about once a second and at the end
 *   kbpf_emit(rec, size) / kbpf_emit_json(text, len) log a record of the event's layout / a JSON object
 */
#ifndef KBPF_PROCESSOR_H
#define KBPF_PROCESSOR_H

#include <stdint.h>

#define KBPF_DROP 0
#define KBPF_KEEP 1

#define KBPF_EXPORT(name) __attribute__((export_name(#name)))
#define KBPF_IMPORT(name) __attribute__((import_module("kbpf"), import_name(#name)))

KBPF_IMPORT(emit) int kbpf_emit(const void *rec, unsigned size);
KBPF_IMPORT(emit_json) int kbpf_emit_json(const char *json, unsigned len);

/* The input buffer the host writes each record into (records larger than it are refused). */
#define KBPF_PROCESSOR_INPUT(max)                                                               \
	static _Alignas(8) unsigned char kbpf_input_buffer[(max)];                                   \
	KBPF_EXPORT(kbpf_processor_input) void *kbpf_processor_input(unsigned size)                   \
	{                                                                                          \
		return size <= sizeof(kbpf_input_buffer) ? kbpf_input_buffer : 0;                       \
	}

#define KBPF_PROCESS KBPF_EXPORT(kbpf_process) int kbpf_process
#define KBPF_FLUSH KBPF_EXPORT(kbpf_flush) void kbpf_flush

#endif
