// One running Wasm guest, seen from the agent: a child process (guest-main.ts) with its own V8
// heap limit, its linear memory capped in the module (memory-limit.ts), and a CPU budget checked
// here from /proc (at most cpuMs of CPU in any window of windowMs). A guest that exits, traps,
// runs out of its budget or is stopped ends with its process: the kernel releases what its fds
// held, and the map pins made for `kbpf maps` are removed here. Its stdout and stderr lines, and
// the host's refusals, go to `onRecord`, as the instance's log.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidError } from '../errors.js';
import type { GuestCapabilities } from '../package/package-spec.js';
import type { HostEvent } from './host.js';
import type { GuestEvent, GuestStart } from './protocol.js';

export const DEFAULT_LIMITS = { memoryMb: 128, cpuMs: 1000, windowMs: 2000, heapMb: 64 } as const;
const CPU_CHECK_MS = 100;
const MAX_LINE = 4096;
const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

export interface GuestOptions {
  name: string;
  args: string[];
  module: Uint8Array;
  capabilities: GuestCapabilities;
  limits?: { memoryMb?: number; cpuMs?: number; windowMs?: number; heapMb?: number };
  pinDir?: string;
  onRecord(record: { source: string; line: string }): void;
  onHostEvent?(e: HostEvent): void;
}

export interface GuestEnd {
  phase: 'stopped' | 'failed';
  message: string;
}

const MAIN = fileURLToPath(new URL('./guest-main.js', import.meta.url));

