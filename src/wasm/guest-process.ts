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

  constructor(readonly opts: GuestOptions) {
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
    this.child = spawn(process.execPath, ['--no-warnings', `--max-old-space-size=${this.limits.heapMb}`, MAIN], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
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
}
