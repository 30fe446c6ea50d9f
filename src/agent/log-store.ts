// The bounded per-instance event log. Each instance has a directory with one JSON line per record:
//
//   <dir>/<instance>/events.jsonl      the newest records
//   <dir>/<instance>/events.jsonl.1    older ... events.jsonl.<keep> the oldest kept
//
// Every record is `{"ts": ISO time, "seq": n, ...record}`; `seq` counts per instance from 1 and
// keeps counting across agent restarts (it is recovered from the newest line on disk). A file is
// rotated before it would grow past `maxBytes`, and at most `keep` rotated files are kept, so an
// instance never uses more than (keep + 1) * maxBytes of disk, however chatty its program is.
//
// Writes are batched: append() only queues the line in memory (cheap enough for 100k events/s);
// the queue is written with one write per instance at least every `flushMs` (100 ms), as soon as
// it holds `maxPendingBytes`, and on close(). Readers see queued records too. The queue holds
// text, not records: what is read from it is parsed when it is read, as it is from the files.
//
// appendLines() queues lines made elsewhere — the event pump writes its records' JSON straight
// from the ring's bytes — framed with the head that lineHead() gives (ts, then the seq of the
// batch's first line), so the file holds the same lines either way.
//
// follow() yields what is there, then new records as they come: append() wakes followers in the
// same process at once, and a poll of the files (default every 250 ms) also picks up records
// written by another process, across rotations (a follower remembers the inode and offset it
// has read up to, and finds that file again after it was renamed to events.jsonl.N).

import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConflictError, InvalidError } from '../errors.js';

export interface LogRecord {
  ts: string;
  seq: number;
  [key: string]: unknown;
}

export interface LogStoreOptions {
  /** Rotate a file before it passes this size. Default 4 MiB. */
  maxBytes?: number;
  /** Rotated files kept (events.jsonl.1 .. .keep). Default 2. */
  keep?: number;
  /** Longest time a record stays queued in memory. Default 100 ms. */
  flushMs?: number;
  /** Write at once when this much is queued for one instance. Default 1 MiB. */
  maxPendingBytes?: number;
  /** How often followers look at the files for records another process wrote. Default 250 ms. */
  pollMs?: number;
  /** Most a follower reads from the files at once (its memory does not grow with the files). Default 1 MiB. */
  readChunkBytes?: number;
}

/** One instance's log size (its package's kbpf.yaml `logs:`, run --log-size): the store's defaults where unset. */
export interface InstanceLogLimits {
  maxBytes?: number;
  keep?: number;
}

export interface ReadOptions {
  /** Only records with ts at or after this time. */
  since?: Date;
  /** Only the last N records (after `since`). */
  tail?: number;
}

const FILE = 'events.jsonl';
const INSTANCE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/;

/** JSON.stringify replacer: bigints as numbers when exact, else decimal strings; bytes as hex. */
export function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint')
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  // Buffer.prototype.toJSON runs before the replacer sees the value
  if (
    v &&
    typeof v === 'object' &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data) &&
    Object.keys(v).length === 2
  ) {
    return Buffer.from((v as { data: number[] }).data).toString('hex');
  }
  return v;
}

/** True when JSON.stringify needs no replacer for `v` (no bigint, no byte array). */
function plainJson(v: unknown, depth = 0): boolean {
  if (v === null || typeof v !== 'object') return typeof v !== 'bigint';
  if (ArrayBuffer.isView(v) || depth > 16) return false;
  if (Array.isArray(v)) {
    for (const x of v) if (!plainJson(x, depth + 1)) return false;
    return true;
  }
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  for (const k in v) if (!plainJson((v as Record<string, unknown>)[k], depth + 1)) return false;
  return true;
}

/** Text queued for one instance: one line (append) or a batch of lines (appendLines), each ending in \n. */
interface Pending {
  text: string | Uint8Array;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
}

/** The start of the next lines of an instance: `{"ts":"<now>","seq":` and the seq of the first. */
export interface LineHead {
  head: Uint8Array;
  seq: number;
}

