// Bindings to Debian's libbpf (libbpf.so.1, API 1.1+) through koffi. Only raw calls live here:
// every function returns what libbpf returns (negative errno, or NULL with errno set); the
// classes in src/bpf/ turn that into typed objects and errors.
import { koffi, type Pointer } from './koffi.js';

const lib = koffi.load('libbpf.so.1');
const f = (decl: string) => lib.func(decl);

type Fd = number;
type Ret = number;

export const PrintFn = koffi.proto('int kbpf_libbpf_print_fn(int level, const char *fmt, void *ap)');

// struct bpf_object_open_opts as of libbpf 1.1 (later versions only append fields)
export const ObjectOpenOptsType = koffi.struct('kbpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  pin_root_path: 'const char *',
  attach_prog_fd: 'uint32_t',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'void *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
});
export interface ObjectOpenOpts {
  sz: number;
  object_name: string | null;
  relaxed_maps?: boolean;
  pin_root_path?: string | null;
  attach_prog_fd?: number;
  kconfig?: string | null;
  btf_custom_path?: string | null;
  kernel_log_buf?: null;
  kernel_log_size?: number;
  kernel_log_level?: number;
}
export const OBJECT_OPEN_OPTS_SIZE: number = koffi.sizeof(ObjectOpenOptsType);

// struct bpf_uprobe_opts as of libbpf 1.1
export const UprobeOptsType = koffi.struct('kbpf_uprobe_opts', {
  sz: 'size_t',
  ref_ctr_offset: 'size_t',
  bpf_cookie: 'uint64_t',
  retprobe: 'bool',
  func_name: 'const char *',
});
export interface UprobeOpts {
  sz: number;
  ref_ctr_offset: number;
  bpf_cookie: number | bigint;
  retprobe: boolean;
  func_name: string | null;
}
export const UPROBE_OPTS_SIZE: number = koffi.sizeof(UprobeOptsType);

