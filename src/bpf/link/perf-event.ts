// perf_event programs: a sampling event opened on every online CPU (perf_event_open, any
// process), each with the program attached through a BPF link the kernel can pin. A hardware
// event the machine has no PMU for (ENOENT, as in most VMs) falls back to the software
// cpu-clock when the caller allows it, and says so.

import { constants } from 'node:os';
import { Invalid } from '../../errors.js';
import { archInfo } from '../arch.js';
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { libc } from '../ffi/libc.js';
import { onlineCpus } from '../hook-support.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

const PERF_TYPE_HARDWARE = 0;
const PERF_TYPE_SOFTWARE = 1;
const PERF_FLAG_FD_CLOEXEC = 8;
const ATTR_SIZE = 128;
const FREQ_BIT = 1n << 10n;

/** perf's event names (as `perf list` spells them) and their type and config. */
export const PERF_EVENTS: Record<string, { type: number; config: number }> = {
  'cpu-clock': { type: PERF_TYPE_SOFTWARE, config: 0 },
  'task-clock': { type: PERF_TYPE_SOFTWARE, config: 1 },
  'page-faults': { type: PERF_TYPE_SOFTWARE, config: 2 },
  'context-switches': { type: PERF_TYPE_SOFTWARE, config: 3 },
  'cpu-migrations': { type: PERF_TYPE_SOFTWARE, config: 4 },
  'minor-faults': { type: PERF_TYPE_SOFTWARE, config: 5 },
  'major-faults': { type: PERF_TYPE_SOFTWARE, config: 6 },
  cycles: { type: PERF_TYPE_HARDWARE, config: 0 },
  'cpu-cycles': { type: PERF_TYPE_HARDWARE, config: 0 },
  instructions: { type: PERF_TYPE_HARDWARE, config: 1 },
  'cache-references': { type: PERF_TYPE_HARDWARE, config: 2 },
  'cache-misses': { type: PERF_TYPE_HARDWARE, config: 3 },
  branches: { type: PERF_TYPE_HARDWARE, config: 4 },
  'branch-misses': { type: PERF_TYPE_HARDWARE, config: 5 },
  'bus-cycles': { type: PERF_TYPE_HARDWARE, config: 6 },
  'ref-cycles': { type: PERF_TYPE_HARDWARE, config: 9 },
};

export const DEFAULT_PERF_EVENT = 'cpu-clock';
export const DEFAULT_PERF_FREQUENCY = 99;

export interface PerfEventOptions {
  /** a name of PERF_EVENTS (default cpu-clock) */
  event?: string;
  /** samples per second per CPU (default 99) */
  frequency?: number;
  /** fall back to cpu-clock when the event cannot be opened here (default true) */
  fallback?: boolean;
  cpus?: number[];
}

export interface PerfEventLinks {
  /** one per CPU, in the order of `cpus` */
  links: Link[];
  cpus: number[];
  /** the event that was opened */
  event: string;
  /** set when it fell back to the software clock */
  warning?: string;
}

/** Opens one sampling event on one CPU (every process); returns its fd. */
function openEvent(event: string, frequency: number, cpu: number): number {
  const e = PERF_EVENTS[event]!;
  const attr = Buffer.alloc(ATTR_SIZE);
  attr.writeUInt32LE(e.type, 0);
  attr.writeUInt32LE(ATTR_SIZE, 4);
  attr.writeBigUInt64LE(BigInt(e.config), 8);
  attr.writeBigUInt64LE(BigInt(frequency), 16); // sample_freq (freq bit set)
  attr.writeBigUInt64LE(FREQ_BIT, 40);
  const fd = Number(libc.perfEventOpen(archInfo().sysPerfEventOpen, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
  if (fd < 0) throw new BpfError('open perf event', `${event} on CPU ${cpu}`, lastErrno() || constants.errno.EINVAL);
  return fd;
}

function attachOne(prog: Program, event: string, frequency: number, cpu: number): Link {
  const pfd = openEvent(event, frequency, cpu);
  try {
    const fd = libbpf.linkCreate(prog.fd, pfd, attachType.value('perf_event'), null);
    if (fd < 0) throw new BpfError('attach', `${prog.description} to perf event ${event} on CPU ${cpu}`, -fd);
    // the link holds the event: the event's own fd can go
    return new Link(fd, `link of ${prog.description} to perf event ${event} on CPU ${cpu}`);
  } finally {
    libc.close(pfd);
  }
}

/** Attaches a perf_event program to a sampling event on every online CPU. */
export function attachPerfEvent(prog: Program, opts: PerfEventOptions = {}): PerfEventLinks {
  let event = opts.event ?? DEFAULT_PERF_EVENT;
  const frequency = opts.frequency ?? DEFAULT_PERF_FREQUENCY;
  if (!PERF_EVENTS[event])
    throw new BpfError('attach', `${prog.description} to perf event ${event}`, Invalid, {
      hint: `known events: ${Object.keys(PERF_EVENTS).join(', ')}`,
    });
  const cpus = opts.cpus ?? onlineCpus();
  const links: Link[] = [];
  let warning: string | undefined;
  try {
    for (const cpu of cpus) {
      try {
        links.push(attachOne(prog, event, frequency, cpu));
      } catch (e) {
        const noPmu =
          e instanceof BpfError &&
          (e.errno === constants.errno.ENOENT || e.errno === constants.errno.EOPNOTSUPP) &&
          PERF_EVENTS[event]!.type === PERF_TYPE_HARDWARE;
        if (!noPmu || opts.fallback === false || links.length) throw e;
        warning = `perf event ${event} cannot be opened here (${e.code}: no hardware PMU); sampling ${DEFAULT_PERF_EVENT} instead`;
        event = DEFAULT_PERF_EVENT;
        links.push(attachOne(prog, event, frequency, cpu));
      }
    }
  } catch (e) {
    for (const l of links) l.close();
    throw e;
  }
  return { links, cpus, event, warning };
}
