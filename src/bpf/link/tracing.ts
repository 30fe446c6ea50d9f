// Tracing hooks: tracepoints, raw tracepoints, uprobes/uretprobes. kprobes and fentry/fexit are
// refused with an UnsupportedError when this kernel lacks them (see features.ts).

import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { Invalid, NotFound } from '../../errors.js';
import { BpfError, UnsupportedError } from '../errors.js';
import { lastErrno, type Pointer } from '../ffi/koffi.js';
import { libbpf, UPROBE_OPTS_SIZE } from '../ffi/libbpf.js';
import { captureLibbpfLog } from '../ffi/print.js';
import { ensureTracefs } from '../mounts.js';
import type { Program } from '../program.js';
import { resolveBinary } from './binary.js';
import { Link } from './link.js';

function needHandle(prog: Program, op: string): Pointer {
  const h = prog.handle;
  if (!h)
    throw new BpfError(op, prog.description, Invalid, {
      hint: 'only programs of an object opened in this process can attach here',
    });
  return h;
}

function fromLibbpf(ptr: Pointer | null, log: string[], what: string): Link {
  if (!ptr) throw new BpfError('attach', what, lastErrno() || constants.errno.EINVAL, { libbpfLog: log });
  return Link.fromLibbpf(ptr, `link of ${what}`);
}

/** Attaches to tracepoint "category/name" (e.g. "syscalls/sys_enter_openat"). */
export function attachTracepoint(prog: Program, tracepoint: string): Link {
  const [category, name] = tracepoint.split('/');
  const what = `${prog.description} to tracepoint ${tracepoint}`;
  if (!category || !name) throw new BpfError('attach', what, Invalid, { hint: 'expected CATEGORY/NAME' });
  ensureTracefs();
  if (!existsSync(`/sys/kernel/tracing/events/${category}/${name}`)) {
    throw new BpfError('attach', what, NotFound, {
      hint: 'no such tracepoint (see /sys/kernel/tracing/events)',
    });
  }
  const h = needHandle(prog, 'attach');
  const { result, log } = captureLibbpfLog(() => libbpf.programAttachTracepoint(h, category, name));
  return fromLibbpf(result, log, what);
}

/** Attaches to a raw tracepoint by name (e.g. "sched_switch"). */
export function attachRawTracepoint(prog: Program, name: string): Link {
  const h = needHandle(prog, 'attach');
  const { result, log } = captureLibbpfLog(() => libbpf.programAttachRawTracepoint(h, name));
  return fromLibbpf(result, log, `${prog.description} to raw tracepoint ${name}`);
}

export interface UprobeTarget {
  /** path of the ELF binary or shared library */
  binary: string;
  /** function symbol, or use offset */
  symbol?: string;
  offset?: number;
  /** only this process (-1 or omitted: every process) */
  pid?: number;
  retprobe?: boolean;
  cookie?: bigint;
  /** file offset of a USDT semaphore the kernel raises while the probe is attached */
  refCtrOffset?: number;
}

export function attachUprobe(prog: Program, target: UprobeTarget): Link {
  const kind = target.retprobe ? 'uretprobe' : 'uprobe';
  const what = `${prog.description} to ${kind} ${target.binary}:${target.symbol ?? `0x${(target.offset ?? 0).toString(16)}`}`;
  let binary: string;
  try {
    binary = resolveBinary(target.binary, target.pid);
  } catch (e) {
    throw new BpfError('attach', what, NotFound, { hint: (e as Error).message });
  }
  const h = needHandle(prog, 'attach');
  const opts = {
    sz: UPROBE_OPTS_SIZE,
    ref_ctr_offset: target.refCtrOffset ?? 0,
    bpf_cookie: target.cookie ?? 0n,
    retprobe: !!target.retprobe,
    func_name: target.symbol ?? null,
  };
  const { result, log } = captureLibbpfLog(() =>
    libbpf.programAttachUprobeOpts(h, target.pid ?? -1, binary, target.offset ?? 0, opts),
  );
  return fromLibbpf(result, log, what);
}

const KPROBE_SECTION = /^(kprobe|kretprobe|ksyscall|kretsyscall|kprobe\.multi|kretprobe\.multi)(\/|$)/;

function requireKprobes(what: string): void {
  if (!existsSync('/sys/bus/event_source/devices/kprobe')) {
    throw new UnsupportedError(
      'attach',
      what,
      'this kernel has no kprobes (CONFIG_KPROBES is off); use a tracepoint instead',
      'kprobes',
    );
  }
}

/** kprobes need CONFIG_KPROBES; refused cleanly when the kernel lacks them. */
export function attachKprobe(prog: Program, symbol: string, opts: { retprobe?: boolean } = {}): Link {
  const retprobe = opts.retprobe ?? prog.section.startsWith('kretprobe');
  const what = `${prog.description} to ${retprobe ? 'kretprobe' : 'kprobe'} ${symbol}`;
  requireKprobes(what);
  const h = needHandle(prog, 'attach');
  const { result, log } = captureLibbpfLog(() => libbpf.programAttachKprobe(h, retprobe, symbol));
  return fromLibbpf(result, log, what);
}

/** fentry/fexit/fmod_ret/lsm and other section-described attachments, through libbpf. */
export function attachAuto(prog: Program): Link {
  if (KPROBE_SECTION.test(prog.section)) requireKprobes(`${prog.description} (section ${prog.section})`);
  const h = needHandle(prog, 'attach');
  const { result, log } = captureLibbpfLog(() => libbpf.programAttach(h));
  return fromLibbpf(result, log, `${prog.description} (section ${prog.section})`);
}