/** Per-instance writer state. */
interface Writer {
  dir: string;
  /** rotate before a file passes this size */
  maxBytes: number;
  /** rotated files kept */
  keep: number;
  fd?: number;
  /** size of events.jsonl as written by us */
  size: number;
  seq: number;
  pending: Pending[];
  pendingBytes: number;
  /** resolves waiting followers */
  wake: Set<() => void>;
  /** the last write error reported */
  lastError?: string;
}

/** Where a follower has read up to in the files. */
interface Cursor {
  ino: number;
  offset: number;
}

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOENT';
}

const SEQ_PREFIX_RE = /^\{"ts":"[^"]*","seq":(\d+)[,}]/;

/** Parses JSON lines; with `afterSeq`, lines we wrote (ts, seq first) at or before it are skipped unparsed. */
function parseLines(text: string, into: LogRecord[], afterSeq?: number): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (afterSeq !== undefined && end > start) {
      const m = SEQ_PREFIX_RE.exec(text.slice(start, Math.min(end, start + 64)));
      if (m && Number(m[1]) <= afterSeq) {
        start = end + 1;
        continue;
      }
    }
    if (end > start) {
      try {
        const r = JSON.parse(text.slice(start, end)) as LogRecord;
        if (r && typeof r === 'object' && typeof r.seq === 'number') into.push(r);
      } catch {
        // a torn line (crash mid-write): skip it
      }
    }
    start = end + 1;
  }
}

/** The seq of one of our lines (ts, seq first), without parsing it; undefined for another line. */
function lineSeq(text: string, start: number, end: number): number | undefined {
  const m = SEQ_PREFIX_RE.exec(text.slice(start, Math.min(end, start + 64)));
  if (m) return Number(m[1]);
  try {
    const r = JSON.parse(text.slice(start, end)) as LogRecord;
    return r && typeof r === 'object' && typeof r.seq === 'number' ? r.seq : undefined;
  } catch {
    return undefined; // a torn line
  }
}

/**
 * The lines of `text` after seq `afterSeq`, as they are (not parsed), into `into` (each with its
 * \n); returns the seq of the last. Lines are in seq order (one file, or the queue), so once one
 * is newer the rest of the text is taken whole.
 */
function rawLines(text: string, into: string[], afterSeq: number): number {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const seq = end > start ? lineSeq(text, start, end) : undefined;
    if (seq !== undefined && seq > afterSeq) break;
    start = end + 1;
  }
  if (start >= text.length) return afterSeq;
  const rest = text.endsWith('\n') ? text.slice(start) : `${text.slice(start)}\n`;
  const lastStart = rest.lastIndexOf('\n', rest.length - 2) + 1;
  const last = lineSeq(rest, lastStart, rest.length - 1);
  if (last === undefined) {
    // a foreign or torn last line: line by line
    const recs: LogRecord[] = [];
    parseLines(rest, recs, afterSeq);
    for (const r of recs) if (r.seq > afterSeq) into.push(`${JSON.stringify(r)}\n`);
    return recs.length > 0 ? Math.max(afterSeq, recs[recs.length - 1]!.seq) : afterSeq;
  }
  into.push(rest);
  return last;
}

/** The last `n` lines of `text` (whole lines ending in \n); `whole`: text starts at a line's start. */
function lastLines(text: string, n: number, whole: boolean): string {
  let start = text.length;
  for (let k = 0; k < n; k++) {
    const j = text.lastIndexOf('\n', start - 2);
    if (j < 0) return whole ? text : text.slice(text.indexOf('\n') + 1);
    start = j + 1;
  }
  return text.slice(start);
}

function pendingText(p: Pending): string {
  const t = p.text;
  return typeof t === 'string' ? t : Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('utf8');
}

/** The queued text as one buffer (the batch itself when there is only one). */
function joinPending(pending: Pending[]): Uint8Array {
  if (pending.length === 1 && typeof pending[0]!.text !== 'string') return pending[0]!.text;
  let total = 0;
  for (const p of pending) total += p.bytes;
  const buf = Buffer.allocUnsafe(total);
  let off = 0;
  for (const p of pending) {
    if (typeof p.text === 'string') off += buf.write(p.text, off);
    else {
      buf.set(p.text, off);
      off += p.bytes;
    }
  }
  return off === total ? buf : buf.subarray(0, off);
}

