// Reading a BPF_MAP_TYPE_PERF_EVENT_ARRAY through libbpf's perf_buffer.
//
// perf_buffer__new opens one BPF-output perf event per online CPU, maps `pagesPerCpu` pages of
// ring for each, and stores the events in the map, so bpf_perf_event_output(ctx, &map,
// BPF_F_CURRENT_CPU, ...) lands in the buffer of the CPU the program runs on. libbpf gathers the
// per-CPU fds in its own epoll fd (perf_buffer__epoll_fd); that one fd is what this reader hands
// to the process-wide poller, and when it is readable the reader calls perf_buffer__consume on
// the JS thread, which invokes our sample / lost callbacks once per record.
//
// Lost records are the kernel's own count: when a CPU's buffer is full the kernel counts what it
// could not write and, once room is back, writes a PERF_RECORD_LOST with that count, which libbpf
// passes to the lost callback (so `stats.lost` grows only after the reader has made room again
// and the producer has written once more).
//
// Back-pressure: the reader calls perf_buffer__consume only when its iterator's consumer asks for
// records and nothing is queued, so a slow consumer leaves records in the kernel buffers (which
// then overflow and count lost records). One consume takes everything the per-CPU buffers hold,
// so the JavaScript queue is bounded by their size (pagesPerCpu × page size × CPUs) rather than
// by highWaterMark, which only bounds `batches()`.
import { constants } from 'node:os';
import type { Codec } from '../btf/index.js';
import { BpfError } from '../errors.js';
import { koffi, lastErrno, type Pointer } from '../ffi/koffi.js';
import { libbpf, PerfLostFn, PerfSampleFn } from '../ffi/libbpf.js';
import { libc } from '../ffi/libc.js';
import type { BpfMap } from '../map.js';
import { poller, type Watch } from '../poller.js';
import { type RecordDecode, resolveCodec } from '../ringbuf/reader.js';

export interface PerfBufferReaderOptions {
  /** As for RingBufferReader: 'btf' with typeName, 'raw' (Buffer copies), or a Codec. */
  decode?: RecordDecode;
  /** Name of the record's struct in the object's BTF. */
  typeName?: string;
  /** Pages of ring per CPU, a power of two (default 8). */
  pagesPerCpu?: number;
  /** Most records `batches()` yields at a time (default 1024). */
  highWaterMark?: number;
  /** Whether a pending iterator keeps the process alive (default true). */
  ref?: boolean;
}

export interface PerfBufferStats {
  /** Records delivered by this reader. */
  records: number;
  /** Payload bytes of those records (as the kernel sized them, padded to 8 bytes minus 4). */
  bytes: number;
  /** Records the kernel could not write because a CPU's buffer was full (PERF_RECORD_LOST). */
  lost: number;
  /** Records the reader received but could not deliver (the codec threw). */
  drops: number;
  /** Lost records per CPU. */
  lostPerCpu: Record<number, number>;
  /** Records read from the kernel and waiting in JavaScript for the iterator's consumer. */
  buffered: number;
}

/** The reader whose perf_buffer__consume is running (callbacks run synchronously inside it). */
let current: PerfBufferReader<unknown> | null = null;
let sampleCb: Pointer | null = null;
let lostCb: Pointer | null = null;

function callbacks(): { sample: Pointer; lost: Pointer } {
  if (!sampleCb) {
    sampleCb = koffi.register(
      (_ctx: unknown, cpu: number, data: Pointer, size: number) => current?.onSample(cpu, data, size),
      koffi.pointer(PerfSampleFn),
    );
    lostCb = koffi.register(
      (_ctx: unknown, cpu: number, cnt: number | bigint) => current?.onLost(cpu, Number(cnt)),
      koffi.pointer(PerfLostFn),
    );
  }
  return { sample: sampleCb, lost: lostCb };
}

export class PerfBufferReader<T = unknown> implements AsyncIterable<T> {
  readonly map: BpfMap;
  readonly pagesPerCpu: number;
  readonly highWaterMark: number;
  readonly #codec: Codec | null;
  readonly #decodeName: string;
  #pb: Pointer | null;
  #fd = -1;
  #watch: Watch | null;
  #closed = false;
  #queue: T[] = [];
  #head = 0;
  #waiters: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  #readableWaiters: (() => void)[] = [];
  #pulledThisTurn = false;
  #immediate: NodeJS.Immediate | null = null;
  #sink: ((record: T) => void) | null = null;
  #sinkError: unknown = undefined;
  #records = 0;
  #bytes = 0;
  #lost = 0;
  #drops = 0;
  readonly #lostPerCpu: Record<number, number> = {};

