// A guest process must not outlive the agent that started it: PR_SET_PDEATHSIG makes the kernel
// kill it (SIGKILL) when its parent dies, whatever the guest is doing (a guest that loops never
// returns to JavaScript to notice). Its kernel objects are held by its fds, so they go with it.
import { createRequire } from 'node:module';

const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;

/** Asks the kernel to kill this process when its parent dies; exits now if the parent is gone already. */
export function dieWithParent(parentPid: number): void {
  const require = createRequire(import.meta.url);
  // biome-ignore lint/suspicious/noExplicitAny: koffi ships no types that fit a one-off binding
  const koffi: any = require('koffi');
  const prctl = koffi
    .load('libc.so.6')
    .func('int prctl(int option, unsigned long a, unsigned long b, unsigned long c, unsigned long d)');
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (process.ppid !== parentPid) process.exit(137);
}
