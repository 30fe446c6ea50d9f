// BPF iterators (iter/task, iter/bpf_map, …): attached as a link, then read — each read of a
// new iterator fd runs the program over the kernel objects and returns what it printed
// (BPF_SEQ_PRINTF, bpf_seq_write).

import { closeSync, readSync } from 'node:fs';
import { constants } from 'node:os';
import { Invalid } from '../../errors.js';
import { BpfError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { captureLibbpfLog } from '../ffi/print.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

/** Attaches an iterator program (its section names the kind of kernel object it walks). */
export function attachIter(prog: Program): Link {
  const h = prog.handle;
  const what = `${prog.description} (section ${prog.section})`;
  if (!h) throw new BpfError('attach', what, Invalid, { hint: 'only programs of an object opened in this process' });
  const { result, log } = captureLibbpfLog(() => libbpf.programAttachIter(h, null));
  if (!result) throw new BpfError('attach', what, lastErrno() || constants.errno.EINVAL, { libbpfLog: log });
  return Link.fromLibbpf(result, `iterator link of ${what}`);
}

/**
 * Runs the iterator of `link` once and returns what it wrote as text, at most `limit` bytes (the
 * rest is cut, and the text says so).
 */
export function readIter(link: Link, limit = 4 << 20): string {
  const { bytes, cut } = readIterBytes(link, limit);
  return bytes.toString('utf8') + (cut ? `\n… (cut at ${limit} bytes)\n` : '');
}

/** Runs the iterator of `link` once and returns the bytes it wrote, at most `limit` (cut: there were more). */
export function readIterBytes(link: Link, limit = 4 << 20): { bytes: Buffer; cut: boolean } {
  const fd = libbpf.iterCreate(link.fd);
  if (fd < 0) throw new BpfError('create iterator', link.description, -fd);
  const chunks: Buffer[] = [];
  let total = 0;
  let cut = false;
  try {
    const buf = Buffer.alloc(64 << 10);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') continue;
        throw new BpfError('read iterator', link.description, constants.errno[code as 'EIO'] ?? constants.errno.EIO);
      }
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
      total += n;
      if (total >= limit) {
        cut = true;
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { bytes: Buffer.concat(chunks).subarray(0, limit), cut };
}
