// Hooks of a network namespace: sk_lookup (which socket takes a connection) and
// flow_dissector (how packets are parsed), attached to the namespace as a BPF link.

import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { Invalid } from '../../errors.js';
import { BpfError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { captureLibbpfLog } from '../ffi/print.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

/** Attaches to the network namespace at `netnsPath` (default: this process's). */
export function attachNetns(prog: Program, netnsPath = '/proc/self/ns/net'): Link {
  const what = `${prog.description} to network namespace ${netnsPath}`;
  const h = prog.handle;
  if (!h) throw new BpfError('attach', what, Invalid, { hint: 'only programs of an object opened in this process' });
  let fd: number;
  try {
    fd = openSync(netnsPath, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new BpfError('attach', what, constants.errno[code as 'EIO'] ?? constants.errno.EIO, {
      hint: 'cannot open the namespace (a path like /proc/PID/ns/net or /run/netns/NAME)',
    });
  }
  try {
    const { result, log } = captureLibbpfLog(() => libbpf.programAttachNetns(h, fd));
    if (!result) throw new BpfError('attach', what, lastErrno() || constants.errno.EINVAL, { libbpfLog: log });
    return Link.fromLibbpf(result, `link of ${what}`);
  } finally {
    closeSync(fd);
  }
}
