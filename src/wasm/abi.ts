// The wasm-bpf host ABI, as guests built by wasm-bpf's toolchain import it, and as our guest SDK
// header (examples/wasm/include/kbpf-guest.h) declares it. Pointers are offsets into the guest's
// exported memory; an object handle is a u64 (0: the load failed); every other answer is 0 or a
// count on success and a negative errno on failure.
//
//   wasm_bpf.wasm_load_bpf_object(buf: i32, size: i32) -> i64
//   wasm_bpf.wasm_attach_bpf_program(obj: i64, name: i32, attach_target: i32) -> i32
//   wasm_bpf.wasm_bpf_buffer_poll(obj: i64, fd: i32, sample_func: i32, ctx: i32, data: i32,
//                                 max_size: i32, timeout_ms: i32) -> i32
//   wasm_bpf.wasm_bpf_map_fd_by_name(obj: i64, name: i32) -> i32
//   wasm_bpf.wasm_bpf_map_operate(fd: i32, cmd: i32, key: i32, value: i32, next_key: i32,
//                                 flags: i64) -> i32
//   wasm_bpf.wasm_close_bpf_object(obj: i64) -> i32
//
// sample_func is an index into the guest's exported function table
// (`__indirect_function_table`), called as (ctx: i32, data: i32, size: i32) -> i32 once per
// record, with the record copied to `data` (at most max_size bytes; size is what was copied).
// Guests whose compiler cannot take function pointers (TinyGo) import the poll from module
// `callback-wrapper` without sample_func, and export the callback as `go-callback`.

export const WASM_BPF_MODULE = 'wasm_bpf';
export const CALLBACK_WRAPPER_MODULE = 'callback-wrapper';
export const CALLBACK_WRAPPER_EXPORT = 'go-callback';
export const WASI_MODULE = 'wasi_snapshot_preview1';

export const HOST_FUNCTIONS = [
  'wasm_load_bpf_object',
  'wasm_attach_bpf_program',
  'wasm_bpf_buffer_poll',
  'wasm_bpf_map_fd_by_name',
  'wasm_bpf_map_operate',
  'wasm_close_bpf_object',
] as const;

/** errno values a guest sees (Linux numbering, as wasm-bpf returns them). */
export const EPERM = 1;
export const ENOENT = 2;
export const EBADF = 9;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EINVAL = 22;
