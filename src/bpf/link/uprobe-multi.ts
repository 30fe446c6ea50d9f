// uprobe.multi programs (Linux 6.6+): one link on every function of a binary whose name matches
// a glob ("malloc*", "*"), through BPF_LINK_CREATE with BPF_TRACE_UPROBE_MULTI — Debian's
// libbpf 1.1 predates both the section and the link, so the symbols are resolved here (the
// binary's .symtab and .dynsym, function symbols only, each name once) into file offsets.

import { readFileSync } from 'node:fs';
import { Invalid, NotFound } from '../../errors.js';
import { archInfo } from '../arch.js';
import { readElfSegments, readElfSymbols } from '../btf/elf.js';
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { addressOf, koffi, lastErrno } from '../ffi/koffi.js';
import { libc } from '../ffi/libc.js';
import type { Program } from '../program.js';
import { resolveBinary } from './binary.js';
import { Link } from './link.js';

const BPF_LINK_CREATE = 28;
const ATTR_SIZE = 64;
const BPF_F_UPROBE_MULTI_RETURN = 1;
/** Most functions one link takes (the kernel's MAX_UPROBE_MULTI_CNT is larger; this bounds memory). */
const MAX_FUNCTIONS = 1 << 16;

export interface UprobeMultiTarget {
  binary: string;
  /** a glob over function names: `*` any run, `?` one character */
  pattern: string;
  retprobe?: boolean;
  /** a session (uprobe.session): the program runs at entry and, unless it returned non-zero there, at return */
  session?: boolean;
  pid?: number;
}

function globRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** File offsets of the binary's functions matching `pattern`, by name. */
export function functionOffsets(buf: Uint8Array, pattern: string): Map<string, number> {
  const { segments } = readElfSegments(buf);
  const re = globRegExp(pattern);
  const out = new Map<string, number>();
  for (const table of ['symtab', 'dynsym'] as const)
    for (const sym of readElfSymbols(buf, table)) {
      // FUNC and GNU_IFUNC (10), defined here
      if ((sym.type !== 'FUNC' && sym.type !== 'OTHER(10)') || sym.sectionIndex === 0 || !sym.value) continue;
      const name = sym.name.replace(/@.*$/, '');
      if (out.has(name) || !re.test(name)) continue;
      const seg = segments.find((s) => s.executable && s.vaddr <= sym.value && sym.value < s.vaddr + s.memsz);
      if (seg) out.set(name, sym.value - seg.vaddr + seg.offset);
    }
  return out;
}

/** Attaches a uprobe.multi program to every function of `target.binary` matching the pattern. */
export function attachUprobeMulti(prog: Program, target: UprobeMultiTarget): { link: Link; functions: number } {
  const kind = target.retprobe ? 'uretprobe.multi' : 'uprobe.multi';
  const what = `${prog.description} to ${kind} ${target.binary}:${target.pattern}`;
  let binary: string;
  let offsets: Map<string, number>;
  try {
    binary = resolveBinary(target.binary, target.pid);
    offsets = functionOffsets(readFileSync(binary), target.pattern);
  } catch (e) {
    throw new BpfError('attach', what, NotFound, { hint: (e as Error).message, cause: e });
  }
  if (offsets.size === 0)
    throw new BpfError('attach', what, NotFound, { hint: `no function of ${binary} matches ${target.pattern}` });
  if (offsets.size > MAX_FUNCTIONS)
    throw new BpfError('attach', what, Invalid, {
      hint: `${offsets.size} functions match; at most ${MAX_FUNCTIONS} in one link`,
    });
  const n = offsets.size;
  const path = Buffer.from(`${binary}\0`);
  const pathMem = koffi.alloc('uint8_t', path.length);
  const offMem = koffi.alloc('uint64_t', n);
  try {
    new Uint8Array(koffi.view(pathMem, path.length)).set(path);
    const offs = new BigUint64Array(koffi.view(offMem, n * 8));
    [...offsets.values()].forEach((o, i) => {
      offs[i] = BigInt(o);
    });
    const attr = Buffer.alloc(ATTR_SIZE);
    attr.writeUInt32LE(prog.fd, 0);
    attr.writeUInt32LE(attachType.value(target.session ? 'trace_uprobe_session' : 'trace_uprobe_multi'), 8);
    attr.writeBigUInt64LE(addressOf(pathMem), 16);
    attr.writeBigUInt64LE(addressOf(offMem), 24);
    attr.writeUInt32LE(n, 48);
    attr.writeUInt32LE(target.retprobe ? BPF_F_UPROBE_MULTI_RETURN : 0, 52);
    attr.writeUInt32LE(target.pid && target.pid > 0 ? target.pid : 0, 56);
    const fd = Number(libc.bpf(archInfo().sysBpf, BPF_LINK_CREATE, attr, ATTR_SIZE));
    if (fd < 0) throw new BpfError('attach', what, lastErrno());
    return { link: new Link(fd, `link of ${what} (${n} functions)`), functions: n };
  } finally {
    koffi.free(pathMem);
    koffi.free(offMem);
  }
}