/** A guest process: node with the guest's heap limit, loading guest-main.js, waiting on stdin. */
function spawnGuestProcess(heapMb: number): ChildProcess {
  return spawn(process.execPath, ['--no-warnings', '--max-semi-space-size=1', `--max-old-space-size=${heapMb}`, MAIN], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
}

/**
 * One guest process started ahead of need, so that a guest starts in the time its module and
 * objects take, not in node's start-up and the loading of the runtime (koffi, libbpf): most of a
 * cold start. The spare has loaded guest-main.js and its imports and waits for its start request;
 * `start` hands it the guest and starts the next spare. Only guests with the default heap limit
 * use a spare (the heap limit is a flag of the process). A spare that dies is replaced on the
 * next start; one left when the agent goes sees its stdin close and exits.
 */
export class GuestSpares {
  #spare?: { child: ChildProcess; ready: Promise<boolean>; detach: () => void };
  #closed = false;

  constructor() {
    this.#refill();
  }

  /** Resolves when the spare has loaded its modules (true), or died (false). */
  ready(): Promise<boolean> {
    return this.#spare?.ready ?? Promise.resolve(false);
  }

  start(opts: GuestOptions, onSpare?: (used: boolean) => void): GuestProcess {
    const spare = this.#spare;
    const heapMb = opts.limits?.heapMb ?? DEFAULT_LIMITS.heapMb;
    const usable = spare && heapMb === DEFAULT_LIMITS.heapMb && spare.child.exitCode === null && !spare.child.killed;
    onSpare?.(!!usable);
    if (!usable) return new GuestProcess(opts);
    this.#spare = undefined;
    spare.detach(); // the guest's own reader takes the report stream over, still loading or not
    setImmediate(() => this.#refill());
    return new GuestProcess(opts, spare.child);
  }

  close(): void {
    this.#closed = true;
    this.#spare?.child.kill('SIGKILL');
    this.#spare = undefined;
  }

  #refill(): void {
    if (this.#closed || this.#spare) return;
    const child = spawnGuestProcess(DEFAULT_LIMITS.heapMb);
    child.stdin!.on('error', () => {});
    const report = child.stdio[3] as NodeJS.ReadableStream;
    let onData: (chunk: Buffer) => void = () => {};
    const ready = new Promise<boolean>((resolve) => {
      onData = (chunk: Buffer): void => {
        if (chunk.toString('utf8').includes('"waiting"')) {
          report.off('data', onData);
          report.pause();
          resolve(true);
        }
      };
      report.on('data', onData);
      child.on('exit', () => {
        if (this.#spare?.child === child) this.#spare = undefined;
        resolve(false);
      });
    });
    // a spare must not keep the agent's event loop alive
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr, report] as Array<{ unref?: () => void } | null>)
      s?.unref?.();
    this.#spare = { child, ready, detach: () => report.off('data', onData) };
  }
}

export class GuestProcess {
  readonly child: ChildProcess;
  readonly startedAt = performance.now();
  /** when the guest's first attach succeeded (ms since start), for the benchmark */
  firstAttachMs?: number;
  end?: GuestEnd;
  readonly exited: Promise<GuestEnd>;
  readonly started: Promise<void>;
  #stopping = false;
  #cpuSamples: { at: number; ticks: number }[] = [];
  #timer: NodeJS.Timeout;
  readonly limits: { memoryMb: number; cpuMs: number; windowMs: number; heapMb: number };

  /** `spare`: a guest process started ahead (GuestSpares), its modules loaded, waiting for its guest. */
  constructor(
    readonly opts: GuestOptions,
    spare?: ChildProcess,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...definedOnly(opts.limits ?? {}) };
    const start: GuestStart = {
      name: opts.name,
      args: opts.args,
      module: Buffer.from(opts.module).toString('base64'),
      capabilities: opts.capabilities,
      memoryMb: this.limits.memoryMb,
      pinDir: opts.pinDir,
      parentPid: process.pid,
    };
    this.child = spare ?? spawnGuestProcess(this.limits.heapMb);
    if (spare) {
      spare.ref();
      for (const st of [spare.stdin, spare.stdout, spare.stderr, spare.stdio[3]] as Array<{ ref?: () => void } | null>)
        st?.ref?.();
    }
    let resolveStarted!: () => void;
    let rejectStarted!: (e: Error) => void;
    this.started = new Promise((res, rej) => {
      resolveStarted = res;
      rejectStarted = rej;
    });
    this.started.catch(() => {});
    let failure: string | undefined;
    lines(this.child.stdio[3] as NodeJS.ReadableStream, (line) => {
      let e: GuestEvent | HostEvent;
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      switch (e.t) {
        case 'started':
          resolveStarted();
          break;
        case 'fatal':
          failure = e.message;
          rejectStarted(new InvalidError(e.message));
          break;
        case 'trap':
          failure = `the guest trapped: ${e.message}`;
          break;
        case 'exit':
          if (e.code !== 0) failure = `the guest exited with code ${e.code}`;
          break;
        case 'refused':
        case 'host':
          opts.onRecord({ source: e.t === 'refused' ? 'refused' : 'host', line: e.message });
          break;
        case 'attached':
          this.firstAttachMs ??= performance.now() - this.startedAt;
          break;
      }
      if (e.t === 'loaded' || e.t === 'attached' || e.t === 'closed') opts.onHostEvent?.(e);
    });
    lines(this.child.stdout!, (line) => opts.onRecord({ source: 'stdout', line }));
    lines(this.child.stderr!, (line) => opts.onRecord({ source: 'stderr', line }));
    this.child.stdin!.on('error', () => {});
    this.child.stdin!.end(JSON.stringify(start));
    this.#timer = setInterval(() => this.checkCpu(), CPU_CHECK_MS).unref();
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        clearInterval(this.#timer);
        if (opts.pinDir) rmSync(opts.pinDir, { recursive: true, force: true });
        let end: GuestEnd;
        if (this.end) end = this.end;
        else if (this.#stopping) end = { phase: 'stopped', message: 'the guest was stopped' };
        else if (failure) end = { phase: 'failed', message: failure };
        else if (code === 0) end = { phase: 'stopped', message: 'the guest exited (code 0)' };
        else if (signal) end = { phase: 'failed', message: `the guest's process was killed (${signal})` };
        else end = { phase: 'failed', message: `the guest exited with code ${code}` };
        this.end = end;
        rejectStarted(new InvalidError(`the guest ended before it started: ${end.message}`));
        resolve(end);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stops the guest (its process is killed; the kernel releases what it held). */
  async stop(): Promise<GuestEnd> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.#stopping = true;
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }

  /** CPU time of the guest's process, in ms (utime + stime). */
  cpuMs(): number | undefined {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
    } catch {
      return undefined;
    }
  }

  /** Resident memory of the guest's process, in MiB. */
  rssMb(): number | undefined {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  private checkCpu(): void {
    const ms = this.cpuMs();
    if (ms === undefined || this.end) return;
    const now = performance.now();
    const samples = this.#cpuSamples;
    samples.push({ at: now, ticks: ms });
    while (samples.length > 1 && now - samples[1]!.at >= this.limits.windowMs) samples.shift();
    const used = ms - samples[0]!.ticks;
    // before a whole window has passed, the budget counts from the start (node's own start included)
    if (used > this.limits.cpuMs) {
      this.end = {
        phase: 'failed',
        message: `the guest was stopped: it used ${used} ms of CPU within ${Math.round(Math.min(now - samples[0]!.at, this.limits.windowMs))} ms, over its budget of ${this.limits.cpuMs} ms per ${this.limits.windowMs} ms`,
      };
      this.opts.onRecord({ source: 'host', line: this.end.message });
      this.child.kill('SIGKILL');
    }
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Calls `fn` with each line of a stream (lines longer than MAX_LINE are cut). */
function lines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let i = rest.indexOf('\n');
    while (i >= 0) {
      fn(rest.slice(0, i).slice(0, MAX_LINE));
      rest = rest.slice(i + 1);
      i = rest.indexOf('\n');
    }
    if (rest.length > MAX_LINE * 4) {
      fn(rest.slice(0, MAX_LINE));
      rest = '';
    }
  });
  stream.on('end', () => {
    if (rest) fn(rest.slice(0, MAX_LINE));
    rest = '';
  });
  stream.on('error', () => {});
  stream.resume(); // a spare's report stream was paused when it said it was waiting
}
