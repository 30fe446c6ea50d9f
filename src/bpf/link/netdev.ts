// Interface name -> ifindex in the calling thread's network namespace, and running a function
// inside another network namespace (links to an interface resolve it in the caller's namespace).
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { CLONE_NEWNET, netlibc } from '../ffi/libc.js';

export function ifindexOf(iface: string | number): number {
  if (typeof iface === 'number') return iface;
  const idx = netlibc.ifNametoindex(iface);
  if (!idx)
    throw new BpfError('find interface', iface, constants.errno.ENODEV, {
      hint: 'no such network interface in this network namespace',
    });
  return idx;
}

/**
 * Runs fn with the calling (JS) thread inside a network namespace: a name under /run/netns
 * (as `ip netns add` makes) or a path such as /proc/PID/ns/net. Synchronous work only.
 */
export function inNetns<T>(netns: string, fn: () => T): T {
  const path = netns.includes('/') ? netns : `/run/netns/${netns}`;
  const self = openSync(`/proc/self/task/${netlibc.gettid()}/ns/net`, 'r');
  let target: number;
  try {
    target = openSync(path, 'r');
  } catch {
    closeSync(self);
    throw new BpfError('enter network namespace', path, constants.errno.ENOENT);
  }
  try {
    if (netlibc.setns(target, CLONE_NEWNET) !== 0) throw new BpfError('enter network namespace', path, lastErrno());
    try {
      return fn();
    } finally {
      if (netlibc.setns(self, CLONE_NEWNET) !== 0) {
        // biome-ignore lint/correctness/noUnsafeFinally: a thread left in the wrong namespace must fail loudly, over fn's result or error
        throw new BpfError('return from network namespace', path, lastErrno());
      }
    }
  } finally {
    closeSync(target);
    closeSync(self);
  }
}