export class LogStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly keep: number;
  readonly flushMs: number;
  readonly maxPendingBytes: number;
  readonly pollMs: number;
  readonly readChunkBytes: number;
  readonly #writers = new Map<string, Writer>();
  /** sizes set per instance (setLimits) */
  readonly #limits = new Map<string, { maxBytes: number; keep: number }>();
  #timer?: NodeJS.Timeout;
  #lastMs = 0;
  #lastIso = '';
  #headMs = 0;
  #head: Uint8Array = new Uint8Array(0);
  #closed = false;
  /** abort controllers of running follow() calls, ended by close() */
  readonly #followers = new Set<() => void>();

  constructor(dir: string, opts: LogStoreOptions = {}) {
    this.dir = dir;
    this.maxBytes = Math.max(1024, opts.maxBytes ?? 4 * 1024 * 1024);
    this.keep = Math.max(0, Math.floor(opts.keep ?? 2));
    this.flushMs = opts.flushMs ?? 100;
    this.maxPendingBytes = opts.maxPendingBytes ?? 1024 * 1024;
    this.pollMs = opts.pollMs ?? 250;
    this.readChunkBytes = Math.max(4096, opts.readChunkBytes ?? 1024 * 1024);
  }

  /**
   * Sets the size of one instance's log (undefined members: the store's defaults): files of at
   * most `maxBytes`, `keep` rotated ones. It applies from the next write; call it before the
   * instance's first records (the agent does when it creates or restarts the instance).
   */
  setLimits(instance: string, limits: InstanceLogLimits = {}): void {
    this.instanceDir(instance);
    const l = {
      maxBytes: Math.max(1024, Math.floor(limits.maxBytes ?? this.maxBytes)),
      keep: Math.max(0, Math.floor(limits.keep ?? this.keep)),
    };
    if (l.maxBytes === this.maxBytes && l.keep === this.keep) this.#limits.delete(instance);
    else this.#limits.set(instance, l);
    const w = this.#writers.get(instance);
    if (w) {
      w.maxBytes = l.maxBytes;
      w.keep = l.keep;
    }
  }

  /** The size of an instance's log: what setLimits() said, else the store's defaults. */
  limits(instance: string): { maxBytes: number; keep: number } {
    return this.#limits.get(instance) ?? { maxBytes: this.maxBytes, keep: this.keep };
  }

  private instanceDir(instance: string): string {
    if (!INSTANCE_RE.test(instance) || instance === '.' || instance === '..') {
      throw new InvalidError(`invalid instance name for a log: ${JSON.stringify(instance)}`);
    }
    return join(this.dir, instance);
  }

  /** events.jsonl, events.jsonl.1, ... newest first. */
  private files(dir: string, keep: number): string[] {
    const out = [join(dir, FILE)];
    for (let i = 1; i <= keep; i++) out.push(join(dir, `${FILE}.${i}`));
    return out;
  }

  private writer(instance: string): Writer {
    let w = this.#writers.get(instance);
    if (!w) {
      const dir = this.instanceDir(instance);
      const { maxBytes, keep } = this.limits(instance);
      w = {
        dir,
        maxBytes,
        keep,
        size: 0,
        seq: this.lastSeqOnDisk(dir, keep),
        pending: [],
        pendingBytes: 0,
        wake: new Set(),
      };
      this.#writers.set(instance, w);
    }
    return w;
  }

  /** The seq of the newest complete record on disk (0 when there is none). */
  private lastSeqOnDisk(dir: string, keep: number): number {
    for (const file of this.files(dir, keep)) {
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      try {
        const size = fstatSync(fd).size;
        let chunk = 64 * 1024;
        while (size > 0) {
          const len = Math.min(size, chunk);
          const buf = Buffer.alloc(len);
          readSync(fd, buf, 0, len, size - len);
          const recs: LogRecord[] = [];
          parseLines(buf.toString('utf8'), recs);
          // the first line of a partial chunk may be cut: only trust it when the chunk is the file
          const usable = len === size ? recs : recs.slice(1);
          if (usable.length > 0) return usable[usable.length - 1]!.seq;
          if (len === size) break;
          chunk *= 4;
        }
      } finally {
        closeSync(fd);
      }
    }
    return 0;
  }

  private isoNow(): string {
    const now = Date.now();
    if (now !== this.#lastMs) {
      this.#lastMs = now;
      this.#lastIso = new Date(now).toISOString();
    }
    return this.#lastIso;
  }

  /** Queues one record; it is on disk within flushMs. Never throws for I/O (that is reported at flush). */
  append(instance: string, record: object): LogRecord {
    if (this.#closed) throw new InvalidError('the log store is closed');
    const w = this.writer(instance);
    const ts = this.isoNow();
    const seq = ++w.seq;
    // ts and seq come first and are ours, whatever the record says
    let rec = { ts, seq, ...record } as LogRecord;
    rec.ts = ts;
    rec.seq = seq;
    let line: string;
    try {
      if (plainJson(record)) {
        line = `${JSON.stringify(rec)}\n`;
      } else {
        // readers get what the file will hold: bigints and bytes converted
        line = `${JSON.stringify(rec, jsonReplacer)}\n`;
        rec = JSON.parse(line) as LogRecord;
      }
    } catch (e) {
      rec = { ts, seq, error: `unserialisable record: ${(e as Error).message}` };
      line = `${JSON.stringify(rec)}\n`;
    }
    this.queue(instance, w, { text: line, bytes: Buffer.byteLength(line), firstSeq: seq, lastSeq: seq });
    return rec;
  }

  /**
   * How the next lines of `instance` start: each line given to appendLines() is `head`, its seq
   * (`seq` for the first, counting up), then the rest of the record's members and `}\n`:
   * `{"ts":"2026-12-01T10:00:00.000Z","seq":` `41` `,"source":"events","event":{...}}\n`.
   */
  lineHead(instance: string): LineHead {
    if (this.#closed) throw new InvalidError('the log store is closed');
    const w = this.writer(instance);
    const iso = this.isoNow();
    if (this.#headMs !== this.#lastMs || this.#head.length === 0) {
      this.#headMs = this.#lastMs;
      this.#head = new Uint8Array(Buffer.from(`{"ts":${JSON.stringify(iso)},"seq":`));
    }
    return { head: this.#head, seq: w.seq + 1 };
  }

  /**
   * Adds `count` ready-made JSON lines, framed as lineHead() said, starting at seq `firstSeq`.
   * Like append(), they are on disk within flushMs, or at flushNow(); with `durable`, at once
   * (as append + flushNow; written straight from `lines` when nothing else is queued). The
   * bytes are the caller's again when it returns.
   */
  appendLines(instance: string, lines: Uint8Array, count: number, firstSeq: number, durable = false): void {
    if (this.#closed) throw new InvalidError('the log store is closed');
    if (count <= 0) return;
    const w = this.writer(instance);
    if (firstSeq !== w.seq + 1)
      throw new ConflictError(
        `lines for the log of ${instance} start at seq ${firstSeq}, but the log is at seq ${w.seq} (frame them with lineHead() just before)`,
      );
    w.seq += count;
    if (durable && w.pending.length === 0) {
      this.reporting(instance, w, () => this.writeOut(w, lines));
      for (const wake of w.wake) wake();
      return;
    }
    // a copy (a Buffer's slice() would be a view of the caller's bytes)
    this.queue(instance, w, { text: new Uint8Array(lines), bytes: lines.length, firstSeq, lastSeq: w.seq });
    if (durable) this.flushReporting(instance, w);
  }

  private queue(instance: string, w: Writer, p: Pending): void {
    w.pending.push(p);
    w.pendingBytes += p.bytes;
    if (w.pendingBytes >= this.maxPendingBytes) this.flushReporting(instance, w);
    else this.armTimer();
    for (const wake of w.wake) wake();
  }

  /**
   * Writes what is queued for one instance now, synchronously. The agent calls it after each
   * batch of events so that a kill -9 loses none that already left the kernel's ring.
   */
  flushNow(instance: string): void {
    const w = this.#writers.get(instance);
    if (w) this.flushReporting(instance, w);
  }

  private armTimer(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flushAll();
    }, this.flushMs);
    this.#timer.unref?.();
  }

  private flushAll(): void {
    for (const [name, w] of this.#writers) this.flushReporting(name, w);
  }

  /** Flushes; an I/O error (disk full, ...) drops that batch and is reported, once per kind. */
  private flushReporting(name: string, w: Writer): void {
    this.reporting(name, w, () => this.flushWriter(name, w));
  }

  private reporting(name: string, w: Writer, write: () => void): void {
    try {
      write();
      w.lastError = undefined;
    } catch (e) {
      const msg = (e as Error).message;
      if (w.lastError !== msg)
        process.stderr.write(
          `kbpf agent: writing the event log of ${name}: ${msg} (records are dropped until it works again)\n`,
        );
      w.lastError = msg;
      if (w.fd !== undefined) {
        try {
          closeSync(w.fd);
        } catch {
          // already unusable
        }
        w.fd = undefined;
      }
    }
  }

  /** Writes the queue of one instance, rotating as needed so that no file passes maxBytes. */
  private flushWriter(_instance: string, w: Writer): void {
    if (w.pending.length === 0) return;
    const pending = w.pending;
    w.pending = [];
    w.pendingBytes = 0;
    this.writeOut(w, joinPending(pending));
  }

  /** Writes whole lines, rotating as needed so that no file passes maxBytes. */
  private writeOut(w: Writer, all: Uint8Array): void {
    if (w.fd === undefined) this.openFile(w);
    const write = (from: number, to: number): void => {
      let off = from;
      while (off < to) off += writeSync(w.fd!, all, off, to - off);
      w.size += to - from;
    };
    let start = 0;
    while (start < all.length) {
      const room = w.maxBytes - w.size;
      if (all.length - start <= room) {
        write(start, all.length);
        break;
      }
      // the lines that fit in this file, then a new file for the rest
      let cut = room > 0 ? all.lastIndexOf(0x0a, start + room - 1) + 1 : 0;
      if (cut <= start) {
        if (w.size > 0) {
          this.rotate(w);
          continue;
        }
        // a line longer than a whole file: it goes alone in one
        cut = all.indexOf(0x0a, start) + 1 || all.length;
      }
      write(start, cut);
      start = cut;
      if (start < all.length) this.rotate(w);
    }
  }

  private openFile(w: Writer): void {
    mkdirSync(w.dir, { recursive: true, mode: 0o700 });
    // a+: followers in this process read the live file through this fd (pread), so following
    // a log opens nothing: an agent running opensnoop would otherwise see its own opens, log
    // them, read them, and so on
    w.fd = openSync(join(w.dir, FILE), 'a+', 0o600);
    w.size = fstatSync(w.fd).size;
  }

  private rotate(w: Writer): void {
    if (w.fd !== undefined) closeSync(w.fd);
    w.fd = undefined;
    const files = this.files(w.dir, w.keep);
    if (w.keep === 0) {
      try {
        unlinkSync(files[0]!);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    } else {
      for (let i = files.length - 1; i >= 1; i--) {
        try {
          renameSync(files[i - 1]!, files[i]!);
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
    }
    this.openFile(w);
  }

  /** Writes everything queued (all instances, or one). */
  async flush(instance?: string): Promise<void> {
    if (instance === undefined) this.flushAll();
    else {
      const w = this.#writers.get(instance);
      if (w) this.flushWriter(instance, w);
    }
  }

  /**
   * Records of an instance, oldest first, across rotated files (and what is still queued).
   * Synchronous: it reads at most (keep + 1) * maxBytes, less with `tail`.
   */
  read(instance: string, opts: ReadOptions = {}): LogRecord[] {
    return this.snapshot(instance, opts).records;
  }

  /**
   * Synchronous so that no flush or rotation happens while it reads: the result, the seq it
   * ends at and the cursor into the current file are consistent.
   */
  private snapshot(instance: string, opts: ReadOptions): { records: LogRecord[]; lastSeq: number; cursor?: Cursor } {
    const dir = this.instanceDir(instance);
    const w = this.#writers.get(instance);
    const tail = opts.tail !== undefined ? Math.max(0, Math.floor(opts.tail)) : undefined;
    const sinceMs = opts.since?.getTime();
    const keepRec = (r: LogRecord): boolean => sinceMs === undefined || Date.parse(r.ts) >= sinceMs;

    const pendingRecs: LogRecord[] = [];
    for (const p of w?.pending ?? []) parseLines(pendingText(p), pendingRecs);
    const chunks: LogRecord[][] = [pendingRecs.filter(keepRec)];
    let count = chunks[0]!.length;
    let cursor: Cursor | undefined;
    const pending = w?.pending ?? [];
    let lastSeq = pending.length > 0 ? pending[pending.length - 1]!.lastSeq : 0;
    // newest file first, so that tail can stop early
    const files = this.files(dir, this.limits(instance).keep);
    for (let i = 0; i < files.length; i++) {
      let text: string;
      let ino: number;
      try {
        const fd = openSync(files[i]!, 'r');
        try {
          const st = fstatSync(fd);
          ino = st.ino;
          // with tail (and no since), only the end of the file: what is read does not grow with the file
          const want = tail !== undefined && sinceMs === undefined ? tail - count : undefined;
          let { text: t, end, partial } = this.readLines(fd, st.size, want);
          if (partial && want! > 0) {
            // a torn or foreign line among the last: fewer records than lines, so the whole file
            const n: LogRecord[] = [];
            parseLines(t, n);
            if (n.length < want!) ({ text: t, end } = this.readLines(fd, st.size));
          }
          text = t;
          if (i === 0) cursor = { ino, offset: end };
        } finally {
          closeSync(fd);
        }
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      const recs: LogRecord[] = [];
      parseLines(text, recs);
      if (lastSeq === 0 && recs.length > 0) lastSeq = recs[recs.length - 1]!.seq;
      const kept = recs.filter(keepRec);
      chunks.push(kept);
      count += kept.length;
      if (tail !== undefined && count >= tail) break;
      // since: an older file whose newest record is before `since` holds nothing newer
      if (sinceMs !== undefined && recs.length > 0 && Date.parse(recs[0]!.ts) < sinceMs) break;
    }
    const all: LogRecord[] = [];
    for (let i = chunks.length - 1; i >= 0; i--) all.push(...chunks[i]!);
    const records = tail !== undefined ? (tail === 0 ? [] : all.slice(-tail)) : all;
    if (cursor === undefined) cursor = { ino: -1, offset: 0 };
    return { records, lastSeq, cursor };
  }

  /**
   * The complete lines of a file of `size` bytes, and the offset after the last; with `lines`,
   * only (at least) that many of the last, read backwards a chunk at a time.
   */
  private readLines(fd: number, size: number, lines?: number): { text: string; end: number; partial?: boolean } {
    const read = (from: number, to: number): Buffer => {
      const buf = Buffer.alloc(to - from);
      let off = 0;
      while (off < buf.length) {
        const n = readSync(fd, buf, off, buf.length - off, from + off);
        if (n === 0) break;
        off += n;
      }
      return off === buf.length ? buf : buf.subarray(0, off);
    };
    if (lines === undefined || size <= this.readChunkBytes) {
      const buf = read(0, size);
      const end = buf.lastIndexOf(0x0a, buf.length - 1) + 1; // complete lines only
      const text = buf.subarray(0, end).toString('utf8');
      return { text: lines === undefined ? text : lastLines(text, lines, true), end };
    }
    const parts: Buffer[] = [];
    let from = size;
    let newlines = 0;
    let end = -1;
    while (from > 0) {
      const to = from;
      from = Math.max(0, from - this.readChunkBytes);
      const buf = read(from, to);
      parts.unshift(buf);
      if (end < 0) {
        const last = buf.lastIndexOf(0x0a);
        if (last < 0) continue;
        end = from + last + 1;
      }
      for (let j = buf.indexOf(0x0a); j >= 0; j = buf.indexOf(0x0a, j + 1)) newlines++;
      // one more newline than lines: the line before the first kept is known to be whole
      if (newlines > lines) break;
    }
    if (end < 0) return { text: '', end: 0 };
    const all = Buffer.concat(parts).subarray(0, end - from);
    return { text: lastLines(all.toString('utf8'), lines, from === 0), end, partial: from > 0 };
  }

  /**
   * Yields the records there are (after `since`, the last `tail`), then new ones as they are
   * appended, in batches, until `signal` aborts, the instance's log is removed or the store
   * closes. A follower that falls more than the retained files behind skips what was rotated away.
   */
  followBatches(
    instance: string,
    opts: ReadOptions,
    signal: AbortSignal,
  ): AsyncGenerator<LogRecord[], void, undefined> {
    return this.#follow(instance, opts, signal, false);
  }

  /**
   * followBatches() as JSON text (complete lines): the records there are, then new lines as they
   * are in the files and the queue — not parsed and serialised again, which is most of what a
   * busy follower costs (the API's followed log streams are this text).
   */
  async *followText(instance: string, opts: ReadOptions, signal: AbortSignal): AsyncGenerator<string, void, undefined> {
    for await (const chunk of this.#follow(instance, opts, signal, true)) {
      yield typeof chunk === 'string' ? chunk : chunk.map((r) => `${JSON.stringify(r)}\n`).join('');
    }
  }

  #follow(
    instance: string,
    opts: ReadOptions,
    signal: AbortSignal,
    raw: false,
  ): AsyncGenerator<LogRecord[], void, undefined>;
  #follow(
    instance: string,
    opts: ReadOptions,
    signal: AbortSignal,
    raw: true,
  ): AsyncGenerator<LogRecord[] | string, void, undefined>;
  async *#follow(
    instance: string,
    opts: ReadOptions,
    signal: AbortSignal,
    raw: boolean,
  ): AsyncGenerator<LogRecord[] | string, void, undefined> {
    if (signal.aborted || this.#closed) return;
    const w = this.writer(instance);
    const first = this.snapshot(instance, opts);
    let lastSeq = first.lastSeq;
    let cursor = first.cursor!;

    let dirty = false;
    let notify: (() => void) | undefined;
    const wake = (): void => {
      dirty = true;
      const n = notify;
      notify = undefined;
      n?.();
    };
    signal.addEventListener('abort', wake, { once: true });
    this.#followers.add(wake);
    w.wake.add(wake);
    const ended = (): boolean => signal.aborted || this.#closed || this.#writers.get(instance) !== w;
    try {
      if (first.records.length > 0) yield first.records;
      while (!ended()) {
        dirty = false;
        if (raw) {
          const next = this.readAfter(instance, cursor, lastSeq, true);
          cursor = next.cursor;
          if (next.lines.length > 0) {
            lastSeq = next.last;
            yield next.lines.join('');
            continue;
          }
        } else {
          const next = this.readAfter(instance, cursor, lastSeq, false);
          cursor = next.cursor;
          if (next.records.length > 0) {
            lastSeq = next.records[next.records.length - 1]!.seq;
            yield next.records;
            continue;
          }
        }
        if (dirty || ended()) continue;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          notify = resolve;
          timer = setTimeout(wake, this.pollMs);
        });
        clearTimeout(timer);
      }
    } finally {
      signal.removeEventListener('abort', wake);
      this.#followers.delete(wake);
      w.wake.delete(wake);
    }
  }

  /** follow(), one record at a time. */
  async *follow(instance: string, opts: ReadOptions, signal: AbortSignal): AsyncGenerator<LogRecord, void, undefined> {
    for await (const batch of this.followBatches(instance, opts, signal)) yield* batch;
  }

  /**
   * New records after `lastSeq`: the rest of the file the cursor is in, newer files, then the
   * queue — parsed, or (raw) as the lines' text, with the seq of the last.
   */
  private readAfter(
    instance: string,
    cursor: Cursor,
    lastSeq: number,
    raw: boolean,
  ): { records: LogRecord[]; lines: string[]; last: number; cursor: Cursor } {
    const dir = this.instanceDir(instance);
    const files = this.files(dir, this.limits(instance).keep);
    const stats: { path: string; ino: number; size: number }[] = [];
    for (const f of files) {
      try {
        const st = statSync(f);
        stats.push({ path: f, ino: st.ino, size: st.size });
      } catch (e) {
        if (!isNotFound(e)) throw e;
        stats.push({ path: f, ino: -2, size: 0 });
      }
    }
    const records: LogRecord[] = [];
    const lines: string[] = [];
    let rawLast = lastSeq;
    let newCursor = cursor;
    // false when a rotation came between the stat and the read of a file: what follows it is
    // left for the next call (reading newer files past it would skip its lines for good)
    let complete = true;
    // what is left to read in this call: a follower far behind reads the files a chunk at a time
    let budget = this.readChunkBytes;
    const current = stats[0]!;
    const quick = current.ino === cursor.ino && current.size === cursor.offset;
    if (!quick) {
      // oldest first: from the file the cursor is in (or every file if it was rotated away)
      let from = stats.findIndex((s) => s.ino === cursor.ino);
      let fromOffset = cursor.offset;
      if (from < 0) {
        from = stats.length - 1;
        fromOffset = 0;
      }
      for (let i = from; i >= 0 && complete; i--) {
        const s = stats[i]!;
        if (s.ino < 0) continue;
        const start = i === from ? fromOffset : 0;
        const writer = this.#writers.get(instance);
        const shared = i === 0 && writer?.fd !== undefined ? writer.fd : undefined;
        let fd: number;
        try {
          fd = shared ?? openSync(s.path, 'r');
        } catch (e) {
          if (!isNotFound(e)) throw e;
          complete = false; // rotated in between: the next call reads it under its new name
          break;
        }
        try {
          const st = fstatSync(fd);
          if (st.ino !== s.ino) {
            complete = false; // rotated in between: the next call reads it under its new name
            break;
          }
          const len = st.size - start;
          if (len <= 0) {
            if (i === 0) newCursor = { ino: st.ino, offset: Math.min(start, st.size) };
            continue;
          }
          if (budget <= 0) {
            // the budget ran out at the end of an older file: the next call goes on from there
            complete = false;
            break;
          }
          const read = (want: number): { buf: Buffer; off: number } => {
            const buf = Buffer.alloc(want);
            let off = 0;
            while (off < want) {
              const n = readSync(fd, buf, off, want - off, start + off);
              if (n === 0) break;
              off += n;
            }
            return { buf, off };
          };
          let want = Math.min(len, budget);
          let { buf, off } = read(want);
          let end = buf.lastIndexOf(0x0a, off - 1) + 1;
          if (end === 0 && want < len) {
            // one line longer than the budget: read it whole
            want = len;
            ({ buf, off } = read(want));
            end = buf.lastIndexOf(0x0a, off - 1) + 1;
          }
          budget -= end;
          if (raw) rawLast = rawLines(buf.subarray(0, end).toString('utf8'), lines, rawLast);
          else parseLines(buf.subarray(0, end).toString('utf8'), records, lastSeq);
          newCursor = { ino: st.ino, offset: start + end };
          // part of this file is left: newer files and the queue wait for the next call
          if (want < len) complete = false;
        } finally {
          if (fd !== shared) closeSync(fd);
        }
      }
    }
    const w = this.#writers.get(instance);
    if (raw) {
      if (w && complete)
        for (const p of w.pending) if (p.lastSeq > rawLast) rawLast = rawLines(pendingText(p), lines, rawLast);
      return { records, lines, last: rawLast, cursor: newCursor };
    }
    const out = records.filter((r) => r.seq > lastSeq);
    let last = out.length > 0 ? out[out.length - 1]!.seq : lastSeq;
    if (w && complete) {
      for (const p of w.pending) {
        if (p.lastSeq <= last) continue;
        const recs: LogRecord[] = [];
        parseLines(pendingText(p), recs, last);
        for (const r of recs) {
          if (r.seq > last) {
            out.push(r);
            last = r.seq;
          }
        }
      }
    }
    return { records: out, lines, last, cursor: newCursor };
  }

  /** Deletes an instance's log; its followers end. */
  async remove(instance: string): Promise<void> {
    const dir = this.instanceDir(instance);
    const w = this.#writers.get(instance);
    if (w) {
      if (w.fd !== undefined) closeSync(w.fd);
      w.fd = undefined;
      w.pending = [];
      w.pendingBytes = 0;
      this.#writers.delete(instance);
      for (const wake of w.wake) wake();
    }
    this.#limits.delete(instance);
    rmSync(dir, { recursive: true, force: true });
  }

  /** Writes what is queued and closes the files; followers end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.flushAll();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#writers.values()) {
      if (w.fd !== undefined) closeSync(w.fd);
      w.fd = undefined;
    }
    for (const wake of [...this.#followers]) wake();
  }
}