  constructor(map: BpfMap, opts: PerfBufferReaderOptions = {}) {
    if (map.type !== 'perf_event_array') {
      throw new BpfError('read perf buffer', map.description, constants.errno.EINVAL, {
        hint: `it is a ${map.type} map, not a perf_event_array`,
      });
    }
    const pages = opts.pagesPerCpu ?? 8;
    if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0) {
      throw new BpfError('read perf buffer', map.description, constants.errno.EINVAL, {
        hint: `pagesPerCpu must be a power of two, got ${pages}`,
      });
    }
    this.map = map;
    this.pagesPerCpu = pages;
    this.highWaterMark = Math.max(1, Math.floor(opts.highWaterMark ?? 1024));
    // The map's own value type is the fd slot (an int), never the record: only typeName or a codec.
    const { codec, name } = resolveCodec(map, { decode: opts.decode, typeName: opts.typeName, ignoreValueType: true });
    this.#codec = codec;
    this.#decodeName = name;
    const cb = callbacks();
    // libbpf keeps the fd to remove its entries on free: give it our own duplicate, so closing the
    // map's object first cannot make perf_buffer__free touch a stale (possibly reused) fd number.
    const fd = libc.dup(map.fd);
    if (fd < 0) throw new BpfError('open perf buffer on', map.description, lastErrno() || constants.errno.EBADF);
    const pb = libbpf.perfBufferNew(fd, pages, cb.sample, cb.lost, null, null);
    if (!pb) {
      const errno = lastErrno() || constants.errno.EINVAL;
      libc.close(fd);
      throw new BpfError('open perf buffer on', map.description, errno);
    }
    this.#fd = fd;
    this.#pb = pb;
    try {
      const epfd = libbpf.perfBufferEpollFd(pb);
      this.#watch = poller().watch(epfd, () => this.onReadable(), {
        ref: opts.ref ?? true,
        description: `perf buffer ${map.description}`,
      });
    } catch (e) {
      libbpf.perfBufferFree(pb);
      libc.close(fd);
      this.#pb = null;
      throw e;
    }
  }

  get decoding(): string {
    return this.#decodeName;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get stats(): PerfBufferStats {
    return {
      records: this.#records,
      bytes: this.#bytes,
      lost: this.#lost,
      drops: this.#drops,
      lostPerCpu: { ...this.#lostPerCpu },
      buffered: this.#queue.length - this.#head,
    };
  }

  ref(): this {
    this.#watch?.ref();
    return this;
  }

  unref(): this {
    this.#watch?.unref();
    return this;
  }

  /** @internal sample callback (inside perf_buffer__consume) */
  onSample(_cpu: number, data: Pointer, size: number): void {
    let value: unknown;
    try {
      const bytes = new Uint8Array(koffi.view(data, size) as ArrayBuffer);
      const codec = this.#codec;
      if (!codec) value = Buffer.from(bytes);
      else if (size >= codec.size) value = codec.decode(bytes, 0);
      else {
        const padded = new Uint8Array(codec.size);
        padded.set(bytes);
        value = codec.decode(padded, 0);
      }
    } catch {
      this.#drops++;
      return;
    }
    this.#records++;
    this.#bytes += size;
    try {
      this.#sink!(value as T);
    } catch (e) {
      // Never throw through libbpf's C frames: rethrown once perf_buffer__consume returns; the
      // records after this one are queued for the next call.
      this.#sinkError = e;
      this.#sink = (r) => this.#queue.push(r);
    }
  }

  /** @internal lost callback (inside perf_buffer__consume) */
  onLost(cpu: number, count: number): void {
    this.#lost += count;
    this.#lostPerCpu[cpu] = (this.#lostPerCpu[cpu] ?? 0) + count;
  }

  /**
   * Calls fn with every record the per-CPU buffers hold now (one perf_buffer__consume), then
   * returns how many there were. Records queued for the iterator come first. If fn throws, the
   * records after it are kept for the next call and the error is rethrown.
   */
  consume(fn: (record: T) => void): number {
    this.assertOpen();
    let n = 0;
    while (this.#head < this.#queue.length) {
      fn(this.shift());
      n++;
    }
    const before = this.#records;
    const prevSink = this.#sink;
    const prevCurrent = current;
    this.#sink = fn;
    current = this as PerfBufferReader<unknown>;
    this.#sinkError = undefined;
    try {
      const ret = libbpf.perfBufferConsume(this.#pb);
      if (ret < 0) throw new BpfError('consume perf buffer', this.map.description, -ret);
    } finally {
      current = prevCurrent;
      this.#sink = prevSink;
    }
    if (this.#sinkError !== undefined) {
      const e = this.#sinkError;
      this.#sinkError = undefined;
      throw e;
    }
    return n + this.#records - before;
  }

  /** Everything available now (at most max records; the rest stays queued for the next call). */
  drain(max = Infinity): T[] {
    const out: T[] = [];
    if (this.#head >= this.#queue.length) this.consume((r) => this.#queue.push(r));
    while (out.length < max && this.#head < this.#queue.length) out.push(this.shift());
    return out;
  }

  /**
   * Next record; waits (on the shared poller) when the buffers are empty. The buffers are
   * consumed synchronously at most once per turn of the event loop, so a busy producer cannot
   * starve the rest of the process.
   */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#queue.length) return Promise.resolve({ value: this.shift(), done: false });
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiters.length === 0 && !this.#pulledThisTurn && this.fill() > 0) {
      return Promise.resolve({ value: this.shift(), done: false });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.wait(reject);
    });
  }

  /** Resolves when the buffers may hold records (drain / consume), or the reader is closed. */
  readable(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#head < this.#queue.length) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve, reject) => {
      this.#readableWaiters.push(resolve);
      this.wait(reject);
    });
  }

  private wait(reject: (e: unknown) => void): void {
    if (this.#pulledThisTurn && this.#readableWaiters.length === 0) {
      // consumed already in this turn: look again on the next one
      if (!this.#immediate) this.#immediate = setImmediate(this.#onImmediate);
      return;
    }
    try {
      this.#watch!.arm();
    } catch (e) {
      this.#waiters = [];
      this.#readableWaiters = [];
      reject(e);
    }
  }

  readonly #onImmediate = (): void => {
    this.#immediate = null;
    this.onReadable();
  };

  /** Iterates the records; leaving the loop early closes the reader. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const it: AsyncIterableIterator<T> = {
      next: () => this.next(),
      return: (value?: unknown) => {
        this.close();
        return Promise.resolve({ value: value as T, done: true });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  /** Iterates batches of up to highWaterMark records. */
  async *batches(): AsyncGenerator<T[]> {
    try {
      while (!this.#closed) {
        if (this.#head >= this.#queue.length) {
          const r = await this.next();
          if (r.done) return;
          this.#queue.splice(0, this.#head, r.value);
          this.#head = 0;
        }
        const end = Math.min(this.#queue.length, this.#head + this.highWaterMark);
        const batch = this.#queue.slice(this.#head, end);
        this.#head = end;
        if (this.#head >= this.#queue.length) {
          this.#queue = [];
          this.#head = 0;
        }
        yield batch;
      }
    } finally {
      this.close();
    }
  }

  /** Stops reading and frees the perf buffer (its perf events are closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    this.#watch = null;
    if (this.#pb) {
      const pb = this.#pb;
      const fd = this.#fd;
      const free = () => {
        libbpf.perfBufferFree(pb);
        libc.close(fd);
      };
      // close() from inside a callback: free once perf_buffer__consume has returned.
      if (current === (this as PerfBufferReader<unknown>)) queueMicrotask(free);
      else free();
      this.#pb = null;
      this.#fd = -1;
    }
    this.#queue = [];
    this.#head = 0;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = null;
    const waiters = this.#waiters;
    const readable = this.#readableWaiters;
    this.#waiters = [];
    this.#readableWaiters = [];
    for (const w of waiters) w.resolve({ value: undefined, done: true });
    for (const resolve of readable) resolve();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private onReadable(): void {
    if (this.#closed) return;
    if (this.#readableWaiters.length > 0) {
      // the epoll fd is readable (or a turn passed): let the readers look
      const ready = this.#readableWaiters;
      this.#readableWaiters = [];
      for (const resolve of ready) resolve();
    }
    try {
      if (this.#waiters.length > 0 && this.#head >= this.#queue.length) this.fill();
    } catch (e) {
      for (const w of this.#waiters.splice(0)) w.reject(e);
      return;
    }
    while (this.#waiters.length > 0 && this.#head < this.#queue.length) {
      this.#waiters.shift()!.resolve({ value: this.shift(), done: false });
    }
    if (this.#waiters.length > 0) this.#watch!.arm();
  }

  private fill(): number {
    if (!this.#pulledThisTurn) {
      this.#pulledThisTurn = true;
      setImmediate(this.#endTurn);
    }
    this.#queue.length = 0;
    this.#head = 0;
    const q = this.#queue;
    this.consume((r) => q.push(r));
    return q.length;
  }

  readonly #endTurn = (): void => {
    this.#pulledThisTurn = false;
  };

  private shift(): T {
    const v = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as T;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return v;
  }

  private assertOpen(): void {
    if (this.#closed)
      throw new BpfError('read', `perf buffer ${this.map.description}`, constants.errno.EBADF, {
        hint: 'the reader is closed',
      });
  }
}
