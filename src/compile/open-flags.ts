// open(2)'s flags as names, for event fields that hold them (opensnoop's `flags`): they are
// #defines in the UAPI headers, not an enum, so no BTF has them. Values from asm-generic/fcntl.h;
// arm64 moves four of them (arch/arm64/include/uapi/asm/fcntl.h). O_RDONLY is 0: a value with no
// access-mode bit reads as O_RDONLY alone only when nothing else is set.

const GENERIC: [string, number][] = [
  ['O_RDONLY', 0],
  ['O_WRONLY', 0o1],
  ['O_RDWR', 0o2],
  ['O_CREAT', 0o100],
  ['O_EXCL', 0o200],
  ['O_NOCTTY', 0o400],
  ['O_TRUNC', 0o1000],
  ['O_APPEND', 0o2000],
  ['O_NONBLOCK', 0o4000],
  ['O_DSYNC', 0o10000],
  ['O_ASYNC', 0o20000],
  ['O_DIRECT', 0o40000],
  ['O_LARGEFILE', 0o100000],
  ['O_DIRECTORY', 0o200000],
  ['O_NOFOLLOW', 0o400000],
  ['O_NOATIME', 0o1000000],
  ['O_CLOEXEC', 0o2000000],
  // O_SYNC is __O_SYNC | O_DSYNC; __O_TMPFILE is O_TMPFILE without O_DIRECTORY
  ['O_SYNC', 0o4000000],
  ['O_PATH', 0o10000000],
  ['O_TMPFILE', 0o20000000],
];

const ARM64: Record<string, number> = {
  O_DIRECTORY: 0o40000,
  O_NOFOLLOW: 0o100000,
  O_DIRECT: 0o200000,
  O_LARGEFILE: 0o400000,
};

/** open(2)'s flag names and values on `arch` (Node's process.arch names). */
export function openFlags(arch: string = process.arch): [string, number][] {
  if (arch !== 'arm64') return GENERIC.map(([n, v]) => [n, v]);
  return GENERIC.map(([n, v]) => [n, ARM64[n] ?? v]);
}