export const libbpf = {
  setPrint: f('void *libbpf_set_print(kbpf_libbpf_print_fn *fn)') as (fn: Pointer) => Pointer,
  numPossibleCpus: f('int libbpf_num_possible_cpus(void)') as () => number,
  strerror: f('int libbpf_strerror(int err, _Out_ uint8_t *buf, size_t size)') as (
    err: number,
    buf: Uint8Array,
    size: number,
  ) => Ret,
  majorVersion: f('uint32_t libbpf_major_version(void)') as () => number,
  minorVersion: f('uint32_t libbpf_minor_version(void)') as () => number,

  // objects
  objectOpenMem: f('void *bpf_object__open_mem(const void *buf, size_t size, const kbpf_object_open_opts *opts)') as (
    buf: Uint8Array,
    size: number,
    opts: ObjectOpenOpts | null,
  ) => Pointer,
  objectOpenFile: f('void *bpf_object__open_file(const char *path, const kbpf_object_open_opts *opts)') as (
    path: string,
    opts: ObjectOpenOpts | null,
  ) => Pointer,
  objectLoad: f('int bpf_object__load(void *obj)') as (obj: Pointer) => Ret,
  objectClose: f('void bpf_object__close(void *obj)') as (obj: Pointer) => void,
  objectName: f('const char *bpf_object__name(void *obj)') as (obj: Pointer) => string,
  objectNextProgram: f('void *bpf_object__next_program(void *obj, void *prog)') as (
    obj: Pointer,
    prev: Pointer | null,
  ) => Pointer | null,
  objectNextMap: f('void *bpf_object__next_map(void *obj, void *map)') as (
    obj: Pointer,
    prev: Pointer | null,
  ) => Pointer | null,
  objectBtf: f('void *bpf_object__btf(void *obj)') as (obj: Pointer) => Pointer | null,

  // programs
  programName: f('const char *bpf_program__name(void *prog)') as (p: Pointer) => string,
  programSectionName: f('const char *bpf_program__section_name(void *prog)') as (p: Pointer) => string,
  programType: f('int bpf_program__type(void *prog)') as (p: Pointer) => number,
  programSetType: f('int bpf_program__set_type(void *prog, int type)') as (p: Pointer, t: number) => Ret,
  programFlags: f('uint32_t bpf_program__flags(void *prog)') as (p: Pointer) => number,
  programSetFlags: f('int bpf_program__set_flags(void *prog, uint32_t flags)') as (p: Pointer, fl: number) => Ret,
  programExpectedAttachType: f('int bpf_program__expected_attach_type(void *prog)') as (p: Pointer) => number,
  programSetExpectedAttachType: f('int bpf_program__set_expected_attach_type(void *prog, int type)') as (
    p: Pointer,
    t: number,
  ) => Ret,
  programFd: f('int bpf_program__fd(void *prog)') as (p: Pointer) => Fd,
  programSetAutoload: f('int bpf_program__set_autoload(void *prog, bool autoload)') as (p: Pointer, on: boolean) => Ret,
  programAutoload: f('bool bpf_program__autoload(void *prog)') as (p: Pointer) => boolean,
  programSetLogBuf: f('int bpf_program__set_log_buf(void *prog, void *buf, size_t size)') as (
    p: Pointer,
    buf: Pointer,
    size: number,
  ) => Ret,
  programSetLogLevel: f('int bpf_program__set_log_level(void *prog, uint32_t level)') as (
    p: Pointer,
    level: number,
  ) => Ret,
  programInsnCnt: f('size_t bpf_program__insn_cnt(void *prog)') as (p: Pointer) => number,

  // maps of an object
  mapName: f('const char *bpf_map__name(void *map)') as (m: Pointer) => string,
  mapType: f('int bpf_map__type(void *map)') as (m: Pointer) => number,
  mapKeySize: f('uint32_t bpf_map__key_size(void *map)') as (m: Pointer) => number,
  mapValueSize: f('uint32_t bpf_map__value_size(void *map)') as (m: Pointer) => number,
  mapMaxEntries: f('uint32_t bpf_map__max_entries(void *map)') as (m: Pointer) => number,
  mapSetMaxEntries: f('int bpf_map__set_max_entries(void *map, uint32_t n)') as (m: Pointer, n: number) => Ret,
  mapSetValueSize: f('int bpf_map__set_value_size(void *map, uint32_t size)') as (m: Pointer, n: number) => Ret,
  mapSetKeySize: f('int bpf_map__set_key_size(void *map, uint32_t size)') as (m: Pointer, n: number) => Ret,
  mapFlags: f('uint32_t bpf_map__map_flags(void *map)') as (m: Pointer) => number,
  mapSetMapFlags: f('int bpf_map__set_map_flags(void *map, uint32_t flags)') as (m: Pointer, flags: number) => Ret,
  mapAttachStructOps: f('void *bpf_map__attach_struct_ops(void *map)') as (m: Pointer) => Pointer | null,
  mapBtfKeyTypeId: f('uint32_t bpf_map__btf_key_type_id(void *map)') as (m: Pointer) => number,
  mapBtfValueTypeId: f('uint32_t bpf_map__btf_value_type_id(void *map)') as (m: Pointer) => number,
  mapFd: f('int bpf_map__fd(void *map)') as (m: Pointer) => Fd,
  mapIsInternal: f('bool bpf_map__is_internal(void *map)') as (m: Pointer) => boolean,
  mapInitialValue: f('void *bpf_map__initial_value(void *map, _Out_ size_t *size)') as (
    m: Pointer,
    size: number[],
  ) => Pointer | null,
  mapSetInitialValue: f('int bpf_map__set_initial_value(void *map, const void *data, size_t size)') as (
    m: Pointer,
    data: Uint8Array,
    size: number,
  ) => Ret,
  mapReuseFd: f('int bpf_map__reuse_fd(void *map, int fd)') as (m: Pointer, fd: Fd) => Ret,
  mapSetPinPath: f('int bpf_map__set_pin_path(void *map, const char *path)') as (
    m: Pointer,
    path: string | null,
  ) => Ret,

  // links made by libbpf
  programAttach: f('void *bpf_program__attach(void *prog)') as (p: Pointer) => Pointer | null,
  programAttachCgroup: f('void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)') as (
    p: Pointer,
    fd: Fd,
  ) => Pointer | null,
  programAttachTracepoint: f(
    'void *bpf_program__attach_tracepoint(void *prog, const char *category, const char *name)',
  ) as (p: Pointer, cat: string, name: string) => Pointer | null,
  programAttachRawTracepoint: f('void *bpf_program__attach_raw_tracepoint(void *prog, const char *name)') as (
    p: Pointer,
    name: string,
  ) => Pointer | null,
  programAttachKprobe: f('void *bpf_program__attach_kprobe(void *prog, bool retprobe, const char *func_name)') as (
    p: Pointer,
    retprobe: boolean,
    func: string,
  ) => Pointer | null,
  programAttachUprobeOpts: f(
    'void *bpf_program__attach_uprobe_opts(void *prog, int pid, const char *binary, size_t offset, const kbpf_uprobe_opts *opts)',
  ) as (p: Pointer, pid: number, binary: string, offset: number, opts: UprobeOpts) => Pointer | null,
  programAttachIter: f('void *bpf_program__attach_iter(void *prog, const void *opts)') as (
    p: Pointer,
    opts: null,
  ) => Pointer | null,
  programAttachNetns: f('void *bpf_program__attach_netns(void *prog, int netns_fd)') as (
    p: Pointer,
    fd: Fd,
  ) => Pointer | null,
  iterCreate: f('int bpf_iter_create(int link_fd)') as (link: Fd) => Fd,
  linkFd: f('int bpf_link__fd(void *link)') as (l: Pointer) => Fd,
  linkDestroy: f('int bpf_link__destroy(void *link)') as (l: Pointer) => Ret,
  linkDisconnect: f('void bpf_link__disconnect(void *link)') as (l: Pointer) => void,

  // low-level syscall wrappers
  linkCreate: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)') as (
    prog: Fd,
    target: Fd,
    type: number,
    opts: Uint8Array | null,
  ) => Fd,
  linkUpdate: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)') as (
    link: Fd,
    prog: Fd,
    opts: Uint8Array | null,
  ) => Ret,
  linkDetach: f('int bpf_link_detach(int link_fd)') as (link: Fd) => Ret,
  objPin: f('int bpf_obj_pin(int fd, const char *path)') as (fd: Fd, path: string) => Ret,
  objGet: f('int bpf_obj_get(const char *path)') as (path: string) => Fd,
  objGetInfoByFd: f('int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)') as (
    fd: Fd,
    info: Uint8Array,
    len: number[],
  ) => Ret,
  progGetFdById: f('int bpf_prog_get_fd_by_id(uint32_t id)') as (id: number) => Fd,
  mapGetFdById: f('int bpf_map_get_fd_by_id(uint32_t id)') as (id: number) => Fd,
  linkGetFdById: f('int bpf_link_get_fd_by_id(uint32_t id)') as (id: number) => Fd,
  btfGetFdById: f('int bpf_btf_get_fd_by_id(uint32_t id)') as (id: number) => Fd,
  progGetNextId: f('int bpf_prog_get_next_id(uint32_t start, _Out_ uint32_t *next)') as (
    start: number,
    next: number[],
  ) => Ret,
  mapGetNextId: f('int bpf_map_get_next_id(uint32_t start, _Out_ uint32_t *next)') as (
    start: number,
    next: number[],
  ) => Ret,
  linkGetNextId: f('int bpf_link_get_next_id(uint32_t start, _Out_ uint32_t *next)') as (
    start: number,
    next: number[],
  ) => Ret,
  progTestRunOpts: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ uint8_t *opts)') as {
    (fd: Fd, opts: Uint8Array): Ret;
    async(fd: Fd, opts: Uint8Array, cb: (err: unknown, ret: Ret) => void): void;
  },
  enableStats: f('int bpf_enable_stats(int type)') as (type: number) => Fd,

  // maps (by fd)
  progLoad: f(
    'int bpf_prog_load(int type, const char *name, const char *license, const uint8_t *insns, size_t insn_cnt, _Inout_ uint8_t *opts)',
  ) as (type: number, name: string | null, license: string, insns: Uint8Array, cnt: number, opts: Uint8Array) => Fd,
  mapCreate: f(
    'int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
  ) as (type: number, name: string | null, k: number, v: number, max: number, opts: Uint8Array | null) => Fd,
  mapLookupElem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ uint8_t *value)') as (
    fd: Fd,
    key: Uint8Array | null,
    value: Uint8Array,
  ) => Ret,
  mapLookupElemFlags: f(
    'int bpf_map_lookup_elem_flags(int fd, const void *key, _Out_ uint8_t *value, uint64_t flags)',
  ) as (fd: Fd, key: Uint8Array | null, value: Uint8Array, flags: number) => Ret,
  mapLookupAndDeleteElem: f('int bpf_map_lookup_and_delete_elem(int fd, const void *key, _Out_ uint8_t *value)') as (
    fd: Fd,
    key: Uint8Array | null,
    value: Uint8Array,
  ) => Ret,
  mapUpdateElem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)') as (
    fd: Fd,
    key: Uint8Array | null,
    value: Uint8Array,
    flags: number,
  ) => Ret,
  mapDeleteElem: f('int bpf_map_delete_elem(int fd, const void *key)') as (fd: Fd, key: Uint8Array) => Ret,
  mapGetNextKey: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ uint8_t *next)') as (
    fd: Fd,
    key: Uint8Array | null,
    next: Uint8Array,
  ) => Ret,
  mapLookupBatch: f(
    'int bpf_map_lookup_batch(int fd, void *in_batch, _Out_ uint8_t *out_batch, _Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint32_t *count, const void *opts)',
  ) as (
    fd: Fd,
    inBatch: Uint8Array | null,
    outBatch: Uint8Array,
    keys: Uint8Array,
    values: Uint8Array,
    count: number[],
    opts: Uint8Array | null,
  ) => Ret,
  mapUpdateBatch: f(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)',
  ) as (fd: Fd, keys: Uint8Array, values: Uint8Array, count: number[], opts: Uint8Array | null) => Ret,
  mapDeleteBatch: f(
    'int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)',
  ) as (fd: Fd, keys: Uint8Array, count: number[], opts: Uint8Array | null) => Ret,
  mapFreeze: f('int bpf_map_freeze(int fd)') as (fd: Fd) => Ret,

  // BTF
  btfRawData: f('const void *btf__raw_data(void *btf, _Out_ uint32_t *size)') as (
    btf: Pointer,
    size: number[],
  ) => Pointer | null,
  btfLoadFromKernelById: f('void *btf__load_from_kernel_by_id(uint32_t id)') as (id: number) => Pointer | null,
  btfFree: f('void btf__free(void *btf)') as (btf: Pointer) => void,
  btfFd: f('int btf__fd(void *btf)') as (btf: Pointer) => Fd,

  // tc (netlink, clsact)
  tcHookCreate: f('int bpf_tc_hook_create(const void *hook)') as (hook: Uint8Array) => Ret,
  tcHookDestroy: f('int bpf_tc_hook_destroy(const void *hook)') as (hook: Uint8Array) => Ret,
  tcAttach: f('int bpf_tc_attach(const void *hook, _Inout_ uint8_t *opts)') as (
    hook: Uint8Array,
    opts: Uint8Array,
  ) => Ret,
  tcDetach: f('int bpf_tc_detach(const void *hook, const void *opts)') as (hook: Uint8Array, opts: Uint8Array) => Ret,
  tcQuery: f('int bpf_tc_query(const void *hook, _Inout_ uint8_t *opts)') as (
    hook: Uint8Array,
    opts: Uint8Array,
  ) => Ret,

  // perf buffer: libbpf opens and maps the per-CPU rings; their records are walked in JavaScript
  // (src/bpf/perf/walker.ts), so no sample / lost callbacks are given
  perfBufferNew: f(
    'void *perf_buffer__new(int map_fd, size_t page_cnt, void *sample, void *lost, void *ctx, const void *opts)',
  ) as (fd: Fd, pages: number, sample: null, lost: null, ctx: null, opts: null) => Pointer | null,
  perfBufferEpollFd: f('int perf_buffer__epoll_fd(void *pb)') as (pb: Pointer) => Fd,
  perfBufferFree: f('void perf_buffer__free(void *pb)') as (pb: Pointer) => void,
  perfBufferBufferCnt: f('size_t perf_buffer__buffer_cnt(const void *pb)') as (pb: Pointer) => number,
  /** the mmap'd per-CPU ring of buffer idx: its perf_event_mmap_page, then the data pages */
  perfBufferBuffer: f('int perf_buffer__buffer(void *pb, int buf_idx, _Out_ void **buf, _Out_ size_t *buf_size)') as (
    pb: Pointer,
    idx: number,
    buf: [Pointer],
    size: [number],
  ) => Ret,

  // feature probes
  probeProgType: f('int libbpf_probe_bpf_prog_type(int type, const void *opts)') as (type: number, opts: null) => Ret,
  probeMapType: f('int libbpf_probe_bpf_map_type(int type, const void *opts)') as (type: number, opts: null) => Ret,
  probeHelper: f('int libbpf_probe_bpf_helper(int prog_type, int helper, const void *opts)') as (
    progType: number,
    helper: number,
    opts: null,
  ) => Ret,
};
