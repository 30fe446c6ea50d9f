// Loading raw instructions as a program (bpf_prog_load), without an ELF object: for programs made
// in memory (the user-space engine's differential fuzz against the kernel). Map references are
// `lddw` pseudo map fd loads with the map's fd in imm, as the kernel takes them.
import { constants } from 'node:os';
import { type ProgType, progType } from './constants.js';
import { BpfError, VerifierError } from './errors.js';
import { addressOf, koffi } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import { Program } from './program.js';

const OPTS_SIZE = 104; // struct bpf_prog_load_opts up to log_buf (libbpf 1.0)
const LOG_SIZE = 1 << 20;

export interface RawProgramOptions {
  name?: string;
  license?: string;
}

/** Loads `insns` (8 bytes each) as a program of `type`; a refusal is a VerifierError with the log. */
export function loadRawProgram(type: ProgType, insns: Uint8Array, opts: RawProgramOptions = {}): Program {
  if (insns.length % 8)
    throw new BpfError('load program', `"${opts.name ?? 'raw'}"`, constants.errno.EINVAL, {
      hint: 'instructions are 8 bytes each',
    });
  const raw = Buffer.alloc(OPTS_SIZE + 8);
  raw.writeBigUInt64LE(BigInt(OPTS_SIZE), 0);
  const load = (logLevel: number) => {
    const log = logLevel ? koffi.alloc('uint8_t', LOG_SIZE) : null;
    try {
      raw.writeUInt32LE(logLevel, 88);
      raw.writeUInt32LE(log ? LOG_SIZE : 0, 92);
      raw.writeBigUInt64LE(log ? addressOf(log) : 0n, 96);
      const fd = libbpf.progLoad(
        progType.value(type),
        opts.name ?? null,
        opts.license ?? 'GPL',
        insns,
        insns.length / 8,
        raw,
      );
      const text = log
        ? Buffer.from(koffi.view(log, LOG_SIZE))
            .toString('utf8')
            .replace(/\0[\s\S]*$/, '')
        : '';
      return { fd, text };
    } finally {
      if (log) koffi.free(log);
    }
  };
  const first = load(0);
  if (first.fd >= 0) return Program.fromFd(first.fd, 'raw');
  const again = load(1);
  if (again.fd >= 0) return Program.fromFd(again.fd, 'raw');
  throw new VerifierError('raw', opts.name ?? 'raw', -again.fd, again.text.split('\n'));
}
