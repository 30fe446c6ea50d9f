// The machine this runs on, as the kernel's interfaces need it: syscall numbers (bpf and
// perf_event_open have no libc wrapper) and the __TARGET_ARCH_* name that bpf_tracing.h uses to
// read registers in kprobes and uprobes. Derived from Node's process.arch, never assumed.
import { KbpfError, Unsupported } from '../errors.js';

interface ArchInfo {
  /** the suffix of libbpf's __TARGET_ARCH_ define */
  targetArch: string;
  sysBpf: number;
  sysPerfEventOpen: number;
}

// from each architecture's unistd tables (asm-generic for arm64, riscv64 and loongarch64)
const ARCHES: Record<string, ArchInfo> = {
  x64: { targetArch: 'x86', sysBpf: 321, sysPerfEventOpen: 298 },
  ia32: { targetArch: 'x86', sysBpf: 357, sysPerfEventOpen: 336 },
  arm64: { targetArch: 'arm64', sysBpf: 280, sysPerfEventOpen: 241 },
  arm: { targetArch: 'arm', sysBpf: 386, sysPerfEventOpen: 364 },
  riscv64: { targetArch: 'riscv', sysBpf: 280, sysPerfEventOpen: 241 },
  loong64: { targetArch: 'loongarch', sysBpf: 280, sysPerfEventOpen: 241 },
  s390x: { targetArch: 's390', sysBpf: 351, sysPerfEventOpen: 331 },
  ppc64: { targetArch: 'powerpc', sysBpf: 361, sysPerfEventOpen: 319 },
};

/** What kbpf needs to know of this machine's architecture; refused, naming it, where unknown. */
export function archInfo(arch: string = process.arch): ArchInfo {
  const info = ARCHES[arch];
  if (!info)
    throw new KbpfError(Unsupported, `architecture ${arch} is not supported`, {
      hint: `kbpf knows ${Object.keys(ARCHES).join(', ')}`,
    });
  return info;
}

/** The -D flag that tells bpf_tracing.h which architecture's registers programs read. */
export function targetArchDefine(arch: string = process.arch): string {
  return `__TARGET_ARCH_${archInfo(arch).targetArch}`;
}
