// The few libc calls the runtime needs that Node does not expose: mmap for ring buffers,
// epoll to wait on BPF fds, close for raw fds, perf_event_open through syscall().
import { archInfo } from '../arch.js';
import { koffi } from './koffi.js';

const lib = koffi.load('libc.so.6');

export const libc = {
  close: lib.func('int close(int fd)') as (fd: number) => number,
  dup: lib.func('int dup(int fd)') as (fd: number) => number,
  mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as (
    addr: null,
    len: number,
    prot: number,
    flags: number,
    fd: number,
    off: number,
  ) => unknown,
  munmap: lib.func('int munmap(void *addr, size_t len)') as (addr: unknown, len: number) => number,
  epollCreate1: lib.func('int epoll_create1(int flags)') as (flags: number) => number,
  epollCtl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as (
    epfd: number,
    op: number,
    fd: number,
    event: Uint8Array | null,
  ) => number,
  epollWait: lib.func('int epoll_wait(int epfd, _Out_ uint8_t *events, int maxevents, int timeout)') as {
    (epfd: number, events: Uint8Array, max: number, timeout: number): number;
    async(epfd: number, events: Uint8Array, max: number, timeout: number, cb: (err: unknown, n: number) => void): void;
  },
  vsnprintf: lib.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)') as (
    buf: Uint8Array,
    size: number,
    fmt: string,
    ap: unknown,
  ) => number,
  strerror: lib.func('const char *strerror(int errnum)') as (errnum: number) => string,
  getpid: lib.func('int getpid(void)') as () => number,
  flock: lib.func('int flock(int fd, int operation)') as (fd: number, operation: number) => number,
  syscall6: lib.func('long syscall(long nr, long a, long b, long c, long d, long e)') as (
    nr: number,
    a: number | bigint | Uint8Array,
    b: number,
    c: number,
    d: number,
    e: number,
  ) => number,
  perfEventOpen: lib.func('long syscall(long nr, void *attr, int pid, int cpu, int group_fd, unsigned long flags)') as (
    nr: number,
    attr: Uint8Array,
    pid: number,
    cpu: number,
    groupFd: number,
    flags: number,
  ) => number,
  bpf: lib.func('long syscall(long nr, long cmd, _Inout_ uint8_t *attr, unsigned long size)') as (
    nr: number,
    cmd: number,
    attr: Uint8Array,
    size: number,
  ) => number,
  ioctl: lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)') as (
    fd: number,
    req: number,
    arg: number,
  ) => number,
  getpagesize: lib.func('int getpagesize(void)') as () => number,
  schedSetscheduler: lib.func('int sched_setscheduler(int pid, int policy, const int *param)') as (
    pid: number,
    policy: number,
    param: Int32Array,
  ) => number,
  schedGetscheduler: lib.func('int sched_getscheduler(int pid)') as (pid: number) => number,
};

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FAILED = -1n;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 1;
export const EPOLL_CLOEXEC = 0o2000000;
/** perf_event_open's syscall number on this machine */
export const SYS_PERF_EVENT_OPEN = archInfo().sysPerfEventOpen;

export const netlibc = {
  ifNametoindex: lib.func('unsigned int if_nametoindex(const char *name)') as (name: string) => number,
  setns: lib.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number,
  gettid: lib.func('int gettid(void)') as () => number,
  socket: lib.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number,
  bind: lib.func('int bind(int fd, const uint8_t *addr, uint32_t len)') as (
    fd: number,
    addr: Uint8Array,
    len: number,
  ) => number,
  recvfrom: lib.func(
    'long recvfrom(int fd, _Out_ uint8_t *buf, size_t len, int flags, _Out_ uint8_t *addr, _Inout_ uint32_t *addrlen)',
  ) as (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrlen: Uint32Array) => number,
};
export const CLONE_NEWNET = 0x40000000;
