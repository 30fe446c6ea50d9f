// libbpf prints warnings through a callback; we install one that records the messages of the
// operation in progress so errors can quote them (instead of letting libbpf write to stderr).
import { koffi, type Pointer } from './koffi.js';
import { libbpf, PrintFn } from './libbpf.js';
import { libc } from './libc.js';

const LEVEL_WARN = 0;
const LEVEL_INFO = 1;
const buf = new Uint8Array(8192);
let current: string[] | null = null;
let debug = process.env.KBPF_LIBBPF_DEBUG === '1';
let installed: Pointer | null = null;

function onPrint(level: number, fmt: string, ap: Pointer): number {
  if (level > LEVEL_INFO && !debug) return 0;
  const n = libc.vsnprintf(buf, buf.length, fmt, ap);
  const text = Buffer.from(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1)))).toString('utf8');
  for (const line of text.split('\n')) {
    if (!line) continue;
    if (current) current.push(line);
    if (debug) process.stderr.write(`${line}\n`);
    else if (!current && level === LEVEL_WARN) process.stderr.write(`${line}\n`);
  }
  return 0;
}

export function installPrintHandler(): void {
  if (installed) return;
  installed = koffi.register(onPrint, koffi.pointer(PrintFn));
  libbpf.setPrint(installed);
}

/** Runs fn and returns its result together with libbpf's messages printed meanwhile. */
export function captureLibbpfLog<T>(fn: () => T): { result: T; log: string[] } {
  installPrintHandler();
  const outer = current;
  const log: string[] = [];
  current = log;
  try {
    return { result: fn(), log };
  } finally {
    current = outer;
    if (outer) outer.push(...log);
  }
}

export function setLibbpfDebug(on: boolean): void {
  debug = on;
}
